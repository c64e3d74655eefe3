"""The pilot wrapper: downloads the pilot code over verified HTTPS, checks it against the
SHA-256 the factory passed, unpacks it safely and runs the pilot with the remaining
arguments, returning its exit code."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile

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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def serve(serve_tls):
    """Serve these bytes over TLS (the test CA's localhost certificate): the URL."""

    def start(body: bytes) -> str:
        def app(environ, start_response):
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]

        return serve_tls(app) + "/pilot/pilot.tar.gz"

    return start


@pytest.fixture
def fetch(pki):
    """The wrapper's own arguments, as the factory writes them: URL, hash, CA."""

    def args(url: str, data: bytes) -> list[str]:
        return ["--pilot-url", url, "--pilot-sha256", sha256(data), "--ca", str(pki["ca"])]

    return args


def test_wrapper_runs_the_downloaded_pilot_with_its_arguments(serve, fetch, tmp_path, monkeypatch):
    code = tarball({"pilot/pilot.py": PILOT})
    monkeypatch.chdir(tmp_path)
    assert wrapper.main([*fetch(serve(code), code), "--", "--queue", "SITE_A"]) == 3
    assert (tmp_path / "ran.txt").read_text() == "--queue SITE_A"


def test_a_tarball_changed_on_the_way_is_refused(serve, fetch, tmp_path, monkeypatch, capsys):
    """What the factory vouched for is not what arrives (a cache or a path in between
    altered it): refused before anything is unpacked or run."""
    vouched = tarball({"pilot/pilot.py": PILOT})
    changed = tarball({"pilot/pilot.py": PILOT + b"open('owned.txt', 'w')\n"})
    monkeypatch.chdir(tmp_path)
    assert wrapper.main([*fetch(serve(changed), vouched), "--", "--queue", "SITE_A"]) == 64
    assert os.listdir(tmp_path) == []
    assert f"SHA-256 is {sha256(changed)}" in capsys.readouterr().err


def test_plain_http_and_an_unverified_cache_are_refused(serve, fetch, tmp_path, monkeypatch):
    code = tarball({"pilot/pilot.py": PILOT})
    url = serve(code)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(wrapper, "ATTEMPTS", 1)
    http = fetch(url.replace("https://", "http://"), code)
    assert wrapper.main(http) == 64
    assert wrapper.main(fetch(url, code)[:4]) == 64  # no --ca: the test CA is nobody's
    assert os.listdir(tmp_path) == []
    with pytest.raises(SystemExit):  # no hash, no pilot
        wrapper.main(["--pilot-url", url])


def test_tarball_escaping_its_directory_is_refused(serve, fetch, tmp_path, monkeypatch):
    code = tarball({"../evil.py": b"x", "pilot/pilot.py": PILOT})
    monkeypatch.chdir(tmp_path)
    assert wrapper.main(fetch(serve(code), code)) == 64
    assert not (tmp_path.parent / "evil.py").exists()


def test_tarball_without_a_pilot_is_refused(serve, fetch, tmp_path, monkeypatch):
    code = tarball({"README": b"x"})
    monkeypatch.chdir(tmp_path)
    assert wrapper.main(fetch(serve(code), code)) == 64


def test_unreachable_cache_ends_with_64(fetch, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(wrapper, "ATTEMPTS", 1)
    url = "https://127.0.0.1:9/pilot/pilot.tar.gz"
    assert wrapper.main(fetch(url, b"")) == 64
    assert os.listdir(tmp_path) == []


def test_wrapper_started_without_path_still_runs_the_pilot(serve, fetch, tmp_path):
    """As a batch system may start it: no PATH, so Python cannot name its executable."""
    code = tarball(
        {"pilot/pilot.py": b"import os\nopen('path.txt', 'w').write(os.environ['PATH'])\n"}
    )
    proc = subprocess.run(
        ["python3", wrapper.__file__, *fetch(serve(code), code)],
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


def test_a_payload_gets_a_clean_environment_and_bwrap_hides_what_it_should(monkeypatch):
    """The pilot's payload command: no credential variable in its environment; inside
    bubblewrap, the hidden directories are empty tmpfs and only its work dir is bound."""
    from pandafacility import pilot

    monkeypatch.setenv("X509_USER_PROXY", "/secret/proxy.pem")
    monkeypatch.setattr(pilot.shutil, "which", lambda _: None)
    argv, env = pilot.isolated(["/bin/sh", "-c", "env"], "/tmp/w", ["/secret"], 7)
    assert argv == ["/bin/sh", "-c", "env"] and "X509_USER_PROXY" not in env
    assert env["HOME"] == env["TMPDIR"] == "/tmp/w" and env["PANDA_ID"] == "7"
    monkeypatch.setattr(pilot.shutil, "which", lambda _: "/usr/bin/bwrap")
    monkeypatch.setattr(pilot, "_PROC", [True])
    argv, _ = pilot.isolated(["/bin/true"], "/tmp/w", ["/secret", "/tmp"], 7)
    pairs = list(zip(argv, argv[1:]))
    assert ("--tmpfs", "/secret") in pairs and ("--tmpfs", "/tmp") in pairs
    assert ("--proc", "/proc") in pairs and ("--chdir", "/tmp/w") in pairs
    assert argv.index("--bind") > max(i for i, a in enumerate(argv) if a == "--tmpfs")
    assert argv[-2:] == ["--", "/bin/true"] and "--clearenv" in argv
