"""decide() on payloads shaped like GitHub's (tests/unit/testdata/github/<event>-<case>.json)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from deployments.github_events import Deploy, Ignore, Pong, decide
from tasks.errors import TriggerError

DATA = Path(__file__).parent / "testdata" / "github"
MERGED = "9f1c2e6d3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e"
EXPECTED_DEPLOY = Deploy(
    commit=MERGED,
    branch="main",
    repository="acme/pr12er",
    clone_url="https://github.com/acme/pr12er.git",
)


def load(name: str) -> tuple[str, dict]:
    """The event (the file name's prefix) and the payload of a recorded delivery."""
    event = name.split("-", 1)[0]
    return event, json.loads((DATA / f"{name}.json").read_text())


@pytest.mark.parametrize("name", ["pull_request-merged", "push-main"])
def test_merge_and_push_to_the_branch_deploy_the_same_commit(name: str) -> None:
    event, payload = load(name)
    assert decide(event, payload, branch="main", repository=None) == EXPECTED_DEPLOY


@pytest.mark.parametrize(
    ("name", "reason_part"),
    [
        ("pull_request-closed-unmerged", "closed without merging"),
        ("pull_request-opened", "'opened'"),
        ("pull_request-merged-other-base", "'release-1.x', not 'main'"),
        ("push-other-branch", "'refs/heads/feature/healthz'"),
        ("push-tag", "'refs/tags/v1.0.0'"),
        ("push-main-deleted", "deleted"),
        ("issues-opened", "event 'issues' does not deploy"),
    ],
)
def test_everything_else_is_ignored_with_a_reason(name: str, reason_part: str) -> None:
    event, payload = load(name)
    decision = decide(event, payload, branch="main", repository=None)
    assert type(decision) is Ignore
    assert reason_part in decision.reason


def test_ping_is_a_pong() -> None:
    event, payload = load("ping")
    decision = decide(event, payload, branch="main", repository="acme/pr12er")
    assert isinstance(decision, Pong)
    assert decision.reason == "pong"


def test_unknown_event_without_repository_is_ignored_not_an_error() -> None:
    assert decide("check_suite", {}, branch="main", repository=None) == Ignore(
        "event 'check_suite' does not deploy (only merged pull_request and push)"
    )


def test_configured_branch_is_the_one_that_deploys() -> None:
    event, payload = load("pull_request-merged-other-base")
    decision = decide(event, payload, branch="release-1.x", repository=None)
    assert decision == Deploy(MERGED, "release-1.x", "acme/pr12er", EXPECTED_DEPLOY.clone_url)
    event, payload = load("push-main")
    assert isinstance(decide(event, payload, branch="release-1.x", repository=None), Ignore)


@pytest.mark.parametrize("name", ["pull_request-merged", "push-main"])
def test_repository_filter(name: str) -> None:
    event, payload = load(name)
    # GitHub's names are case-insensitive.
    assert decide(event, payload, branch="main", repository="ACME/PR12ER") == EXPECTED_DEPLOY
    decision = decide(event, payload, branch="main", repository="acme/other")
    assert decision == Ignore("repository 'acme/pr12er' is not 'acme/other'")


def test_deleted_push_detected_by_null_after_alone() -> None:
    event, payload = load("push-main-deleted")
    payload["deleted"] = False  # older payloads: only the all-zero `after` says so
    assert isinstance(decide(event, payload, branch="main", repository=None), Ignore)


def test_sha256_repository_commit_accepted() -> None:
    event, payload = load("push-main")
    payload["after"] = "ab" * 32
    decision = decide(event, payload, branch="main", repository=None)
    assert isinstance(decision, Deploy)
    assert decision.commit == "ab" * 32


def _without(name: str, *path: str) -> tuple[str, dict]:
    event, payload = load(name)
    payload = copy.deepcopy(payload)
    node = payload
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return event, payload


@pytest.mark.parametrize(
    ("event", "payload", "message"),
    [
        (*_without("pull_request-merged", "repository"), "repository.full_name"),
        (*_without("push-main", "repository", "full_name"), "repository.full_name"),
        (*_without("pull_request-merged", "pull_request"), "'pull_request' object"),
        (*_without("pull_request-merged", "pull_request", "base"), "base.ref"),
        (*_without("pull_request-merged", "pull_request", "merge_commit_sha"), "#42"),
        (*_without("push-main", "ref"), "without a 'ref'"),
        (*_without("push-main", "after"), "after is None"),
    ],
)
def test_deploying_event_missing_a_field_is_a_trigger_error(
    event: str, payload: dict, message: str
) -> None:
    with pytest.raises(TriggerError, match=message.replace(".", r"\.")):
        decide(event, payload, branch="main", repository=None)


def test_commit_must_be_a_commit_id() -> None:
    event, payload = load("pull_request-merged")
    payload["pull_request"]["merge_commit_sha"] = "main; rm -rf /"
    with pytest.raises(TriggerError, match="merge_commit_sha is 'main; rm -rf /', not a commit"):
        decide(event, payload, branch="main", repository=None)
