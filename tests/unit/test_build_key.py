"""The build cache key: what changes it and what does not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.build_key import build_key, dockerfile_in_context
from tasks.errors import InputError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pr12er-shaped checkout: `server/` context, Dockerfile in `server/deploy/`."""
    (tmp_path / "server/deploy").mkdir(parents=True)
    (tmp_path / "server/cmd").mkdir()
    (tmp_path / "server/main.go").write_text("package main\n")
    (tmp_path / "server/cmd/tool.sh").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "server/deploy/Dockerfile").write_text("FROM shipline/busybox:1.35\nCOPY . /src\n")
    (tmp_path / "server/.dockerignore").write_text("# comment\n*.log\ntmp/\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def key(**overrides) -> str:
    arguments = {
        "context": "server",
        "dockerfile": "server/deploy/Dockerfile",
        "build_args": (),
        "target": None,
    }
    arguments.update(overrides)
    return build_key(**arguments)


def test_key_is_sha256_hex_and_stable(project):
    first = key()
    assert len(first) == 64 and int(first, 16) >= 0
    assert key() == first


def test_ignored_files_change_nothing(project):
    before = key()
    (project / "server/debug.log").write_text("noise")
    (project / "server/tmp").mkdir()
    (project / "server/tmp/cache.bin").write_bytes(b"\0" * 100)
    assert key() == before


def test_a_changed_file_changes_the_key(project):
    before = key()
    (project / "server/main.go").write_text("package main\n// changed\n")
    assert key() != before


def test_a_new_or_renamed_file_changes_the_key(project):
    before = key()
    (project / "server/extra.txt").write_text("")
    with_extra = key()
    assert with_extra != before
    (project / "server/extra.txt").rename(project / "server/other.txt")
    assert key() not in (before, with_extra)


def test_an_empty_directory_changes_the_key(project):
    before = key()
    (project / "server/empty").mkdir()
    assert key() != before


def test_a_mode_change_changes_the_key(project):
    before = key()
    os.chmod(project / "server/cmd/tool.sh", 0o755)
    assert key() != before


def test_mtime_alone_changes_nothing(project):
    before = key()
    os.utime(project / "server/main.go", (0, 0))
    assert key() == before


def test_changing_dockerignore_changes_the_key(project):
    before = key()
    (project / "server/.dockerignore").write_text("*.log\n")
    assert key() != before


def test_args_and_target_change_the_key(project):
    base = key()
    with_arg = key(build_args=[("VERSION", "1")])
    assert with_arg != base
    assert key(build_args=[("VERSION", "2")]) != with_arg
    assert key(target="runtime") != base
    assert key(target="runtime") != key(target="builder")


def test_arg_order_does_not_matter_and_the_last_value_wins(project):
    assert key(build_args=[("A", "1"), ("B", "2")]) == key(build_args=[("B", "2"), ("A", "1")])
    assert key(build_args=[("A", "0"), ("A", "1")]) == key(build_args=[("A", "1")])


def test_dockerfile_outside_the_context_is_hashed(project):
    (project / "Dockerfile.outside").write_text("FROM shipline/busybox:1.35\n")
    before = key(dockerfile="Dockerfile.outside")
    (project / "Dockerfile.outside").write_text("FROM shipline/busybox:1.35\nRUN true\n")
    assert key(dockerfile="Dockerfile.outside") != before


def test_ignored_dockerfile_still_counts(project):
    # docker sends the Dockerfile even when .dockerignore lists it.
    (project / "server/.dockerignore").write_text("deploy/\n")
    before = key()
    (project / "server/deploy/Dockerfile").write_text("FROM shipline/busybox:1.35\nRUN true\n")
    assert key() != before
    # ...but the other ignored files of that folder change nothing.
    after = key()
    (project / "server/deploy/notes.md").write_text("x")
    assert key() == after


def test_symlink_target_is_hashed(project):
    os.symlink("main.go", project / "server/link")
    before = key()
    os.remove(project / "server/link")
    os.symlink("cmd", project / "server/link")
    assert key() != before


def test_dockerfile_in_context(project):
    assert dockerfile_in_context("server", "server/deploy/Dockerfile") == "deploy/Dockerfile"
    assert dockerfile_in_context("server", "./server/deploy/Dockerfile") == "deploy/Dockerfile"
    assert dockerfile_in_context("server/cmd", "server/deploy/Dockerfile") is None
    assert dockerfile_in_context(str(project / "server"), "server/Dockerfile") == "Dockerfile"


def test_missing_context_or_dockerfile_names_the_path(project):
    with pytest.raises(InputError, match="build context nowhere"):
        key(context="nowhere")
    with pytest.raises(InputError, match=r"Dockerfile server/Dockerfile\.missing"):
        key(dockerfile="server/Dockerfile.missing")
