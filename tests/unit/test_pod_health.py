"""Fail-fast pod judgement on real-shaped pods, and telling a rollout's new pods apart.

Each file under testdata/pods/ is one Pod as the API returns it, headed by comments:
``# expect:`` the reason (or ``none``), ``# container:`` (``none`` for the whole pod) and
any number of ``# contains:`` lines the message must include.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.pod_health import (
    STUCK_REASONS,
    PodProblem,
    daemonset_update_hash,
    new_pods_selector,
    new_replicaset,
    pod_problem,
    pod_template_hash,
    selector_string,
)

TESTDATA = Path(__file__).parent / "testdata"
POD_FIXTURES = sorted((TESTDATA / "pods").glob("*.yaml"))


def load_fixture(path: Path) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """The ``# key: value`` header lines (repeatable keys) and the object of one file."""
    text = path.read_text()
    header: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        header.setdefault(key, []).append(value)
    return header, yaml.safe_load(text)


def rollout_object(stem: str) -> dict[str, Any]:
    return load_fixture(TESTDATA / "rollout" / f"{stem}.yaml")[1]


@pytest.mark.parametrize("path", POD_FIXTURES, ids=lambda p: p.stem)
def test_pod_problem_matches_fixture(path: Path) -> None:
    header, pod = load_fixture(path)
    problem = pod_problem(pod)
    if header["expect"] == ["none"]:
        assert problem is None
        return
    assert problem is not None
    container = header["container"][0]
    assert problem.pod == pod["metadata"]["name"]
    assert problem.container == (None if container == "none" else container)
    assert problem.reason == header["expect"][0]
    assert problem.message.startswith(f'pod "{pod["metadata"]["name"]}"')
    for text in header.get("contains", []):
        assert text in problem.message


def test_pod_fixtures_cover_every_stuck_reason() -> None:
    seen = {load_fixture(path)[0]["expect"][0] for path in POD_FIXTURES}
    assert seen >= STUCK_REASONS | {"Unschedulable", "none"}


def _pod(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-0"}, "status": status}


def _waiting(name: str, reason: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "app:1", "state": {"waiting": {"reason": reason}}} | extra


UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/3 nodes are available: 3 node(s) had untolerated taint.",
}


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(_pod(), None, id="no-status-yet"),
        pytest.param(
            _pod(
                conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulerError"}]
            ),
            None,
            id="not-scheduled-for-another-reason",
        ),
        pytest.param(
            _pod(
                conditions=[UNSCHEDULABLE],
                containerStatuses=[_waiting("app", "ImagePullBackOff")],
            ),
            ("Unschedulable", None),
            id="unschedulable-comes-first",
        ),
        pytest.param(
            _pod(
                initContainerStatuses=[_waiting("init", "ErrImagePull")],
                containerStatuses=[_waiting("app", "CrashLoopBackOff")],
            ),
            ("ErrImagePull", "init"),
            id="init-containers-before-containers",
        ),
        pytest.param(
            _pod(
                containerStatuses=[
                    _waiting("sidecar", "ContainerCreating"),
                    _waiting("app", "CreateContainerError"),
                ]
            ),
            ("CreateContainerError", "app"),
            id="any-container",
        ),
        pytest.param(
            _pod(containerStatuses=[_waiting("app", "PodInitializing")]),
            None,
            id="pod-initializing-is-not-stuck",
        ),
        pytest.param(
            _pod(containerStatuses=[{"name": "app", "state": {"terminated": {"exitCode": 1}}}]),
            None,
            id="terminated-is-left-to-the-restart-policy",
        ),
    ],
)
def test_pod_problem_table(pod: dict[str, Any], expected: tuple[str, str | None] | None) -> None:
    problem = pod_problem(pod)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert (problem.reason, problem.container) == expected


def test_crash_loop_without_last_state_still_counts_restarts() -> None:
    pod = _pod(containerStatuses=[_waiting("app", "CrashLoopBackOff", restartCount=7)])
    assert pod_problem(pod) == PodProblem(
        "web-0",
        "app",
        "CrashLoopBackOff",
        'pod "web-0": container "app" keeps crashing (CrashLoopBackOff, restarted 7 times); '
        "check its logs: 'kubectl logs web-0 -c app --previous'",
    )


def test_unschedulable_without_namespace_or_message() -> None:
    condition = {k: v for k, v in UNSCHEDULABLE.items() if k != "message"}
    problem = pod_problem(_pod(conditions=[condition]))
    assert problem is not None
    assert "(Unschedulable: no scheduler message)" in problem.message
    assert "'kubectl describe pod web-0'" in problem.message


