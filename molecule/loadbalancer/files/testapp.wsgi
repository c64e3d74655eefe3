"""A stand-in for a PanDA server behind the load balancer (until the real one exists).

/server/panda/isAlive answers like the server; /work answers 503 while the busy flag
file exists (an overloaded backend); /whoami shows what the load balancer told it and
mod_ssl's view of the connection (its client certificate, the server's issuer).
"""

import json
import os
import socket

BUSY_FLAG = "/var/lib/testapp/busy"
HOST = socket.gethostname()
IDENTITY_KEYS = {
    "SSL_CLIENT_VERIFY",
    "SSL_CLIENT_S_DN",
    "SSL_CLIENT_I_DN",
    "SSL_SERVER_I_DN",
    "HTTP_X_SSL_CLIENT_S_DN",
    "HTTP_X_SSL_CLIENT_VERIFY",
}


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    status, body, ctype = "200 OK", f"ok {HOST}\n", "text/plain"
    if path == "/server/panda/isAlive":
        body = "alive=yes"
    elif path == "/work" and os.path.exists(BUSY_FLAG):
        status, body = "503 Service Unavailable", "busy\n"
    elif path == "/whoami":
        ctype = "application/json"
        body = json.dumps(
            {
                "host": HOST,
                "remote_addr": environ.get("REMOTE_ADDR"),
                "dn": environ.get("HTTP_X_SSL_CLIENT_S_DN"),
                "verify": environ.get("HTTP_X_SSL_CLIENT_VERIFY"),
                "environ": {k: v for k, v in environ.items() if k in IDENTITY_KEYS},
            }
        )
    data = body.encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(data)))])
    return [data]
