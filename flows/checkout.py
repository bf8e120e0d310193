"""Check out the exact commit a run deploys, when the run names a local repository.

A webhook-started run carries `repository` and `commit`. When `repository` is a git
repository on this machine (a path or file:// URL), the run deploys from a detached
worktree of that commit, so what is built is exactly what was merged. Otherwise the
working directory is used as it is (a prefect.yaml `pull` step prepared it).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tasks.errors import InputError

WORKTREES = Path("/var/lib/shipline/worktrees")


def local_repository(repository: str) -> Path | None:
    """The repository's folder when `repository` is a local git repository, else None."""
    if not repository:
        return None
    path = Path(repository.removeprefix("file://"))
    if path.is_absolute() and ((path / ".git").exists() or (path / "HEAD").is_file()):
        return path
    return None


def checkout(repository: Path, commit: str, root: Path = WORKTREES) -> Path:
    """A worktree of `repository` at `commit` (reused when it exists)."""
    target = root / f"{repository.name}-{commit[:40]}"
    if (target / ".git").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            "git",
            "-C",
            str(repository),
            "worktree",
            "add",
            "--detach",
            "--force",
            str(target),
            commit,
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise InputError(
            f"cannot check out commit {commit} of {repository}: {done.stderr.strip()}; "
            "check that the commit exists in that repository"
        )
    return target
