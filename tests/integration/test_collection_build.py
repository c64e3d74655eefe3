"""The built collection carries the roles and plugins, not the tests or the lab."""

from __future__ import annotations

import subprocess
import tarfile

from conftest import ROOT


def test_build_leaves_out_tests_and_lab(tmp_path):
    subprocess.run(
        ["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (tarball,) = tmp_path.glob("panda-facility-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    for needed in (
        "galaxy.yml",
        "MANIFEST.json",
        "meta/runtime.yml",
        "playbooks/site.yml",
        "roles/base/tasks/main.yml",
        "roles/certificates/tasks/main.yml",
        "plugins/filter/facility.py",
        "inventories/production-example/hosts.yml",
    ):
        assert needed in names or needed == "galaxy.yml", needed
    for name in names:
        top = name.split("/", 1)[0]
        assert top not in {
            "tests",
            "molecule",
            "lab",
            "tools",
            "bench",
            ".ci",
            ".lab",
            ".venv",
            ".collections",
            ".config",
        }, name
        assert not name.startswith("inventories/lab"), name
