"""What a GitHub webhook delivery asks for: deploy a commit, or nothing (pure logic).

Only two events deploy: a pull request merged into the configured base branch, and a
push to that branch. Both carry the commit that is now the tip of the branch
(``pull_request.merge_commit_sha``, ``after``), so a push and a merged-PR event for one
merge name the same commit. Payload shapes follow GitHub's documentation:
https://docs.github.com/en/webhooks/webhook-events-and-payloads
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tasks.errors import TriggerError

__all__ = ["Deploy", "Ignore", "Pong", "decide"]

# SHA-1 (40 hex digits) or SHA-256 (64) object names; GitHub sends lowercase.
_COMMIT = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_NULL_COMMIT = re.compile(r"0+")
_BRANCH_REF = "refs/heads/"


@dataclass(frozen=True)
class Deploy:
    """Deploy ``commit`` of ``repository`` (OWNER/NAME), now the tip of ``branch``."""

    commit: str
    branch: str
    repository: str
    clone_url: str | None


@dataclass(frozen=True)
class Ignore:
    """Nothing to do, and why (answered 204)."""

    reason: str


@dataclass(frozen=True)
class Pong(Ignore):
    """GitHub's ``ping`` when a hook is created: answered 200, nothing started."""

    reason: str = "pong"


def decide(
    event: str, payload: dict[str, Any], *, branch: str, repository: str | None
) -> Deploy | Ignore:
    """Decide what a delivery of ``event`` (the X-GitHub-Event header) asks for.

    ``branch`` is the base branch that deploys; ``repository`` (OWNER/NAME, compared
    case-insensitively as GitHub does) restricts the repositories accepted, None accepts
    any. Raises TriggerError when a deploying event lacks a field it needs.
    """
    if event == "ping":
        return Pong()
    if event not in ("pull_request", "push"):
        return Ignore(f"event {event!r} does not deploy (only merged pull_request and push)")
    full_name, clone_url = _repository(event, payload)
    if repository is not None and full_name.lower() != repository.lower():
        return Ignore(f"repository {full_name!r} is not {repository!r}")
    if event == "pull_request":
        return _merged_pull_request(payload, branch, full_name, clone_url)
    return _push(payload, branch, full_name, clone_url)


def _merged_pull_request(
    payload: dict[str, Any], branch: str, repository: str, clone_url: str | None
) -> Deploy | Ignore:
    action = payload.get("action")
    pull = payload.get("pull_request")
    if not isinstance(pull, dict):
        raise TriggerError("pull_request event without a 'pull_request' object")
    number = pull.get("number", "?")
    if action != "closed":
        return Ignore(f"pull request #{number} was {action!r}, not closed and merged")
    if pull.get("merged") is not True:
        return Ignore(f"pull request #{number} was closed without merging")
    base = pull.get("base")
    base_ref = base.get("ref") if isinstance(base, dict) else None
    if not isinstance(base_ref, str):
        raise TriggerError(f"pull request #{number}: missing 'pull_request.base.ref'")
    if base_ref != branch:
        return Ignore(f"pull request #{number} merged into {base_ref!r}, not {branch!r}")
    commit = _commit(pull.get("merge_commit_sha"), f"pull request #{number}: merge_commit_sha")
    return Deploy(commit=commit, branch=branch, repository=repository, clone_url=clone_url)


def _push(
    payload: dict[str, Any], branch: str, repository: str, clone_url: str | None
) -> Deploy | Ignore:
    ref = payload.get("ref")
    if not isinstance(ref, str):
        raise TriggerError("push event without a 'ref'")
    if ref != _BRANCH_REF + branch:
        return Ignore(f"push to {ref!r}, not {_BRANCH_REF + branch!r}")
    after = payload.get("after")
    if payload.get("deleted") is True or (isinstance(after, str) and _NULL_COMMIT.fullmatch(after)):
        return Ignore(f"push deleted {ref!r}")
    commit = _commit(after, f"push to {ref!r}: after")
    return Deploy(commit=commit, branch=branch, repository=repository, clone_url=clone_url)


def _repository(event: str, payload: dict[str, Any]) -> tuple[str, str | None]:
    """The repository's OWNER/NAME and clone URL."""
    repo = payload.get("repository")
    full_name = repo.get("full_name") if isinstance(repo, dict) else None
    if not isinstance(full_name, str) or "/" not in full_name:
        raise TriggerError(f"{event} event without 'repository.full_name' (OWNER/NAME)")
    clone_url = repo.get("clone_url")
    return full_name, clone_url if isinstance(clone_url, str) else None


def _commit(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _COMMIT.fullmatch(value):
        raise TriggerError(f"{what} is {value!r}, not a commit id (40 or 64 hex digits)")
    return value
