#!/usr/bin/env python3
"""The package's unit tests under a real Python 3.9, the platform Python of EL9.

What the roles install on hosts (``src/pandafacility``) must run on EL9's Python 3.9 and
its mod_wsgi. No EL package source is reachable here; Debian 11 "bullseye" carries
Python 3.9 and is on the mirror the lab already reads, so its python3 and pytest, in an
image built like the lab's (debootstrap, no registry), run the package's unit tests with
the checkout mounted read-only and no network.

    python tools/py39.py [pytest arguments]
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import lab

SUITE = "bullseye"  # Debian 11: Python 3.9.2
INCLUDE = "python3,python3-pytest,python3-cryptography,python3-cffi-backend,openssl"
IMAGE = "panda-lab/py39"
RESULTS = lab.ROOT / ".cache" / "results"
# The package's own unit tests (no database, no Ansible, no controller tools).
TESTS = "tests/package"


def ensure_image() -> None:
    recipe = hashlib.sha256(f"{SUITE}|{INCLUDE}|v1".encode()).hexdigest()[:16]
    if lab.image_recipe(IMAGE) != recipe:
        lab.debootstrap_image(SUITE, INCLUDE, IMAGE, recipe, '["python3"]')
    else:
        lab.log(f"{IMAGE} is current ({recipe})")


def main(argv: list[str]) -> int:
    lab.ensure_docker()
    ensure_image()
    RESULTS.mkdir(parents=True, exist_ok=True)
    cmd = [
        "docker", "run", "--rm", "--network", "none",
        "-v", f"{lab.ROOT}:/src:ro", "-v", f"{RESULTS}:/results", "-w", "/src",
        "-e", "PYTHONDONTWRITEBYTECODE=1",
        IMAGE, "python3", "-m", "pytest", "-p", "no:cacheprovider", TESTS, *argv,
    ]  # fmt: skip
    print(f"+ {' '.join(cmd)}", flush=True)
    return subprocess.run(cmd, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
