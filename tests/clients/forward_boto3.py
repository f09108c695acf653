#!/usr/bin/env python3
"""boto3 through s3gate's forward proxy: only proxy variables, no endpoint change for HTTPS.

    HTTPS_PROXY=http://user:pw@127.0.0.1:3128 AWS_CA_BUNDLE=ca.pem \
    AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... S3GATE_TEST_BUCKET=try-forward \
    [S3GATE_FORWARD_ENDPOINT=http://s3.us-east-1.amazonaws.com HTTP_PROXY=...] \
    [S3GATE_KNOWN_FILE=file] .venv/bin/python tests/clients/forward_boto3.py

Also run by the transparent-mode tests, with no proxy and only name resolution changed
(S3GATE_TEST_DNS, see tests/clients/transparent/sitecustomize.py).

Puts, uploads multipart (upload_file and the low-level calls), gets, lists and deletes. Leaves
kept/known.bin; everything else it made is deleted. Exits non-zero at the first failed step.
"""

import os
import sys
import tempfile
import traceback

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

NAME = "forward_boto3.py"
MIB = 1024 * 1024


def env(name, required=True):
    value = os.environ.get(name, "")
    if required and not value:
        raise SystemExit(f"{NAME}: environment variable {name} is not set")
    return value or None


BUCKET = env("S3GATE_TEST_BUCKET")
ENDPOINT = env("S3GATE_FORWARD_ENDPOINT", required=False)
KNOWN = env("S3GATE_KNOWN_FILE", required=False)
if not (os.environ.get("HTTPS_PROXY") or os.environ.get("HTTP_PROXY") or os.environ.get("S3GATE_TEST_DNS")):
    raise SystemExit(f"{NAME}: neither HTTPS_PROXY, HTTP_PROXY nor S3GATE_TEST_DNS is set")


class StepFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise StepFailed(what)


def client():
    # The proxy comes from the environment, as in production; one attempt, so that a proxy
    # error is not hidden by a retry.
    config = Config(region_name="us-east-1", retries={"total_max_attempts": 1, "mode": "standard"})
    return boto3.session.Session().client("s3", endpoint_url=ENDPOINT, config=config)


def keys(s3):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def run(s3, work):
    s3.create_bucket(Bucket=BUCKET)

    s3.put_object(Bucket=BUCKET, Key="small.txt", Body=b"through the forward proxy\n")
    got = s3.get_object(Bucket=BUCKET, Key="small.txt")["Body"].read()
    check(got == b"through the forward proxy\n", f"small.txt: {got!r}")

    path = KNOWN
    if not path:
        path = os.path.join(work, "known.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(12 * MIB + 5))
    with open(path, "rb") as f:
        known = f.read()
    transfer = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=3)
    s3.upload_file(path, BUCKET, "kept/known.bin", Config=transfer)
    got = s3.get_object(Bucket=BUCKET, Key="kept/known.bin")["Body"].read()
    check(got == known, f"kept/known.bin: got {len(got)} bytes back, sent {len(known)}")

    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="manual.bin")
    parts = []
    chunks = [known[: 5 * MIB], known[5 * MIB : 5 * MIB + 1000]]
    for number, chunk in enumerate(chunks, start=1):
        part = s3.upload_part(
            Bucket=BUCKET, Key="manual.bin", UploadId=upload["UploadId"], PartNumber=number, Body=chunk
        )
        parts.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="manual.bin", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    got = s3.get_object(Bucket=BUCKET, Key="manual.bin")["Body"].read()
    check(got == b"".join(chunks), f"manual.bin: got {len(got)} bytes")

    listed = keys(s3)
    check(listed == ["kept/known.bin", "manual.bin", "small.txt"], f"listed {listed}")

    s3.delete_object(Bucket=BUCKET, Key="small.txt")
    s3.delete_object(Bucket=BUCKET, Key="manual.bin")
    listed = keys(s3)
    check(listed == ["kept/known.bin"], f"after deletes: {listed}")


def main():
    s3 = client()
    with tempfile.TemporaryDirectory() as work:
        try:
            run(s3, work)
        except Exception as err:  # noqa: BLE001 - report any failure with its traceback
            traceback.print_exc()
            print(f"{NAME}: FAILED: {err}", file=sys.stderr)
            return 1
    print(f"{NAME}: all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
