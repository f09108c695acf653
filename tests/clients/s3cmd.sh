#!/usr/bin/env bash
# s3cmd (Debian's) against s3gate, path style, SigV4, with a config file made here.
#
#   S3GATE_ENDPOINT=http://127.0.0.1:18099 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
#   S3GATE_TEST_BUCKET=try-s3cmd [S3GATE_CA_BUNDLE=ca.pem] tests/clients/s3cmd.sh
#
# Leaves kept/known.bin (multipart upload of S3GATE_KNOWN_FILE); everything else it made is
# deleted, and a second bucket, $S3GATE_TEST_BUCKET-rb, is made and removed again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tool s3cmd cmp

cfg="$WORK/s3cmd.cfg"
use_https=False
[ "$SCHEME" = https ] && use_https=True
# host_bucket without %(bucket)s makes s3cmd use path-style URLs.
cat >"$cfg" <<EOF
[default]
access_key = $AWS_ACCESS_KEY_ID
secret_key = $AWS_SECRET_ACCESS_KEY
host_base = $ENDPOINT_HOSTPORT
host_bucket = $ENDPOINT_HOSTPORT
use_https = $use_https
ca_certs_file = $CA_BUNDLE
check_ssl_certificate = True
check_ssl_hostname = True
signature_v2 = False
bucket_location = us-east-1
multipart_chunk_size_mb = 5
progress_meter = False
EOF
s3c() { s3cmd -c "$cfg" --no-progress "$@"; }

KNOWN="$(known_file)"
B="s3://$BUCKET"
RB="s3://$BUCKET-rb"

step "s3cmd --version"
s3cmd --version

step "mb $B"
s3c mb "$B"

step "put a 20 MiB file (multipart)"
make_big_file "$WORK/big.bin"
s3c put --multipart-chunk-size-mb=5 "$WORK/big.bin" "$B/big/big.bin"

step "put the known file to kept/known.bin (multipart)"
s3c put --multipart-chunk-size-mb=5 "$KNOWN" "$B/kept/known.bin"

step "sync a folder up"
make_tree "$WORK/tree"
s3c sync "$WORK/tree/" "$B/tree/"

step "ls, la and ls --recursive"
s3c ls
s3c la
listing="$(s3c ls --recursive "$B")"
echo "$listing"
keys="$(printf '%s\n' "$listing" | sed -E "s|^.* s3://$BUCKET/||")"
same_lines "$keys" big/big.bin kept/known.bin "${TREE_KEYS[@]/#/tree/}"
top="$(s3c ls "$B/tree/")"
grep -qE "DIR +s3://$BUCKET/tree/nested/$" <<<"$top" || fail "no tree/nested/ in: $top"

step "info on the 20 MiB file"
s3c info "$B/big/big.bin"

step "get the 20 MiB file and compare"
s3c get --force "$B/big/big.bin" "$WORK/big.down"
cmp "$WORK/big.bin" "$WORK/big.down"

step "sync the folder down and compare"
mkdir -p "$WORK/tree.down"
s3c sync "$B/tree/" "$WORK/tree.down/"
same_tree "$WORK/tree" "$WORK/tree.down"

step "del one object"
s3c del "$B/big/big.bin"

step "del --recursive a folder"
s3c del --recursive --force "$B/tree/"

step "listing holds only the kept object"
keys="$(s3c ls --recursive "$B" | sed -E "s|^.* s3://$BUCKET/||")"
same_lines "$keys" kept/known.bin

step "mb, put, del and rb a second bucket"
s3c mb "$RB"
s3c put "$WORK/tree/a.txt" "$RB/a.txt"
s3c del "$RB/a.txt"
s3c rb "$RB"
buckets="$(s3c ls)"
if grep -q " $RB\$" <<<"$buckets"; then fail "$RB still listed: $buckets"; fi

echo "$CLIENT_NAME: all steps passed"
