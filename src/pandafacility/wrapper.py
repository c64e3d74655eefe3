#!/usr/bin/env python3
"""The pilot wrapper: what the pilot factory submits to a grid site. It downloads the
pilot code from the pilot cache, checks it, unpacks it in the job's directory and runs
the pilot with the rest of its arguments; the pilot's exit code is the wrapper's.

    wrapper.py --pilot-url https://pilotcode.example.org/pilot/pilot-<sha256>.tar.gz \\
        --pilot-sha256 <sha256> --ca ca.crt \\
        -- --server https://pandaserver.example.org:25443 --queue BNL_ATLAS_1 ...

The code comes only over HTTPS, verified against ``--ca`` (the facility CA the factory
sends with the pilot) when given, and is run only if its SHA-256 is the one the factory
read from the pilot cache when it submitted this pilot: a tarball changed on the way is
refused (exit 64) before anything of it is unpacked.

Standard library only, and no state: each pilot fetches the code afresh, so a commit to
the pilot code reaches the next pilot the factory submits.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import io
import os
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

ATTEMPTS = 3
MAX_SIZE = 256 * 1024 * 1024
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


class Refused(ValueError):
    """The pilot code is not what the factory vouched for."""


def download(url: str, ca: str = "", attempts: int | None = None) -> bytes:
    attempts = attempts or ATTEMPTS
    if not url.startswith("https://"):
        raise Refused(f"{url}: the pilot code comes over HTTPS only")
    context = ssl.create_default_context(cafile=ca or None)
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=60, context=context) as answer:
                data = answer.read(MAX_SIZE + 1)
            if len(data) > MAX_SIZE:
                raise ValueError(f"pilot code at {url} is larger than {MAX_SIZE} bytes")
            return data
        except OSError as exc:
            if attempt == attempts:
                raise
            print(f"wrapper: download failed ({exc}), retrying", file=sys.stderr)
            time.sleep(2 * attempt)
    raise AssertionError("unreachable")


def verify(data: bytes, sha256: str) -> bytes:
    """The tarball, if its SHA-256 is the expected one."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256.strip().lower():
        raise Refused(f"the pilot code's SHA-256 is {digest}, the factory expected {sha256}")
    return data


def unpack(data: bytes, into: Path) -> Path:
    """Extract the tarball (members must stay inside ``into``); the pilot's path."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.9 with PEP 706 backported
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into, members=checked_members(tar, into))
    pilot = into / "pilot" / "pilot.py"
    if not pilot.is_file():
        raise ValueError("the pilot code has no pilot/pilot.py")
    return pilot


def checked_members(tar: tarfile.TarFile, into: Path) -> list[tarfile.TarInfo]:
    """Where the tarfile module has no extraction filters (Python 3.9 before 3.9.17): only
    files and directories, each inside ``into``, without set-id bits or write access
    for others; anything else refuses the whole tarball."""
    root = into.resolve()
    members = tar.getmembers()
    for member in members:
        target = (root / member.name).resolve()
        if not (member.isfile() or member.isdir()) or (
            target != root and root not in target.parents
        ):
            raise tarfile.TarError(f"refused member {member.name!r} of the pilot code")
        member.mode &= 0o755
    return members


def main(argv: list[str] | None = None) -> int:
    # Not dumpable, as the pilot: a payload of the same user must not read this
    # process's /proc entries (its working directory holds the pilot's proxy).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    own, rest = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pilot-url", required=True, help="the pilot code tarball (https)")
    parser.add_argument("--pilot-sha256", required=True, help="the tarball's SHA-256 (hex)")
    parser.add_argument("--ca", default="", help="CA file that verifies the pilot cache")
    args = parser.parse_args(own)
    work = Path(os.getcwd())
    try:
        data = verify(download(args.pilot_url, args.ca), args.pilot_sha256)
        pilot = unpack(data, work)
    except (OSError, ValueError, tarfile.TarError) as exc:
        print(f"wrapper: no pilot code: {exc}", file=sys.stderr)
        return 64
    print(f"wrapper: running {pilot} from {args.pilot_url}", flush=True)
    # A batch system may start the job without PATH: Python then cannot name its own
    # executable, and payloads expect the usual directories.
    os.environ.setdefault("PATH", DEFAULT_PATH)
    python = sys.executable or os.path.realpath("/proc/self/exe")
    return subprocess.call([python, str(pilot), *rest], cwd=work)


if __name__ == "__main__":
    sys.exit(main())
