"""Check out the exact commit a run deploys, when the run names a local repository.

A webhook-started run carries `repository` and `commit`. When `repository` is a git
repository on this machine (a path or file:// URL), the run deploys from a detached
worktree of that commit, so what is built is exactly what was merged. Otherwise the
working directory is used as it is (a prefect.yaml `pull` step prepared it).

A GitHub trigger names the repository as OWNER/NAME; $SHIPLINE_REPOSITORY_PATHS maps such
names to local clones (`OWNER/NAME=PATH`, several separated by `:` as in $PATH), which
is how `shipline serve --repository-path` tells the runs it executes where they are.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from tasks.errors import InputError

WORKTREES = Path("/var/lib/shipline/worktrees")
REPOSITORY_PATHS_ENV = "SHIPLINE_REPOSITORY_PATHS"


def parse_repository_paths(value: str) -> dict[str, Path]:
    """`OWNER/NAME=PATH[:OWNER/NAME=PATH...]` as {owner/name (lowercase): PATH} (pure)."""
    paths: dict[str, Path] = {}
    for entry in filter(None, value.split(os.pathsep)):
        name, sep, path = entry.partition("=")
        if not sep or name.count("/") != 1 or not Path(path).is_absolute():
            raise InputError(f"${REPOSITORY_PATHS_ENV}: {entry!r} is not OWNER/NAME=/absolute/path")
        # GitHub compares repository names case-insensitively.
        paths[name.lower()] = Path(path)
    return paths


def local_repository(repository: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """The repository's folder when `repository` is a local git repository, else None.

    `repository` is a path (or file:// URL), or an OWNER/NAME that $SHIPLINE_REPOSITORY_PATHS
    in `environ` (default: this process's environment) maps to a local clone.
    """
    if not repository:
        return None
    environ = os.environ if environ is None else environ
    clone = parse_repository_paths(environ.get(REPOSITORY_PATHS_ENV, "")).get(repository.lower())
    if clone is not None:
        if not _is_git_repository(clone):
            raise InputError(
                f"${REPOSITORY_PATHS_ENV} maps {repository} to {clone}, which is not a git "
                "repository: fix the path given to `shipline serve --repository-path`"
            )
        return clone
    path = Path(repository.removeprefix("file://"))
    return path if path.is_absolute() and _is_git_repository(path) else None


def _is_git_repository(path: Path) -> bool:
    """A work tree (.git) or a bare repository (HEAD)."""
    return (path / ".git").exists() or (path / "HEAD").is_file()


def checkout(repository: Path, commit: str, root: Path = WORKTREES) -> Path:
    """A worktree of `repository` at `commit` (reused when it exists).

    A commit merged moments ago is usually not in the local clone yet: when it is
    missing, the clone fetches from its remotes first.
    """
    target = root / f"{repository.name}-{commit[:40]}"
    if (target / ".git").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    if not _has_commit(repository, commit):
        fetched = _git(repository, "fetch", "--all", "--quiet")
        if fetched.returncode != 0 and not _has_commit(repository, commit):
            raise InputError(
                f"commit {commit} is not in {repository} and fetching its remotes failed "
                f"({fetched.stderr.strip() or fetched.returncode}); check the clone's remotes "
                "and credentials (`git -C PATH fetch`)"
            )
    done = _git(repository, "worktree", "add", "--detach", "--force", str(target), commit)
    if done.returncode != 0:
        raise InputError(
            f"cannot check out commit {commit} of {repository}: {done.stderr.strip()}; "
            "check that the commit exists in that repository (or its remotes)"
        )
    return target


def require_checkout_at(folder: Path, commit: str, repository: str) -> None:
    """Refuse to deploy `commit` of `repository` from a folder that holds something else.

    A triggered run names the commit it must deploy. Without a local clone to check it
    out from, the run deploys the folder it runs in, which must then be a git checkout
    of exactly that commit (as a prefect.yaml `git_clone` pull step leaves it).
    """
    head = _git(folder, "rev-parse", "--verify", "HEAD")
    at = head.stdout.strip() if head.returncode == 0 else ""
    if at and (at == commit or (len(commit) >= 7 and at.startswith(commit))):
        return
    where = f"is at {at[:12]}" if at else "is not a git checkout"
    raise InputError(
        f"this run deploys commit {commit} of {repository}, but {folder} {where}; shipline "
        f"cannot check that commit out: map the repository to a local clone (`shipline serve "
        f"--repository-path {repository}=/path/to/clone`, or ${REPOSITORY_PATHS_ENV}) or "
        "check the commit out in a prefect.yaml pull step (prefect.deployments.steps.git_clone)"
    )


def _has_commit(repository: Path, commit: str) -> bool:
    return _git(repository, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=300
    )
