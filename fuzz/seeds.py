#!/usr/bin/env python3
"""Writes the seed corpus, fuzz/corpus/<target>/seed-*, from the inputs of s3gate's tests.

    python3 fuzz/seeds.py

Each seed is an input a unit or integration test feeds the same parser (the test is named
beside it), written in the target's input format (see the comment at the top of each target).
Regression inputs of crashes live beside them as regress-*; this script never touches those.
"""

import base64
import hashlib
import hmac
import json
import pathlib
import re
import struct

ROOT = pathlib.Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"

DOCS_AKID = "AKIAIOSFODNN7EXAMPLE"
DOCS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def write(target, seeds):
    """seeds: name -> bytes or str."""
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("seed-*"):
        old.unlink()
    for name, data in seeds.items():
        if isinstance(data, str):
            data = data.encode()
        (folder / f"seed-{name}").write_bytes(data)


def hmac256(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256).digest()


def signing_key(secret, date, region="us-east-1", service="s3"):
    k = hmac256(("AWS4" + secret).encode(), date)
    for part in (region, service, "aws4_request"):
        k = hmac256(k, part)
    return k


# chunked_decoder: src/sigv4/chunked/tests.rs ----------------------------------------------------

NOW = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"


def signed_body(chunks, trailers):
    """As rust_sdk_body() in the unit tests: seed signature [7; 32], the docs' secret."""
    key = signing_key(DOCS_SECRET, "20130524")
    previous = bytes([7] * 32)
    body = b""
    for chunk in list(chunks) + [b""]:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", NOW, SCOPE, previous.hex(), EMPTY_SHA256,
                         hashlib.sha256(chunk).hexdigest()])
        previous = hmac256(key, sts)
        body += f"{len(chunk):x};chunk-signature={previous.hex()}\r\n".encode()
        if chunk:
            body += chunk + b"\r\n"
    if trailers:
        canonical = "".join(f"{n}:{v}\n" for n, v in sorted(trailers))
        sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", NOW, SCOPE, previous.hex(),
                         hashlib.sha256(canonical.encode()).hexdigest()])
        for n, v in trailers:
            body += f"{n}:{v}\r\n".encode()
        body += f"x-amz-trailer-signature:{hmac256(key, sts).hex()}\r\n".encode()
    return body + b"\r\n"


def chunked(flags, piece, body, decoded_length=None):
    head = bytes([flags | (4 if decoded_length is not None else 0), piece])
    if decoded_length is not None:
        head += struct.pack("<H", decoded_length)
    return head + body


