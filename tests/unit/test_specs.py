from __future__ import annotations

import check_specs
from conftest import ROOT


def test_every_role_spec_matches_its_defaults():
    problems = [
        p
        for role in sorted((ROOT / "roles").iterdir())
        if role.is_dir()
        for p in check_specs.role_problems(role)
    ]
    assert problems == []


def test_drift_is_reported(tmp_path):
    role = tmp_path / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "tasks").mkdir()
    (role / "tasks" / "main.yml").write_text("---\n")
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    options:\n"
        "      demo_port: {type: int, default: 80, description: Port.}\n"
        "      demo_name: {type: str, default: x, description: Name.}\n"
        "      other: {type: str}\n"
    )
    (role / "defaults" / "main.yml").write_text("demo_port: 8080\nstray: 1\n")
    problems = "\n".join(check_specs.role_problems(role))
    assert "demo_port defaults to 8080" in problems
    assert "stray is in defaults/main.yml but not in the spec" in problems
    assert "demo_name has a default in the spec" in problems
    assert "other lacks the role prefix" in problems
    assert "other has no description" in problems


def test_a_role_of_values_and_task_files_documents_its_values(tmp_path):
    role = tmp_path / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "defaults" / "main.yml").write_text("demo_dir: /x\n")
    spec = (
        "argument_specs:\n  {}:\n    options:\n      demo_dir: {{default: /x, description: D.}}\n"
    )
    (role / "meta" / "argument_specs.yml").write_text(spec.format("main"))
    assert check_specs.role_problems(role) == [
        "demo: argument_specs has no values entry point with options"
    ]
    (role / "meta" / "argument_specs.yml").write_text(spec.format("values"))
    assert check_specs.role_problems(role) == []
