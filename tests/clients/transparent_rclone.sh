#!/usr/bin/env bash
# rclone (Debian's) the way a site that cannot change its clients runs it: an AWS remote with no
# endpoint, region us-east-1, keys from the environment. Only its name resolution is s3gate's:
# the transparent-mode tests run it in a mount namespace whose /etc/resolv.conf names s3gate's
# DNS responder, which rclone's Go resolver reads, and whose answer s3gate listens at on 443.
#
#   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... SSL_CERT_FILE=ca.pem \
#   S3GATE_TEST_BUCKET=tp-rclone S3GATE_DENIED_BUCKET=other-bucket [S3GATE_KNOWN_FILE=file] \
#   bash tests/clients/transparent_rclone.sh
#
# Uploads the known file multipart as kept/known.bin (12 MiB + 5 bytes, past the 5 MiB cutoff
# set here) and a small file, lists, downloads and compares, deletes the small file, and checks
# that S3GATE_DENIED_BUCKET cannot be made. Leaves kept/known.bin. Exits non-zero at the first
# failed step, and says which.
set -euo pipefail

NAME="transparent_rclone.sh"
STEP="start"
trap 'echo "$NAME: FAILED at step $STEP (line $LINENO): $BASH_COMMAND" >&2' ERR

step() {
    STEP="$*"
    echo "== $NAME: $*"
}
fail() {
    echo "$NAME: FAILED at step $STEP: $*" >&2
    exit 1
}

for v in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY S3GATE_TEST_BUCKET S3GATE_DENIED_BUCKET SSL_CERT_FILE; do
    [ -n "${!v:-}" ] || fail "environment variable $v is not set"
done
command -v rclone >/dev/null || fail "rclone not found: run scripts/install-test-deps.sh"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/s3gate-rclone.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# A remote as an AWS user writes it: provider AWS, the region, keys from the environment, and
# no endpoint, so rclone talks to https://BUCKET.s3.us-east-1.amazonaws.com as it would to AWS.
export RCLONE_CONFIG="$WORK/rclone.conf"
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_AWS_TYPE=s3
export RCLONE_CONFIG_AWS_PROVIDER=AWS
export RCLONE_CONFIG_AWS_ENV_AUTH=true
export RCLONE_CONFIG_AWS_REGION=us-east-1

# rclone will not start with AWS_CA_BUNDLE set; Go reads the CA from SSL_CERT_FILE. One try
# each: a retry would hide a gateway error.
rc_args=(--retries 1 --low-level-retries 1 --s3-upload-cutoff 5M --s3-chunk-size 5M --stats 0)
rc() { env -u AWS_CA_BUNDLE rclone "${rc_args[@]}" "$@"; }

KNOWN="${S3GATE_KNOWN_FILE:-}"
if [ -z "$KNOWN" ]; then
    KNOWN="$WORK/known.bin"
    head -c $((12 * 1024 * 1024 + 5)) /dev/urandom >"$KNOWN"
fi
R="aws:$S3GATE_TEST_BUCKET"

step "mkdir $R"
rc mkdir "$R"

step "copy the known file to kept/known.bin (multipart)"
rc copyto "$KNOWN" "$R/kept/known.bin"

step "copy a small file to small.txt"
echo "rclone, with only its resolver changed" >"$WORK/small.txt"
rc copyto "$WORK/small.txt" "$R/small.txt"

step "list"
keys="$(rc lsf -R --files-only "$R" | LC_ALL=C sort | tr '\n' ' ')"
[ "$keys" = "kept/known.bin small.txt " ] || fail "listed: $keys"
size="$(rc lsf --format s "$R/kept/known.bin")"
[ "$size" = "$(stat -c %s "$KNOWN")" ] || fail "kept/known.bin has size $size"

step "copy kept/known.bin back and compare"
rc copyto "$R/kept/known.bin" "$WORK/known.down"
cmp "$KNOWN" "$WORK/known.down"

step "check small.txt (size and MD5)"
rc check "$WORK" "$R" --include small.txt

step "delete small.txt"
rc deletefile "$R/small.txt"
keys="$(rc lsf -R --files-only "$R")"
[ "$keys" = "kept/known.bin" ] || fail "after the delete: $keys"

step "mkdir aws:$S3GATE_DENIED_BUCKET is refused"
if rc mkdir "aws:$S3GATE_DENIED_BUCKET" 2>"$WORK/denied.err"; then
    fail "made a bucket outside the bucket allow list"
fi
sed -n 1,3p "$WORK/denied.err"

echo "$NAME: all steps passed"
