#!/usr/bin/env bash
# rclone (Debian's) against s3gate, with a remote named gw made from the environment alone.
#
#   S3GATE_ENDPOINT=http://127.0.0.1:18099 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
#   S3GATE_TEST_BUCKET=try-rclone [S3GATE_CA_BUNDLE=ca.pem] tests/clients/rclone.sh
#
# Leaves kept/known.bin (multipart upload of S3GATE_KNOWN_FILE); everything else it made is
# deleted.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_tool rclone cmp

export RCLONE_CONFIG="$WORK/rclone.conf"
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_GW_TYPE=s3
export RCLONE_CONFIG_GW_PROVIDER=Other
export RCLONE_CONFIG_GW_ENV_AUTH=false
export RCLONE_CONFIG_GW_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
export RCLONE_CONFIG_GW_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
export RCLONE_CONFIG_GW_ENDPOINT="$S3GATE_ENDPOINT"
export RCLONE_CONFIG_GW_REGION=us-east-1
export RCLONE_CONFIG_GW_FORCE_PATH_STYLE=true

# rclone will not start with AWS_CA_BUNDLE set to the system bundle; it gets --ca-cert instead.
# One try each: a retry would hide a gateway error.
rc_args=(--retries 1 --low-level-retries 1 --s3-upload-cutoff 5M --s3-chunk-size 5M --stats 0)
[ -n "$CA_BUNDLE" ] && rc_args+=(--ca-cert "$CA_BUNDLE")
rc() { env -u AWS_CA_BUNDLE rclone "${rc_args[@]}" "$@"; }

KNOWN="$(known_file)"
R="gw:$BUCKET"

step "rclone version"
rc version | sed -n 1p

step "mkdir $R"
rc mkdir "$R"

step "copy a 20 MiB file up (multipart)"
make_big_file "$WORK/big.bin"
rc copyto "$WORK/big.bin" "$R/big/big.bin"

step "copy the known file to kept/known.bin (multipart)"
rc copyto "$KNOWN" "$R/kept/known.bin"

step "sync a folder up"
make_tree "$WORK/tree"
rc sync "$WORK/tree" "$R/tree"

step "ls and lsf"
rc ls "$R"
keys="$(rc lsf -R --files-only "$R")"
same_lines "$keys" big/big.bin kept/known.bin "${TREE_KEYS[@]/#/tree/}"
size="$(rc lsf --format s "$R/big/big.bin")"
[ "$size" = $((20 * 1024 * 1024)) ] || fail "big/big.bin has size $size"
dirs="$(rc lsf --dirs-only "$R/tree")"
same_lines "$dirs" "nested/" "with space/"

step "check the folder (sizes and MD5s)"
rc check "$WORK/tree" "$R/tree"

step "check the 20 MiB file"
rc check "$WORK" "$R/big" --include big.bin

step "copy the 20 MiB file back and compare"
rc copyto "$R/big/big.bin" "$WORK/big.down"
cmp "$WORK/big.bin" "$WORK/big.down"

step "copy the folder back and compare"
rc copy "$R/tree" "$WORK/tree.down"
same_tree "$WORK/tree" "$WORK/tree.down"

step "sync after a local change"
echo "changed" >"$WORK/tree/a.txt"
rm "$WORK/tree/nested/b.bin"
rc sync "$WORK/tree" "$R/tree"
rc check "$WORK/tree" "$R/tree"

step "delete a file"
rc deletefile "$R/big/big.bin"

step "purge a folder"
rc purge "$R/tree"

step "listing holds only the kept object"
keys="$(rc lsf -R --files-only "$R")"
same_lines "$keys" kept/known.bin

echo "$CLIENT_NAME: all steps passed"
