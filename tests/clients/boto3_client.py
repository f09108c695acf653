#!/usr/bin/env python3
"""boto3 against s3gate, with boto3's default checksum settings.

    S3GATE_ENDPOINT=http://127.0.0.1:18099 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
    S3GATE_TEST_BUCKET=try-boto3 [S3GATE_CA_BUNDLE=ca.pem] .venv/bin/python tests/clients/boto3_client.py

Leaves kept/known.bin (upload_file, multipart) and kept/put.bin (put_object), both the bytes of
S3GATE_KNOWN_FILE; everything else it made is deleted. Exits non-zero at the first failed step.
"""

import hashlib
import os
import sys
import tempfile
import traceback

import boto3
import botocore
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

NAME = "boto3_client.py"
MIB = 1024 * 1024


def env(name, required=True):
    value = os.environ.get(name, "")
    if required and not value:
        raise SystemExit(f"{NAME}: environment variable {name} is not set")
    return value or None


ENDPOINT = env("S3GATE_ENDPOINT")
AKID = env("AWS_ACCESS_KEY_ID")
SECRET = env("AWS_SECRET_ACCESS_KEY")
BUCKET = env("S3GATE_TEST_BUCKET")
CA = env("S3GATE_CA_BUNDLE", required=False)
KNOWN = env("S3GATE_KNOWN_FILE", required=False)


class StepFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise StepFailed(what)


def client(secret=SECRET):
    # One attempt: a retry would hide a gateway error. Checksums stay at boto3's defaults.
    config = Config(
        region_name="us-east-1",
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    session = boto3.session.Session(aws_access_key_id=AKID, aws_secret_access_key=secret)
    return session.client("s3", endpoint_url=ENDPOINT, config=config, verify=CA if CA else None)


def error_code(err):
    return err.response.get("Error", {}).get("Code")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as err:
        check(error_code(err) == code, f"expected {code}, got {error_code(err)}: {err}")
        return
    raise StepFailed(f"expected {code}, the call succeeded")


def create_bucket(s3, state):
    s3.create_bucket(Bucket=BUCKET)


def put_small_with_metadata(s3, state):
    s3.put_object(
        Bucket=BUCKET,
        Key="small/hello.txt",
        Body=b"hello, gateway\n",
        ContentType="text/plain",
        Metadata={"colour": "blue", "owner": "tests"},
    )
    head = s3.head_object(Bucket=BUCKET, Key="small/hello.txt")
    check(head["ContentLength"] == 15, f"ContentLength {head['ContentLength']}")
    check(head["ContentType"] == "text/plain", f"ContentType {head['ContentType']}")
    check(head["Metadata"] == {"colour": "blue", "owner": "tests"}, f"Metadata {head['Metadata']}")
    body = s3.get_object(Bucket=BUCKET, Key="small/hello.txt")["Body"].read()
    check(body == b"hello, gateway\n", f"body {body!r}")


def upload_and_download_big(s3, state):
    big = os.path.join(state["work"], "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(20 * MIB))
    transfer = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=4)
    s3.upload_file(big, BUCKET, "big/big.bin", Config=transfer)
    head = s3.head_object(Bucket=BUCKET, Key="big/big.bin")
    check(head["ContentLength"] == 20 * MIB, f"ContentLength {head['ContentLength']}")
    print(f"  big/big.bin ETag {head['ETag']}")
    down = os.path.join(state["work"], "big.down")
    s3.download_file(BUCKET, "big/big.bin", down, Config=transfer)
    check(sha256_file(big) == sha256_file(down), "downloaded file differs from the uploaded one")
    state["big"] = big


def ranged_get(s3, state):
    with open(state["big"], "rb") as f:
        data = f.read()
    got = s3.get_object(Bucket=BUCKET, Key="big/big.bin", Range="bytes=100-199")
    check(got["ContentLength"] == 100, f"ContentLength {got['ContentLength']}")
    check(got["Body"].read() == data[100:200], "bytes=100-199 differ")
    check(got["ContentRange"] == f"bytes 100-199/{len(data)}", f"ContentRange {got['ContentRange']}")
    tail = s3.get_object(Bucket=BUCKET, Key="big/big.bin", Range="bytes=-10")["Body"].read()
    check(tail == data[-10:], "bytes=-10 differ")
    # Spans a multipart part boundary.
    mid = s3.get_object(Bucket=BUCKET, Key="big/big.bin", Range=f"bytes={5 * MIB - 3}-{5 * MIB + 2}")
    check(mid["Body"].read() == data[5 * MIB - 3 : 5 * MIB + 3], "range across a part boundary differs")


def keep_known(s3, state):
    path = KNOWN
    if not path:
        path = os.path.join(state["work"], "known.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(12 * MIB + 5))
    with open(path, "rb") as f:
        data = f.read()
    transfer = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.upload_file(path, BUCKET, "kept/known.bin", Config=transfer)
    s3.put_object(Bucket=BUCKET, Key="kept/put.bin", Body=data)
    for key in ("kept/known.bin", "kept/put.bin"):
        got = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        check(got == data, f"{key}: got {len(got)} bytes back, sent {len(data)}")


def list_with_prefix_delimiter_and_pages(s3, state):
    keys = ["list/a/1", "list/a/2", "list/b/1", "list/c", "list/d"]
    for k in keys:
        s3.put_object(Bucket=BUCKET, Key=k, Body=k.encode())
    out = s3.list_objects_v2(Bucket=BUCKET, Prefix="list/", Delimiter="/")
    prefixes = [p["Prefix"] for p in out.get("CommonPrefixes", [])]
    check(prefixes == ["list/a/", "list/b/"], f"CommonPrefixes {prefixes}")
    contents = [o["Key"] for o in out.get("Contents", [])]
    check(contents == ["list/c", "list/d"], f"Contents {contents}")

    seen, pages, token = [], 0, None
    while True:
        kwargs = {"Bucket": BUCKET, "Prefix": "list/", "MaxKeys": 2}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        pages += 1
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            break
        token = page["NextContinuationToken"]
        check(pages < 10, "pagination does not end")
    check(seen == keys, f"paged keys {seen}")
    check(pages == 3, f"{pages} pages of 2 for 5 keys")

    paged = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="list/", PaginationConfig={"PageSize": 2}):
        paged += [o["Key"] for o in page.get("Contents", [])]
    check(paged == keys, f"paginator keys {paged}")


def copy(s3, state):
    s3.copy_object(Bucket=BUCKET, Key="small/copy.txt", CopySource={"Bucket": BUCKET, "Key": "small/hello.txt"})
    got = s3.get_object(Bucket=BUCKET, Key="small/copy.txt")
    check(got["Body"].read() == b"hello, gateway\n", "copied body differs")
    check(got["Metadata"] == {"colour": "blue", "owner": "tests"}, f"copied Metadata {got['Metadata']}")


def missing_objects(s3, state):
    expect_error("NoSuchKey", s3.get_object, Bucket=BUCKET, Key="no/such/key")
    expect_error("404", s3.head_object, Bucket=BUCKET, Key="no/such/key")


def presigned_urls(s3, state):
    verify = CA if CA else True
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "small/presigned.txt"}, ExpiresIn=300)
    r = requests.put(put_url, data=b"sent with a presigned URL", verify=verify, timeout=60)
    check(r.status_code == 200, f"presigned PUT: {r.status_code} {r.text}")
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "small/presigned.txt"}, ExpiresIn=300)
    r = requests.get(get_url, verify=verify, timeout=60)
    check(r.status_code == 200, f"presigned GET: {r.status_code} {r.text}")
    check(r.content == b"sent with a presigned URL", f"presigned GET body {r.content!r}")


