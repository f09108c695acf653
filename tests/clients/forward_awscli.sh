#!/usr/bin/env bash
# awscli through s3gate's forward proxy, set up the way a site that cannot change endpoints uses
# it: only proxy variables. Over HTTPS awscli talks to its default AWS endpoint through CONNECT;
# with S3GATE_FORWARD_ENDPOINT=http://... it sends plain-HTTP absolute-form requests instead.
#
#   HTTPS_PROXY=http://user:pw@127.0.0.1:3128 AWS_CA_BUNDLE=ca.pem \
#   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... S3GATE_TEST_BUCKET=try-forward \
#   [S3GATE_FORWARD_ENDPOINT=http://s3.us-east-1.amazonaws.com HTTP_PROXY=...] \
#   [S3GATE_KNOWN_FILE=file] bash tests/clients/forward_awscli.sh
#
# Also run by the transparent-mode tests, with no proxy and only name resolution changed
# (S3GATE_TEST_DNS, see tests/clients/transparent/sitecustomize.py).
#
# Leaves kept/known.bin (uploaded multipart: 12 MiB + 5 is past awscli's 8 MiB threshold);
# everything else it made is deleted. Exits non-zero at the first failed step, and says which.
set -euo pipefail

NAME="forward_awscli.sh"
STEP="start"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[ -d "$REPO_ROOT/.venv/bin" ] && PATH="$REPO_ROOT/.venv/bin:$PATH"
trap 'echo "$NAME: FAILED at step $STEP (line $LINENO): $BASH_COMMAND" >&2' ERR

step() {
    STEP="$*"
    echo "== $NAME: $*"
}
fail() {
    echo "$NAME: FAILED at step $STEP: $*" >&2
    exit 1
}

for v in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY S3GATE_TEST_BUCKET; do
    [ -n "${!v:-}" ] || fail "environment variable $v is not set"
done
[ -n "${HTTPS_PROXY:-}${HTTP_PROXY:-}${S3GATE_TEST_DNS:-}" ] || fail "neither HTTPS_PROXY, HTTP_PROXY nor S3GATE_TEST_DNS is set"
command -v aws >/dev/null || fail "aws not found: run scripts/install-test-deps.sh"

export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
BUCKET="$S3GATE_TEST_BUCKET"
ENDPOINT_ARGS=()
[ -n "${S3GATE_FORWARD_ENDPOINT:-}" ] && ENDPOINT_ARGS=(--endpoint-url "$S3GATE_FORWARD_ENDPOINT")
aws_s3() { aws "${ENDPOINT_ARGS[@]}" s3 "$@"; }
aws_api() { aws "${ENDPOINT_ARGS[@]}" s3api "$@"; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/s3gate-forward.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
KNOWN="${S3GATE_KNOWN_FILE:-}"
if [ -z "$KNOWN" ]; then
    KNOWN="$WORK/known.bin"
    head -c $((12 * 1024 * 1024 + 5)) /dev/urandom >"$KNOWN"
fi

step "make bucket $BUCKET"
aws_s3 mb "s3://$BUCKET"

step "multipart upload kept/known.bin"
aws_s3 cp --only-show-errors "$KNOWN" "s3://$BUCKET/kept/known.bin"

step "put small.txt"
printf 'through the forward proxy\n' >"$WORK/small.txt"
aws_api put-object --bucket "$BUCKET" --key small.txt --body "$WORK/small.txt" >/dev/null

step "list"
keys="$(aws_api list-objects-v2 --bucket "$BUCKET" --query 'Contents[].Key' --output text | tr '\t' '\n' | sort)"
[ "$keys" = "$(printf 'kept/known.bin\nsmall.txt')" ] || fail "listed keys: $keys"
aws_s3 ls "s3://$BUCKET/kept/" | grep -q "known.bin" || fail "aws s3 ls does not show kept/known.bin"

step "get both and compare"
aws_s3 cp --only-show-errors "s3://$BUCKET/kept/known.bin" "$WORK/known.down"
cmp "$KNOWN" "$WORK/known.down" || fail "kept/known.bin came back different"
aws_api get-object --bucket "$BUCKET" --key small.txt "$WORK/small.down" >/dev/null
cmp "$WORK/small.txt" "$WORK/small.down" || fail "small.txt came back different"

step "delete small.txt"
aws_s3 rm --only-show-errors "s3://$BUCKET/small.txt"
keys="$(aws_api list-objects-v2 --bucket "$BUCKET" --query 'Contents[].Key' --output text)"
[ "$keys" = "kept/known.bin" ] || fail "after delete: $keys"

echo "$NAME: all steps passed"
