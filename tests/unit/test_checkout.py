import subprocess
from pathlib import Path

import pytest

from flows.checkout import checkout, local_repository
from tasks.errors import InputError


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    (repo / "f.txt").write_text("one\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    return repo


def test_worktree_holds_exactly_the_commit(repo: Path, tmp_path: Path):
    first = git(repo, "rev-parse", "HEAD")
    (repo / "f.txt").write_text("two\n")
    git(repo, "commit", "-qam", "two")
    tree = checkout(repo, first, root=tmp_path / "trees")
    assert (tree / "f.txt").read_text() == "one\n"
    assert git(tree, "rev-parse", "HEAD") == first
    assert checkout(repo, first, root=tmp_path / "trees") == tree


def test_local_repository_detection(repo: Path):
    assert local_repository(str(repo)) == repo
    assert local_repository(f"file://{repo}") == repo
    assert local_repository("codingpot/pr12er") is None
    assert local_repository("") is None


def test_unknown_commit_is_a_clear_error(repo: Path, tmp_path: Path):
    with pytest.raises(InputError, match="cannot check out commit deadbeef"):
        checkout(repo, "deadbeef", root=tmp_path / "trees")
