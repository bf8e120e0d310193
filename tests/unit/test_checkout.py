import subprocess
from pathlib import Path

import pytest

from flows.checkout import checkout, local_repository, require_checkout_at
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


def test_a_commit_merged_after_the_clone_is_fetched(repo: Path, tmp_path: Path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    (repo / "f.txt").write_text("merged\n")
    git(repo, "commit", "-qam", "merged")
    merged = git(repo, "rev-parse", "HEAD")
    tree = checkout(clone, merged, root=tmp_path / "trees")
    assert (tree / "f.txt").read_text() == "merged\n"


def test_a_triggered_run_needs_the_folder_at_its_commit(repo: Path, tmp_path: Path):
    head = git(repo, "rev-parse", "HEAD")
    require_checkout_at(repo, head, "acme/app")
    require_checkout_at(repo, head[:12], "acme/app")
    with pytest.raises(InputError, match=r"deploys commit 0{40} of acme/app, but .* is at "):
        require_checkout_at(repo, "0" * 40, "acme/app")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(InputError, match=r"is not a git checkout.*--repository-path acme/app="):
        require_checkout_at(plain, head, "acme/app")
