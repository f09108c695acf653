#!/usr/bin/env bash
# awscli v1 (from .venv) against s3gate, with awscli's default checksum settings: over HTTP it
# sends a hex SHA-256 payload hash, a CRC32 checksum header and Expect: 100-continue; over HTTPS
# an unsigned aws-chunked body with a trailing checksum.
#
#   S3GATE_ENDPOINT=http://127.0.0.1:18099 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
#   S3GATE_TEST_BUCKET=try-awscli [S3GATE_CA_BUNDLE=ca.pem] tests/clients/awscli.sh
#
# Leaves kept/known.bin (aws s3 cp, multipart) and kept/put.bin (s3api put-object, CRC32), both
# the bytes of S3GATE_KNOWN_FILE; everything else it made is deleted.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tool aws curl cmp

# A config of our own, so nothing from ~/.aws leaks in; presign needs s3v4 named here.
export AWS_CONFIG_FILE="$WORK/aws-config"
export AWS_SHARED_CREDENTIALS_FILE="$WORK/aws-credentials"
: >"$AWS_SHARED_CREDENTIALS_FILE"
cat >"$AWS_CONFIG_FILE" <<EOF
[default]
region = us-east-1
s3 =
    addressing_style = path
    signature_version = s3v4
EOF
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3
export AWS_DEFAULT_REGION=us-east-1
# One attempt: a retry would hide a gateway error.
export AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard
if [ -n "$CA_BUNDLE" ]; then
    export AWS_CA_BUNDLE="$CA_BUNDLE"
fi
s3() { aws --endpoint-url "$S3GATE_ENDPOINT" s3 "$@"; }
s3api() { aws --endpoint-url "$S3GATE_ENDPOINT" s3api "$@"; }
curl_ca=()
[ -n "$CA_BUNDLE" ] && curl_ca=(--cacert "$CA_BUNDLE")

KNOWN="$(known_file)"
B="s3://$BUCKET"

step "aws --version"
aws --version

step "mb $B"
s3 mb "$B"

step "cp a 20 MiB file up (multipart)"
make_big_file "$WORK/big.bin"
s3 cp "$WORK/big.bin" "$B/big/big.bin" --no-progress

step "cp the known file to kept/known.bin (multipart)"
s3 cp "$KNOWN" "$B/kept/known.bin" --no-progress

step "sync a folder up"
make_tree "$WORK/tree"
s3 sync "$WORK/tree" "$B/tree/" --no-progress

step "sync again uploads nothing"
again="$(s3 sync "$WORK/tree" "$B/tree/" --no-progress)"
[ -z "$again" ] || fail "second sync did something: $again"

step "ls --recursive"
listing="$(s3 ls --recursive "$B/")"
echo "$listing"
keys="$(printf '%s\n' "$listing" | sed -E 's/^[0-9-]+ [0-9:]+ +[0-9]+ //')"
same_lines "$keys" big/big.bin kept/known.bin "${TREE_KEYS[@]/#/tree/}"
big_line="$(printf '%s\n' "$listing" | grep ' big/big.bin$')"
[ "$(echo "$big_line" | awk '{print $3}')" = $((20 * 1024 * 1024)) ] || fail "big/big.bin has the wrong size: $big_line"

step "ls a prefix"
top="$(s3 ls "$B/tree/")"
echo "$top"
grep -q 'PRE nested/$' <<<"$top" || fail "no nested/ common prefix in: $top"
grep -q ' name with spaces.txt$' <<<"$top" || fail "no 'name with spaces.txt' in: $top"

step "cp the 20 MiB file down and compare"
s3 cp "$B/big/big.bin" "$WORK/big.down" --no-progress
cmp "$WORK/big.bin" "$WORK/big.down"

step "sync the folder down and compare"
s3 sync "$B/tree/" "$WORK/tree.down" --no-progress
same_tree "$WORK/tree" "$WORK/tree.down"

step "s3api put-object --checksum-algorithm CRC32"
s3api put-object --bucket "$BUCKET" --key kept/put.bin --body "$KNOWN" --checksum-algorithm CRC32 >"$WORK/put.json"
cat "$WORK/put.json"

step "s3api head-object"
s3api head-object --bucket "$BUCKET" --key kept/put.bin --checksum-mode ENABLED >"$WORK/head.json"
cat "$WORK/head.json"
len="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ContentLength"])' "$WORK/head.json")"
[ "$len" = "$(stat -c %s "$KNOWN")" ] || fail "head-object ContentLength $len, file has $(stat -c %s "$KNOWN")"

step "s3api get-object --range"
s3api get-object --bucket "$BUCKET" --key kept/put.bin --range bytes=1000-1999 "$WORK/range.bin" >/dev/null
cmp "$WORK/range.bin" <(tail -c +1001 "$KNOWN" | head -c 1000)

step "presign and fetch with curl"
url="$(s3 presign "$B/kept/known.bin" --expires-in 300)"
curl -fsS "${curl_ca[@]}" -o "$WORK/presigned.bin" "$url"
cmp "$KNOWN" "$WORK/presigned.bin"

step "rm one object"
s3 rm "$B/big/big.bin"

step "rm --recursive a folder"
s3 rm --recursive "$B/tree/"

step "listing holds only the kept objects"
keys="$(s3 ls --recursive "$B/" | sed -E 's/^[0-9-]+ [0-9:]+ +[0-9]+ //')"
same_lines "$keys" kept/known.bin kept/put.bin
left="$(s3 ls --recursive "$B/tree/" || true)"
[ -z "$left" ] || fail "tree/ not empty after rm --recursive: $left"

echo "$CLIENT_NAME: all steps passed"
