"""The pilot code service: downloads through Squid are memory hits that leave the origin
alone, a pushed commit is served to the very next download, and only the pilot code is
served, by Squid only."""

from __future__ import annotations

import io
import tarfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import only_on, run_ok

CACHE = "mol-pil-cache1"
URL = "http://172.28.90.32/pilot/pilot.tar.gz"
ORIGIN_LOG = "/var/log/apache2/pilot-origin-access.log"


def download() -> dict[str, bytes]:
    """The tarball's files, and under "Cache-Status" how Squid answered (RFC 9211)."""
    with urllib.request.urlopen(URL, timeout=10) as answer:
        data, cache = answer.read(), answer.headers.get("Cache-Status", "")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    return {**files, "Cache-Status": cache.encode()}


def origin_requests(host) -> int:
    return int(run_ok(host, f"grep -c 'GET /pilot/pilot.tar.gz' {ORIGIN_LOG} || true") or 0)


def push(host, text: str) -> None:
    script = (
        "set -e; d=$(mktemp -d); cd $d; git clone -q /srv/pilot-code/pilot.git p; cd p;"
        f" printf '%s\\n' '{text}' > VERSION; git add VERSION;"
        " git -c user.name=t -c user.email=t@localhost commit -q -m test;"
        " git push -q origin main; rm -rf $d"
    )
    run_ok(host, "runuser -u panda -- sh -c %s", script)


def test_seeded_repository_is_served(host):
    only_on(host, CACHE)
    files = download()
    assert "pilot/README.md" in files
    assert b"def main(" in files["pilot/pilot.py"]


def test_repeated_downloads_never_reach_the_origin(host):
    only_on(host, CACHE)
    download()  # the copy is in memory now, whatever came before
    before = origin_requests(host)
    answers = [download()["Cache-Status"].decode() for _ in range(30)]
    assert origin_requests(host) == before
    assert all(";hit" in a for a in answers), answers


def test_a_pushed_commit_is_served_at_once(host):
    only_on(host, CACHE)
    stamp = f"v{time.time_ns()}"
    download()
    before = origin_requests(host)
    push(host, stamp)
    assert download()["pilot/VERSION"].decode().strip() == stamp
    for _ in range(5):
        download()
    assert origin_requests(host) == before + 1


def test_origin_listens_on_loopback_only(host):
    only_on(host, CACHE)
    assert host.socket("tcp://127.0.0.1:8081").is_listening
    assert not host.socket("tcp://0.0.0.0:8081").is_listening
    with pytest.raises(OSError):
        urllib.request.urlopen("http://172.28.90.32:8081/pilot/pilot.tar.gz", timeout=3)


@pytest.mark.parametrize(
    "method,path,status",
    [("PURGE", "/pilot/pilot.tar.gz", 403), ("GET", "/etc/passwd", 403)],
)
def test_only_the_pilot_code_is_served_and_only_locally_purged(host, method, path, status):
    only_on(host, CACHE)
    request = urllib.request.Request(f"http://172.28.90.32{path}", method=method)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == status


def test_squid_configuration_parses(host):
    only_on(host, CACHE)
    run_ok(host, "squid -k parse -f /etc/squid/squid.conf")
    assert host.service("squid").is_enabled and host.service("squid").is_running
