#!/usr/bin/env python3
"""boto3 getting temporary credentials from s3gate's STS with no code change, then using S3.

    S3GATE_ENDPOINT=http://127.0.0.1:18099 AWS_ENDPOINT_URL_STS=http://127.0.0.1:18099 \
    AWS_ROLE_ARN=arn:aws:iam::000000000000:role/ci-writer AWS_WEB_IDENTITY_TOKEN_FILE=token.jwt \
    S3GATE_AKID=... S3GATE_SECRET=... S3GATE_HOME_ROLE=arn:...:role/home S3GATE_TEST_BUCKET=sts-bucket \
    .venv/bin/python tests/clients/sts_boto3.py

1. The default credential chain (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, no keys): writes
   boto3/web.txt, and is refused outside the role's bucket.
2. sts.assume_role with the long-term key, a session tag and a session name: writes only under
   home/<team>/<session>/; with a session policy allowing only reads, its write is refused.
3. sts.get_session_token: writes boto3/gst.txt.
Exits non-zero at the first failed step.
"""

import json
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3GATE_ENDPOINT"]
BUCKET = os.environ["S3GATE_TEST_BUCKET"]
CONFIG = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})


def step(text):
    print(f"== sts_boto3.py: {text}", flush=True)


def s3_with(creds):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=CONFIG,
    )


def refused(call, code="AccessDenied"):
    try:
        call()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}"
        return
    raise AssertionError(f"expected {code}, the call succeeded")


step("web identity through the default credential chain")
chain = boto3.Session(region_name="us-east-1")
frozen = chain.get_credentials().get_frozen_credentials()
assert frozen.access_key.startswith("ASIA") and frozen.token, "temporary credentials from s3gate"
s3 = chain.client("s3", endpoint_url=ENDPOINT, config=CONFIG)
s3.put_object(Bucket=BUCKET, Key="boto3/web.txt", Body=b"web identity")
assert s3.get_object(Bucket=BUCKET, Key="boto3/web.txt")["Body"].read() == b"web identity"
refused(lambda: s3.put_object(Bucket="another-bucket", Key="x", Body=b"x"))

step("assume_role with the long-term key, a session tag and a source identity")
long_term = boto3.Session(
    aws_access_key_id=os.environ["S3GATE_AKID"],
    aws_secret_access_key=os.environ["S3GATE_SECRET"],
    region_name="us-east-1",
)
sts = long_term.client("sts", config=CONFIG)
home = os.environ["S3GATE_HOME_ROLE"]
tags = [{"Key": "team", "Value": "blue"}]
answer = sts.assume_role(RoleArn=home, RoleSessionName="alice", Tags=tags, SourceIdentity="alice", DurationSeconds=900)
assert answer["AssumedRoleUser"]["Arn"].endswith(":assumed-role/home/alice"), answer["AssumedRoleUser"]
assert answer["SourceIdentity"] == "alice"
alice = s3_with(answer["Credentials"])
alice.put_object(Bucket=BUCKET, Key="home/blue/alice/notes.txt", Body=b"mine")
refused(lambda: alice.put_object(Bucket=BUCKET, Key="home/blue/bob/notes.txt", Body=b"not mine"))

step("assume_role with a session policy narrower than the role")
read_only = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}],
})
narrow = sts.assume_role(RoleArn=home, RoleSessionName="alice", Tags=tags, Policy=read_only)
reader = s3_with(narrow["Credentials"])
assert reader.get_object(Bucket=BUCKET, Key="home/blue/alice/notes.txt")["Body"].read() == b"mine"
refused(lambda: reader.put_object(Bucket=BUCKET, Key="home/blue/alice/denied.txt", Body=b"x"))
refused(lambda: sts.assume_role(RoleArn=home, RoleSessionName="alice", Policy="{not json"), "MalformedPolicyDocument")
refused(lambda: sts.assume_role(RoleArn=home, RoleSessionName="alice", DurationSeconds=7201), "ValidationError")

step("get_session_token")
gst = sts.get_session_token(DurationSeconds=900)
user = s3_with(gst["Credentials"])
user.put_object(Bucket=BUCKET, Key="boto3/gst.txt", Body=b"session")
temporary = gst["Credentials"]
temp_sts = boto3.client(
    "sts",
    region_name="us-east-1",
    aws_access_key_id=temporary["AccessKeyId"],
    aws_secret_access_key=temporary["SecretAccessKey"],
    aws_session_token=temporary["SessionToken"],
    config=CONFIG,
)
refused(lambda: temp_sts.get_session_token())
step("done")
