"""Name resolution through s3gate's DNS responder, for the transparent-mode client tests.

Python imports `sitecustomize` at start-up from PYTHONPATH, so boto3 and awscli run unchanged:

    PYTHONPATH=tests/clients/transparent S3GATE_TEST_DNS=127.0.0.1:5353 \
    S3GATE_TEST_HTTPS_PORT=8443 .venv/bin/python tests/clients/forward_boto3.py

Every host name is looked up (A) at S3GATE_TEST_DNS with dnspython, as a resolv.conf naming
s3gate would have it looked up; port 443 becomes S3GATE_TEST_HTTPS_PORT, because a test cannot
bind 443. Nothing else about the client changes. Without S3GATE_TEST_DNS it does nothing.
"""

import ipaddress
import os
import socket

_DNS = os.environ.get("S3GATE_TEST_DNS")

if _DNS:
    import dns.resolver

    _host, _port = _DNS.rsplit(":", 1)
    _resolver = dns.resolver.Resolver(configure=False)
    _resolver.nameservers = [_host]
    _resolver.port = int(_port)
    _resolver.lifetime = 5.0
    _HTTPS_PORT = int(os.environ["S3GATE_TEST_HTTPS_PORT"])
    _system = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        try:
            ipaddress.ip_address(name or "")
            return _system(host, port, family, type, proto, flags)
        except ValueError:
            pass
        try:
            answer = _resolver.resolve(name, "A")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as err:
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: {err}") from err
        port = _HTTPS_PORT if str(port) in ("443", "https") else port
        kind = type or socket.SOCK_STREAM
        return [(socket.AF_INET, kind, 6, "", (r.address, int(port))) for r in answer]

    socket.getaddrinfo = getaddrinfo