def wrong_secret_is_refused(s3, state):
    bad = client(secret=SECRET[:-1] + ("A" if SECRET[-1] != "A" else "B"))
    expect_error("SignatureDoesNotMatch", bad.list_objects_v2, Bucket=BUCKET)
    expect_error("SignatureDoesNotMatch", bad.put_object, Bucket=BUCKET, Key="small/forged.txt", Body=b"forged")
    expect_error("SignatureDoesNotMatch", bad.get_object, Bucket=BUCKET, Key="small/hello.txt")
    expect_error("NoSuchKey", s3.get_object, Bucket=BUCKET, Key="small/forged.txt")


def delete_everything_but_kept(s3, state):
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET) for o in page.get("Contents", [])]
    doomed = [k for k in keys if not k.startswith("kept/")]
    check(len(doomed) >= 9, f"only {len(doomed)} objects to delete: {doomed}")
    out = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in doomed]})
    check(not out.get("Errors"), f"delete_objects errors {out.get('Errors')}")
    deleted = sorted(d["Key"] for d in out.get("Deleted", []))
    check(deleted == sorted(doomed), f"deleted {deleted}, asked for {sorted(doomed)}")
    left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))
    check(left == ["kept/known.bin", "kept/put.bin"], f"left after delete_objects: {left}")


STEPS = [
    ("create_bucket", create_bucket),
    ("put_object small with metadata, head_object, get_object", put_small_with_metadata),
    ("upload_file 20 MiB (multipart), download_file, sha256", upload_and_download_big),
    ("ranged get_object", ranged_get),
    ("upload the known file as kept/known.bin and kept/put.bin", keep_known),
    ("list_objects_v2 with prefix, delimiter and pages", list_with_prefix_delimiter_and_pages),
    ("copy_object", copy),
    ("missing objects", missing_objects),
    ("presigned PUT and GET with requests", presigned_urls),
    ("a wrong secret gets SignatureDoesNotMatch", wrong_secret_is_refused),
    ("delete_objects", delete_everything_but_kept),
]


def main():
    print(f"{NAME}: boto3 {boto3.__version__}, botocore {botocore.__version__}, endpoint {ENDPOINT}")
    s3 = client()
    with tempfile.TemporaryDirectory(prefix="s3gate-boto3.") as work:
        state = {"work": work}
        for name, fn in STEPS:
            print(f"== {NAME}: {name}", flush=True)
            try:
                fn(s3, state)
            except Exception as err:  # noqa: BLE001 - any failure ends the run with its step named
                traceback.print_exc()
                print(f"{NAME}: FAILED at step '{name}': {type(err).__name__}: {err}", file=sys.stderr)
                return 1
    print(f"{NAME}: all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