def test_kubelet_message_with_braces_is_kept_verbatim() -> None:
    waiting = {"reason": "CreateContainerConfigError", "message": 'couldn\'t find key {"x"} in'}
    pod = _pod(containerStatuses=[{"name": "app", "state": {"waiting": waiting}}])
    problem = pod_problem(pod)
    assert problem is not None
    assert 'couldn\'t find key {"x"} in' in problem.message


# --- which pods are new -----------------------------------------------------------------

DEPLOYMENT = rollout_object("deployment-complete")
# The fixture is the ReplicaSet the Deployment controller made for deployment-complete.
NEW_RS = rollout_object("replicaset-unknown-kind")


def _replicaset(
    name: str, created: str, image: str | None = None, owner_uid: str | None = None
) -> dict[str, Any]:
    rs = copy.deepcopy(NEW_RS)
    rs["metadata"]["name"] = name
    rs["metadata"]["creationTimestamp"] = created
    if image is not None:
        rs["spec"]["template"]["spec"]["containers"][0]["image"] = image
    if owner_uid is not None:
        rs["metadata"]["ownerReferences"][0]["uid"] = owner_uid
    return rs


OLD_RS = _replicaset("server-5c8b7d9f6a", "2025-05-30T10:00:00Z", image="app-server:old")


def test_new_replicaset_is_the_one_with_the_deployments_template() -> None:
    assert new_replicaset(DEPLOYMENT, [OLD_RS, NEW_RS]) is NEW_RS


def test_no_new_replicaset_before_the_controller_creates_it() -> None:
    # As right after a set-image: the old ReplicaSet still carries the Deployment's revision.
    old = copy.deepcopy(OLD_RS)
    revision = DEPLOYMENT["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
    old["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = revision
    assert new_replicaset(DEPLOYMENT, [old]) is None


def test_oldest_of_several_matching_replicasets_wins() -> None:
    later = _replicaset("server-aaaaaaaaaa", "2025-06-03T00:00:00Z")
    same_time_name_first = _replicaset("server-0000000000", NEW_RS["metadata"]["creationTimestamp"])
    assert new_replicaset(DEPLOYMENT, [later, NEW_RS]) is NEW_RS
    assert new_replicaset(DEPLOYMENT, [NEW_RS, same_time_name_first]) is same_time_name_first


def test_replicasets_of_other_deployments_are_ignored() -> None:
    foreign = _replicaset("server-7d9f8b6c5d", "2025-06-01T00:00:00Z", owner_uid="other-uid")
    assert new_replicaset(DEPLOYMENT, [foreign]) is None


def test_template_comparison_treats_null_and_empty_as_absent() -> None:
    rs = copy.deepcopy(NEW_RS)
    del rs["spec"]["template"]["metadata"]["creationTimestamp"]
    rs["spec"]["template"]["spec"]["securityContext"] = None
    rs["spec"]["template"]["spec"]["tolerations"] = []
    assert new_replicaset(DEPLOYMENT, [rs]) is rs


def test_template_comparison_sees_a_restart_annotation() -> None:
    deployment = copy.deepcopy(DEPLOYMENT)
    deployment["spec"]["template"]["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/restartedAt": "2025-06-02T08:31:05Z"
    }
    assert new_replicaset(deployment, [NEW_RS]) is None


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda rs: None, "7d9f8b6c5d"),
        (lambda rs: rs["spec"]["template"]["metadata"].pop("labels"), "7d9f8b6c5d"),
        (
            lambda rs: rs["spec"]["template"]["metadata"]["labels"].update(
                {"pod-template-hash": "from-template"}
            ),
            "from-template",
        ),
        (lambda rs: (rs["spec"].pop("template"), rs["metadata"].pop("labels")), None),
    ],
    ids=["template-label", "metadata-label", "template-label-preferred", "none"],
)
def test_pod_template_hash(edit: Any, expected: str | None) -> None:
    rs = copy.deepcopy(NEW_RS)
    edit(rs)
    assert pod_template_hash(rs) == expected


DAEMONSET = rollout_object("daemonset-complete")


def _controller_revision(
    revision: int, hash_: str, template: dict[str, Any], owner_uid: str | None = None
) -> dict[str, Any]:
    """A ControllerRevision as the DaemonSet controller writes it."""
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"grafana-agent-{hash_}",
            "namespace": "monitoring",
            "labels": {"app": "grafana-agent", "controller-revision-hash": hash_},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": "grafana-agent",
                    "controller": True,
                    "blockOwnerDeletion": True,
                    "uid": owner_uid or DAEMONSET["metadata"]["uid"],
                }
            ],
        },
        "data": {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}},
        "revision": revision,
    }