TRAILER, SIGNED = 1, 2
write("chunked_decoder", {
    "unsigned": chunked(0, 2, b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"),
    "unsigned-length": chunked(0, 0, b"5\r\nhello\r\n0\r\n\r\n", 5),
    "boto3-trailer": chunked(TRAILER, 4, b"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"),
    "empty-trailer": chunked(TRAILER, 0, b"0\r\n\r\n"),
    "extension": chunked(0, 99, b"5;" + b"x" * 100 + b"\r\nhello\r\n0\r\n\r\n"),
    "signed": chunked(SIGNED, 3, signed_body([b"hello"], [])),
    "signed-trailer": chunked(SIGNED | TRAILER, 6, signed_body([b"hello ", b"world"],
                                                               [("x-amz-checksum-crc32", "DUoRhQ==")])),
    "bare-lf": chunked(0, 0, b"5\nhello\r\n0\r\n\r\n"),
    "no-crlf-after-data": chunked(0, 0, b"5\r\nhelloXX0\r\n\r\n"),
    "after-end": chunked(0, 0, b"0\r\n\r\nextra"),
    "many-trailers": chunked(TRAILER, 63, b"0\r\n" + b"".join(b"x-t%d:v\r\n" % i for i in range(40)) + b"\r\n"),
})

# sigv4_authorization: src/sigv4/authorization/tests.rs, the S3 docs' examples -------------------

GET_OBJECT_AUTH = ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                   "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                   "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
head, fields = GET_OBJECT_AUTH.split(" ", 1)
write("sigv4_authorization", {
    "get-object": GET_OBJECT_AUTH,
    "get-object-spaced": GET_OBJECT_AUTH.replace(",S", ", S"),
    "get-object-reordered": head + " " + ",".join(reversed(fields.split(","))),
    "put-object": ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                   "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
                   "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
    "sigv2": f"AWS {DOCS_AKID}:c2lnbmF0dXJl",
    "twice": GET_OBJECT_AUTH + ",Signature=" + "0" * 64,
    "no-host": GET_OBJECT_AUTH.replace("host;", ""),
    "empty-name": GET_OBJECT_AUTH.replace("host;range", "host;;range"),
    "ec2": GET_OBJECT_AUTH.replace("/s3/", "/ec2/"),
    "slash-in-key": GET_OBJECT_AUTH.replace("AKIA", "A/K/I/A"),
})

# sigv4_presigned: the S3 docs' presigned GET, src/sigv4/presign/tests.rs ------------------------

DOCS_QUERY = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
              "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"
              "X-Amz-SignedHeaders=host&X-Amz-Signature="
              "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
write("sigv4_presigned", {
    "docs-get": DOCS_QUERY,
    "docs-get-extra": "uploads&" + DOCS_QUERY + "&versionId=3%2FL4kqtJl%2B40",
    "expires-zero": DOCS_QUERY.replace("Expires=86400", "Expires=0"),
    "expires-too-long": DOCS_QUERY.replace("Expires=86400", "Expires=604801"),
    "date-mismatch": DOCS_QUERY.replace("Date=20130524", "Date=20130525"),
    "twice": DOCS_QUERY + "&X-Amz-Date=20130524T000000Z",
    "missing-signature": DOCS_QUERY.split("&X-Amz-Signature")[0],
})

# proxy_protocol: src/proxy_protocol/tests.rs ----------------------------------------------------

V2_SIG = b"\r\n\r\n\0\r\nQUIT\n"
REQUEST = b"GET /bucket/key HTTP/1.1\r\nHost: s3\r\n\r\n"


def v2(ver_cmd, family, payload):
    return V2_SIG + bytes([ver_cmd, family]) + struct.pack(">H", len(payload)) + payload


def tlv(kind, value):
    return bytes([kind]) + struct.pack(">H", len(value)) + value


def v2_inet(tlvs=b""):
    return v2(0x21, 0x11, bytes([10, 0, 0, 5, 10, 0, 1, 10]) + struct.pack(">HH", 51234, 443) + tlvs)


ipv6 = bytes.fromhex("20010db8000000000000000000000005") + bytes.fromhex("20010db8000000000000000000000001")
write("proxy_protocol", {
    "v1-tcp4": b"PROXY TCP4 192.0.2.10 198.51.100.1 56324 443\r\n" + REQUEST,
    "v1-tcp6": b"PROXY TCP6 2001:db8::10 2001:db8::1 65535 8099\r\n" + REQUEST,
    "v1-longest": b"PROXY TCP6 " + b"ffff:" * 7 + b"ffff " + b"ffff:" * 7 + b"ffff 65535 65535\r\n",
    "v1-unknown": b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n" + REQUEST,
    "v1-bad-port": b"PROXY TCP4 192.0.2.10 198.51.100.1 65536 2\r\n",
    "v1-lf": b"PROXY UNKNOWN\n\r\nmore bytes",
    "v1-too-long": b"PROXY TCP4 " + b"1" * 120,
    "v2-ipv4": v2_inet() + REQUEST,
    "v2-ipv6": v2(0x21, 0x21, ipv6 + struct.pack(">HH", 40000, 443)),
    "v2-local": v2(0x20, 0x00, b""),
    "v2-unix": v2(0x21, 0x31, bytes(216)),
    "v2-vpce": v2_inet(tlv(0x04, bytes(3)) + tlv(0xEA, b"\x01vpce-08d2bf15fac5001c9")) + REQUEST,
    "v2-tlv-past-end": v2_inet(bytes([0x04, 0x00, 0x05, 1, 2])),
    "v2-too-long": v2(0x21, 0x11, b"")[:14] + b"\xff\xff" + bytes(20),
    "xff": b"203.0.113.9, 10.0.0.1, [2001:db8::1]:443",
})

# classify: src/s3_request/tests.rs (the OPERATIONS table and the tests after it) ---------------

DOMAIN = "s3.gw.test"
tests = (ROOT.parent / "src/s3_request/tests.rs").read_text()
rows = re.findall(r'^    \("([A-Z]+)", "([^"]*)", "([^"]*)", (&\[\]|COPY),', tests, re.M)
classify = {}
for i, (method, path, query, headers) in enumerate(rows[::3]):
    target = path + ("?" + query if query else "")
    extra = "x-amz-copy-source: /src/a%20b.txt\n" if headers == "COPY" else ""
    classify[f"op{i:02}"] = f"{method} {target}\n{DOMAIN}\n{extra}"
classify.update({
    "vhost-dotted": "GET /a/b.txt\nmy.dotted.bucket.s3.gw.test:8443\n",
    "vhost-case": "GET /\nBkt.GW.test\n",
    "vhost-lead": "GET //lead\nbkt.s3.gw.test.\n",
    "ipv6-host": "GET /bkt/k\n[::1]:9000\n",
    "keys-once": "GET /bkt/%2B%25%7E%3D%3A%40%21%24%26%27%28%29%2A%2C%3B\ns3.gw.test\n",
    "unicode": "GET /bkt/caf%C3%A9/%E6%97%A5%E6%9C%AC\ns3.gw.test\n",
    "query-order": "GET /bkt?list-type=2&prefix=a+b%2Bc%2F&delimiter=%2F&fetch-owner\ns3.gw.test\n",
    "presigned": ("GET /bkt/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20240101%2Fus-east-1%2Fs3%2F"
                  "aws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&"
                  "X-Amz-Signature=ab\ns3.gw.test\n"),
    "dot-segment": "GET /bkt/a/../other\ns3.gw.test\n",
    "ambiguous": "GET /bkt?acl&policy\ns3.gw.test\n",
    "copy-version": "PUT /bkt/k\ns3.gw.test\nx-amz-copy-source: src/dir/k%2Bx?versionId=v%2B1\n",
})
write("classify", classify)

# post_policy: src/presign/post/tests.rs ---------------------------------------------------------

standard = {
    "expiration": "2024-05-01T13:00:00.000Z",
    "conditions": [
        {"bucket": "uploads"},
        ["starts-with", "$key", "user/eric/"],
        ["eq", "$Content-Type", "text/plain"],
        ["content-length-range", 1, 1000],
        {"success_action_status": "201"},
        ["starts-with", "$x-amz-meta-colour", ""],
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": "AKIDPOST/20240501/us-east-1/s3/aws4_request"},
        {"x-amz-date": "20240501T110000Z"},
    ],
}
write("post_policy", {
    "standard": json.dumps(standard),
    "content-type-list": json.dumps({"expiration": "2024-05-01T13:00:00Z", "conditions": [
        ["starts-with", "$key", ""], ["starts-with", "$content-type", "image/"]]}),
    "quoted-range": json.dumps({"expiration": "2024-05-01T13:00:00+02:00", "conditions": [
        ["content-length-range", "0", "10485760"], ["STARTS-WITH", "$Key", "a"]]}),
    "bad-operator": json.dumps({"expiration": "2024-05-01T13:00:00Z", "conditions": [["matches", "$key", ".*"]]}),
    "no-expiration": '{"conditions":[]}',
    "base64-text": base64.b64encode(json.dumps(standard).encode()).decode(),
})

# policy_json: src/policy/tests.rs, examples/s3gate.toml -----------------------------------------

def doc(statements, version="2012-10-17"):
    return '{"Version": "%s", "Statement": %s}' % (version, statements)


write("policy_json", {
    "read-only": doc('''[
  {"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data"},
  {"Sid": "Read", "Effect": "Allow", "Action": ["s3:Get*", "S3:HEADOBJECT"], "Resource": "arn:aws:s3:::data/*"},
  {"Sid": "NoSecrets", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::data/secret/*"}
]'''),
    "not-resource": doc('''[{"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
  {"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::data", "arn:aws:s3:::data/*"]}]'''),
    "not-action": doc('{"Effect": "Allow", "NotAction": ["s3:Delete*", "s3:Put*Policy"], "Resource": "*"}'),
    "home": doc('{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::data/home/${aws:username}/*"}'),
    "home-2008": doc('{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::data/${aws:username}/*"}',
                     "2008-10-17"),
    "conditions": doc('''{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::data",
  "Condition": {"StringLike": {"s3:prefix": ["", "home/${aws:username}/*"]},
                "Bool": {"aws:SecureTransport": "true"},
                "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]},
                "NumericLessThanEquals": {"s3:max-keys": 100},
                "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"},
                "ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]},
                "StringEqualsIfExists": {"s3:x-amz-storage-class": "STANDARD"},
                "Null": {"s3:x-amz-server-side-encryption": "true"}}}'''),
    "variables": doc('''{"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {
  "StringEquals": {"s3:prefix": "home/${aws:username, 'nobody'}/${*}${?}${$}"}}}'''),
    "example-config": doc('''[
    { "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
      "Resource": ["arn:aws:s3:::analytics", "arn:aws:s3:::analytics/*"] },
    { "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::analytics/pii/*",
      "Condition": { "NotIpAddress": { "aws:SourceIp": "10.20.0.0/16" } } }
  ]'''),
    "bad-cidr": doc('{"Effect": "Deny", "Action": "*", "Resource": "*", '
                    '"Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}}'),
    "principal": '{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"}}',
    "unknown-field": '{"Statement": [], "Statements": []}',
})

# forward_allow: src/forward/allow/tests.rs -------------------------------------------------------

hosts = [
    "s3.amazonaws.com", "my-bucket.s3.amazonaws.com", "dotted.bucket.name.s3.amazonaws.com",
    "my-bucket.s3.dualstack.us-east-1.amazonaws.com", "s3-fips.us-gov-west-1.amazonaws.com",
    "ap-123456789012.s3-accesspoint.eu-west-1.amazonaws.com",
    "bucket.vpce-0abc.s3.cn-north-1.vpce.amazonaws.com.cn", "S3.Amazonaws.COM.",
    "evil-s3.amazonaws.com.example", "s3.amazonaws.com.evil.example", "127.1", "2130706433",
    "0x7f000001", "10.0.0.1.", "169.254.169.254", "[::1]", "::1", "[nonsense]", "a..b", "a b",
    "localhost", "*.s3.*.amazonaws.com", "s3-*.example.com", "*..com",
]
write("forward_allow", {re.sub(r"[^a-z0-9.-]", "_", h.lower()) or "empty": h for h in hosts})

# config_toml: examples/s3gate.toml, tests/it/config.rs, tests/it/access.rs ------------------------

write("config_toml", {
    "example": (ROOT.parent / "examples/s3gate.toml").read_text(),
    "precedence": '''
        listen = "127.0.0.1:1000"
        region = "eu-west-1"
        upstream = "http://file.example:9000"
        credentials = ["FILEKEY:filesecret"]
''',
    "routes": '''credentials = ["A:1"]
[[route]]
bucket = "eu-*"
name = "europe"
upstream = "http://127.0.0.1:9000"
region = "eu-west-1"
upstream_credentials = "STOREKEY:storesecret"

[[route]]
bucket = "nice-name"
alias = "ugly-upstream-name-123"
storage_class = "glacier_ir"
''',
    "client": '''[[client]]
access_key_id = "READONLYKEY000000001"
secret_access_key = "reader-secret-0123456789abcdefghijklmno"
policy = \'\'\'
{ "Version": "2012-10-17",
  "Statement": [{ "Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::shared/inbox/*" }] }
\'\'\'
''',
    "forward-only": '''listen = "none"
[forward]
listen = "127.0.0.1:3128"
allow = ["@aws-s3", "minio.internal", "10.0.0.7"]
allow_port = [443, 9000]
connect_to = ["*.amazonaws.com=10.0.12.34"]
user = ["proxyuser:proxypass"]
max_tunnels = 0
''',
    "typo": 'listne = "x"\n',
})
