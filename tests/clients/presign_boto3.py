#!/usr/bin/env python3
"""boto3-minted presigned URLs and POST policies, used with plain `requests` (no SDK on the wire).

    S3GATE_ENDPOINT=http://127.0.0.1:18099 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
    .venv/bin/python tests/clients/presign_boto3.py roundtrip BUCKET KEY FILE
    .venv/bin/python tests/clients/presign_boto3.py url get_object|put_object|head_object|delete_object BUCKET KEY SECONDS
    .venv/bin/python tests/clients/presign_boto3.py post BUCKET KEY FILE MAX_BYTES

roundtrip: PUTs FILE's bytes with a presigned put_object URL, GETs them back with a presigned
get_object URL and compares; prints `GET_URL=<url>` last. url: prints one presigned URL. post:
uploads FILE with a boto3 `generate_presigned_post` form (Content-Type text/plain, status 201,
content-length-range 1..MAX_BYTES) and prints `STATUS=<code>` then the response body. Exits
non-zero at the first failed step.
"""

import os
import sys

import boto3
import requests
from botocore.config import Config

NAME = "presign_boto3.py"


def env(name):
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"{NAME}: environment variable {name} is not set")
    return value


ENDPOINT = env("S3GATE_ENDPOINT")


def client():
    config = Config(
        region_name="us-east-1",
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    return boto3.session.Session(
        aws_access_key_id=env("AWS_ACCESS_KEY_ID"), aws_secret_access_key=env("AWS_SECRET_ACCESS_KEY")
    ).client("s3", endpoint_url=ENDPOINT, config=config)


def fail(what, resp):
    raise SystemExit(f"{NAME}: {what}: HTTP {resp.status_code}\n{resp.text}")


def roundtrip(bucket, key, path):
    s3 = client()
    with open(path, "rb") as f:
        data = f.read()
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
    resp = requests.put(put_url, data=data, timeout=60)
    if resp.status_code != 200:
        fail("presigned PUT", resp)
    print(f"PUT {len(data)} bytes: {resp.status_code}, ETag {resp.headers.get('ETag')}")
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600)
    resp = requests.get(get_url, timeout=60)
    if resp.status_code != 200:
        fail("presigned GET", resp)
    if resp.content != data:
        raise SystemExit(f"{NAME}: presigned GET returned {len(resp.content)} bytes that differ from the {len(data)} sent")
    print(f"GET {len(resp.content)} bytes: identical")
    print(f"GET_URL={get_url}")


def url(operation, bucket, key, seconds):
    print(client().generate_presigned_url(operation, Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(seconds)))


def post(bucket, key, path, max_bytes):
    form = client().generate_presigned_post(
        bucket,
        key,
        Fields={"Content-Type": "text/plain", "success_action_status": "201"},
        Conditions=[
            {"Content-Type": "text/plain"},
            {"success_action_status": "201"},
            ["content-length-range", 1, int(max_bytes)],
        ],
        ExpiresIn=600,
    )
    with open(path, "rb") as f:
        resp = requests.post(form["url"], data=form["fields"], files={"file": (os.path.basename(path), f)}, timeout=60)
    print(f"STATUS={resp.status_code}")
    print(resp.text)


def main(argv):
    commands = {"roundtrip": (roundtrip, 3), "url": (url, 4), "post": (post, 4)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        raise SystemExit(__doc__)
    function, _ = commands[argv[1]]
    function(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