OLD_TEMPLATE = copy.deepcopy(DAEMONSET["spec"]["template"])
OLD_TEMPLATE["metadata"]["annotations"] = {}
CURRENT = _controller_revision(2, "6d8f9d8c7b", DAEMONSET["spec"]["template"])
OLD = _controller_revision(1, "5f7c6b9d8e", OLD_TEMPLATE)


def _daemonset(**status: Any) -> dict[str, Any]:
    ds = copy.deepcopy(DAEMONSET)
    ds["status"] |= status
    return ds


@pytest.mark.parametrize(
    ("daemonset", "revisions", "expected"),
    [
        pytest.param(DAEMONSET, [OLD, CURRENT], "6d8f9d8c7b", id="template-match"),
        pytest.param(
            DAEMONSET,
            [_controller_revision(3, "5f7c6b9d8e", OLD_TEMPLATE), CURRENT],
            "6d8f9d8c7b",
            id="template-beats-newer-number",
        ),
        pytest.param(
            _daemonset(observedGeneration=1), [OLD], None, id="not-created-yet-while-unobserved"
        ),
        pytest.param(DAEMONSET, [OLD], "5f7c6b9d8e", id="newest-once-observed"),
        pytest.param(
            DAEMONSET,
            [_controller_revision(2, "6d8f9d8c7b", DAEMONSET["spec"]["template"], "other")],
            None,
            id="other-owner",
        ),
        pytest.param(DAEMONSET, [], None, id="no-revisions"),
    ],
)
def test_daemonset_update_hash(
    daemonset: dict[str, Any], revisions: list[dict[str, Any]], expected: str | None
) -> None:
    assert daemonset_update_hash(daemonset, revisions) == expected


def test_daemonset_hash_from_revision_name_when_unlabelled() -> None:
    revision = copy.deepcopy(CURRENT)
    del revision["metadata"]["labels"]
    assert daemonset_update_hash(DAEMONSET, [revision]) == "6d8f9d8c7b"


@pytest.mark.parametrize(
    ("workload", "kwargs", "expected"),
    [
        pytest.param(
            DEPLOYMENT,
            {"replicasets": [OLD_RS, NEW_RS]},
            "app=server,pod-template-hash=7d9f8b6c5d",
            id="deployment",
        ),
        pytest.param(DEPLOYMENT, {"replicasets": [OLD_RS]}, None, id="deployment-no-new-rs"),
        pytest.param(DEPLOYMENT, {}, None, id="deployment-without-replicasets"),
        pytest.param(
            rollout_object("statefulset-updating"),
            {},
            "app=db,controller-revision-hash=db-6b7c9d8f4d",
            id="statefulset",
        ),
        pytest.param(
            rollout_object("statefulset-stale-generation"), {}, None, id="statefulset-unobserved"
        ),
        pytest.param(
            DAEMONSET,
            {"controller_revisions": [OLD, CURRENT]},
            "app=grafana-agent,controller-revision-hash=6d8f9d8c7b",
            id="daemonset",
        ),
        pytest.param(rollout_object("service-unknown-kind"), {}, None, id="service"),
    ],
)
def test_new_pods_selector(
    workload: dict[str, Any], kwargs: dict[str, Any], expected: str | None
) -> None:
    assert new_pods_selector(workload, **kwargs) == expected


def test_new_pods_selector_keeps_match_expressions() -> None:
    sts = rollout_object("statefulset-updating")
    sts["spec"]["selector"]["matchExpressions"] = [
        {"key": "tier", "operator": "In", "values": ["db", "cache"]}
    ]
    assert new_pods_selector(sts) == (
        "app=db,controller-revision-hash=db-6b7c9d8f4d,tier in (cache,db)"
    )


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, ""),
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
        (
            {
                "matchExpressions": [
                    {"key": "z", "operator": "NotIn", "values": ["y", "x"]},
                    {"key": "env", "operator": "In", "values": ["prod"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                    {"key": "app", "operator": "Exists"},
                ]
            },
            "app,!canary,env in (prod),z notin (x,y)",
        ),
        (
            {
                "matchLabels": {"app": "x"},
                "matchExpressions": [{"key": "app", "operator": "Exists"}],
            },
            "app=x,app",
        ),
    ],
)
def test_selector_string(selector: dict[str, Any], expected: str) -> None:
    assert selector_string(selector) == expected


def test_selector_string_rejects_unknown_operator() -> None:
    with pytest.raises(ValueError, match='"Gt" is not a valid label selector operator'):
        selector_string({"matchExpressions": [{"key": "n", "operator": "Gt", "values": ["1"]}]})
