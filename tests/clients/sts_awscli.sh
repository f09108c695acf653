#!/usr/bin/env bash
# The awscli (v1) getting temporary credentials from s3gate's STS with no code change.
#
#   S3GATE_ENDPOINT=http://127.0.0.1:18099 AWS_ENDPOINT_URL_STS=http://127.0.0.1:18099 \
#   AWS_ROLE_ARN=arn:aws:iam::000000000000:role/ci-writer AWS_WEB_IDENTITY_TOKEN_FILE=token.jwt \
#   S3GATE_AKID=... S3GATE_SECRET=... S3GATE_HOME_ROLE=arn:...:role/home \
#   S3GATE_TEST_BUCKET=sts-bucket tests/clients/sts_awscli.sh
#
# Leaves awscli/web.txt (web identity, default chain), awscli/gst.txt (get-session-token) and
# home/red/carol/notes.txt (assume-role); a write under a read-only session policy is refused.
set -Eeuo pipefail
trap 'echo "sts_awscli.sh: failed at line $LINENO" >&2' ERR
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export AWS_CONFIG_FILE="$work/config" AWS_SHARED_CREDENTIALS_FILE="$work/credentials"
: >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
export AWS_DEFAULT_REGION=us-east-1 AWS_MAX_ATTEMPTS=1
s3() { aws --endpoint-url "$S3GATE_ENDPOINT" s3 "$@"; }
echo "written by the awscli" >"$work/a.txt"

echo "== web identity through the default credential chain"
s3 cp "$work/a.txt" "s3://$S3GATE_TEST_BUCKET/awscli/web.txt"
s3 cp "s3://$S3GATE_TEST_BUCKET/awscli/web.txt" "$work/b.txt"
cmp "$work/a.txt" "$work/b.txt"

echo "== get-session-token and assume-role with the long-term key"
unset AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE
export AWS_ACCESS_KEY_ID="$S3GATE_AKID" AWS_SECRET_ACCESS_KEY="$S3GATE_SECRET"
creds() { "$@" --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text; }
read -r ak sk st <<<"$(creds aws sts get-session-token --duration-seconds 900)"
AWS_ACCESS_KEY_ID="$ak" AWS_SECRET_ACCESS_KEY="$sk" AWS_SESSION_TOKEN="$st" \
    s3 cp "$work/a.txt" "s3://$S3GATE_TEST_BUCKET/awscli/gst.txt"

read -r ak sk st <<<"$(creds aws sts assume-role --role-arn "$S3GATE_HOME_ROLE" \
    --role-session-name carol --tags Key=team,Value=red)"
AWS_ACCESS_KEY_ID="$ak" AWS_SECRET_ACCESS_KEY="$sk" AWS_SESSION_TOKEN="$st" \
    s3 cp "$work/a.txt" "s3://$S3GATE_TEST_BUCKET/home/red/carol/notes.txt"

echo "== a session policy narrower than the role refuses the write"
policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}'
read -r ak sk st <<<"$(creds aws sts assume-role --role-arn "$S3GATE_HOME_ROLE" \
    --role-session-name carol --tags Key=team,Value=red --policy "$policy")"
if AWS_ACCESS_KEY_ID="$ak" AWS_SECRET_ACCESS_KEY="$sk" AWS_SESSION_TOKEN="$st" \
    s3 cp "$work/a.txt" "s3://$S3GATE_TEST_BUCKET/home/red/carol/denied.txt" 2>"$work/err"; then
    echo "the write under a read-only session policy succeeded" >&2
    exit 1
fi
grep -q AccessDenied "$work/err"
echo "== done"
