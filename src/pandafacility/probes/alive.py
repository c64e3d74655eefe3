"""A PanDA service answers over HTTPS: isAlive of a server or the logger, through the VIP
or one backend by address, or a monitor page whose body must match."""

from __future__ import annotations

import argparse
import http.client
import re
import socket
import ssl
import time
import urllib.parse

from pandafacility.probes.plugin import CRITICAL, OK, Perf, Result, above, worst


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alive", description=__doc__)
    p.add_argument("--url", required=True, help="https://name:port/path")
    p.add_argument("--expect", default="alive=yes", help="regular expression the body must match")
    p.add_argument("--address", help="connect here (a backend) but verify the URL's name")
    p.add_argument("--ca", help="CA file that signed the service's certificate")
    p.add_argument("--cert", help="client certificate and key (PEM), if the page needs one")
    p.add_argument("--warn", type=float, default=2.0, help="seconds")
    p.add_argument("--crit", type=float, default=10.0, help="seconds")
    p.add_argument("--timeout", type=float, default=20.0)
    return p


def fetch(args: argparse.Namespace) -> tuple[int, str]:
    url = urllib.parse.urlsplit(args.url)
    context = ssl.create_default_context(cafile=args.ca)
    if args.cert:
        context.load_cert_chain(args.cert)
    name, port = url.hostname or "", url.port or 443
    address = args.address or name

    class Connection(http.client.HTTPSConnection):
        def connect(self) -> None:
            sock = socket.create_connection((address, port), self.timeout)
            self.sock = context.wrap_socket(sock, server_hostname=name)

    conn = Connection(name, port, timeout=args.timeout, context=context)
    try:
        conn.request("GET", url.path + (f"?{url.query}" if url.query else ""))
        answer = conn.getresponse()
        return answer.status, answer.read(1_000_000).decode("utf-8", "replace")
    finally:
        conn.close()


def check(args: argparse.Namespace) -> Result:
    start = time.monotonic()
    try:
        status, body = fetch(args)
    except (OSError, http.client.HTTPException) as exc:
        where = f" via {args.address}" if args.address else ""
        return Result(CRITICAL, f"{args.url}{where}: {exc}")
    took = time.monotonic() - start
    perf = [Perf("time", round(took, 3), "s", args.warn, args.crit, 0)]
    if status != 200:
        return Result(CRITICAL, f"{args.url}: HTTP {status}", perf)
    if not re.search(args.expect, body):
        return Result(CRITICAL, f"{args.url}: body does not match {args.expect!r}", perf)
    state = worst([OK, above(took, args.warn, args.crit)])
    return Result(state, f"{args.url} answered in {took:.2f} s", perf)
