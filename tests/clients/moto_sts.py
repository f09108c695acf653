#!/usr/bin/env python3
"""moto's server as the upstream STS, writing each request it gets to a log, one JSON line each:
the form fields and whether it was signed. Listens on 127.0.0.1, port chosen by the kernel, and
prints the port on its first line of output once it is ready.

    .venv/bin/python tests/clients/moto_sts.py LOGFILE
"""

import json
import sys
import urllib.parse

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

LOG = sys.argv[1]
moto = DomainDispatcherApplication(create_backend_app)


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    record = {
        "fields": dict(urllib.parse.parse_qsl(body.decode("utf-8"))),
        "signed": environ.get("HTTP_AUTHORIZATION", "").startswith("AWS4-HMAC-SHA256 Credential="),
        "credential": environ.get("HTTP_AUTHORIZATION", "").split("Credential=")[-1].split("/")[0],
    }
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    import io

    environ["wsgi.input"] = io.BytesIO(body)
    return moto(environ, start_response)


server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
