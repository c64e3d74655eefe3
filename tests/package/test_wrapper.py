"""The pilot wrapper: downloads the pilot code over HTTP, unpacks it safely and runs the
pilot with the remaining arguments, returning its exit code."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pandafacility import wrapper

PILOT = b"import sys\nopen('ran.txt', 'w').write(' '.join(sys.argv[1:]))\nsys.exit(3)\n"


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def serve():
    servers = []

    def start(body: bytes) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/pilot/pilot.tar.gz"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_wrapper_runs_the_downloaded_pilot_with_its_arguments(serve, tmp_path, monkeypatch):
    url = serve(tarball({"pilot/pilot.py": PILOT}))
    monkeypatch.chdir(tmp_path)
    assert wrapper.main(["--pilot-url", url, "--", "--queue", "SITE_A"]) == 3
    assert (tmp_path / "ran.txt").read_text() == "--queue SITE_A"


def test_tarball_escaping_its_directory_is_refused(serve, tmp_path, monkeypatch):
    url = serve(tarball({"../evil.py": b"x", "pilot/pilot.py": PILOT}))
    monkeypatch.chdir(tmp_path)
    assert wrapper.main(["--pilot-url", url]) == 64
    assert not (tmp_path.parent / "evil.py").exists()


def test_tarball_without_a_pilot_is_refused(serve, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert wrapper.main(["--pilot-url", serve(tarball({"README": b"x"}))]) == 64


def test_unreachable_cache_ends_with_64(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(wrapper, "ATTEMPTS", 1)
    url = "http://127.0.0.1:9/pilot/pilot.tar.gz"
    assert wrapper.main(["--pilot-url", url]) == 64
    assert os.listdir(tmp_path) == []


def test_wrapper_started_without_path_still_runs_the_pilot(serve, tmp_path):
    """As a batch system may start it: no PATH, so Python cannot name its executable."""
    url = serve(
        tarball({"pilot/pilot.py": b"import os\nopen('path.txt', 'w').write(os.environ['PATH'])\n"})
    )
    proc = subprocess.run(
        ["python3", wrapper.__file__, "--pilot-url", url],
        executable=shutil.which("python3"),
        env={},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "path.txt").read_text() == wrapper.DEFAULT_PATH


@pytest.mark.parametrize("filters", [True, False], ids=["tarfile filter", "own check"])
def test_links_and_escapes_are_refused_with_or_without_tarfile_filters(
    filters, tmp_path, monkeypatch
):
    """Python 3.9 before 3.9.17 has no extraction filters: the wrapper's own check of
    the members refuses what the "data" filter would (a link out, a path out, set-id)."""
    if not filters:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no extraction filters")
    link = io.BytesIO()
    with tarfile.open(fileobj=link, mode="w:gz") as tar:
        info = tarfile.TarInfo("pilot")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(info)
    (tmp_path / "work").mkdir()
    with pytest.raises(tarfile.TarError):
        wrapper.unpack(link.getvalue(), tmp_path / "work")
    with pytest.raises(tarfile.TarError):
        wrapper.unpack(tarball({"pilot/../../out.py": b"x"}), tmp_path / "work")
    assert not (tmp_path / "out.py").exists() and not (tmp_path / "work" / "pilot").exists()
    setuid = io.BytesIO()
    with tarfile.open(fileobj=setuid, mode="w:gz") as tar:
        info = tarfile.TarInfo("pilot/pilot.py")
        info.size, info.mode = len(PILOT), 0o4777
        tar.addfile(info, io.BytesIO(PILOT))
    pilot = wrapper.unpack(setuid.getvalue(), tmp_path / "work")
    assert pilot.stat().st_mode & 0o7777 == 0o755
