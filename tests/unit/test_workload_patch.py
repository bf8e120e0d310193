"""kubectl's set-image and restart edits on plain workload dicts."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tasks.errors import RolloutError
from tasks.workload_patch import (
    RESTARTED_AT,
    image_patch,
    restarted,
    rfc3339,
    with_images,
)


def deployment(**images: str) -> dict:
    """A Deployment with one init container `setup` and the given containers."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "server", "namespace": "prod"},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {"app": "server"}},
                "spec": {
                    "initContainers": [{"name": "setup", "image": "busybox:1"}],
                    "containers": [{"name": n, "image": i} for n, i in images.items()],
                },
            },
        },
    }


def images_of(obj: dict) -> dict[str, str]:
    spec = obj["spec"]["template"]["spec"]
    return {c["name"]: c["image"] for c in spec["initContainers"] + spec["containers"]}


def test_sets_the_named_container_only_and_leaves_the_input_alone():
    original = deployment(server="app:1", envoy="envoy:1")
    frozen = copy.deepcopy(original)
    updated, changed = with_images(original, {"server": "app:2"}, where="deployment/server")
    assert changed is True
    assert images_of(updated) == {"setup": "busybox:1", "server": "app:2", "envoy": "envoy:1"}
    assert original == frozen


def test_star_sets_every_container_and_init_container():
    updated, changed = with_images(
        deployment(server="app:1", envoy="envoy:1"), {"*": "x:9"}, where="deployment/server"
    )
    assert changed is True
    assert set(images_of(updated).values()) == {"x:9"}


def test_init_container_matched_by_name():
    updated, changed = with_images(
        deployment(server="app:1"), {"setup": "busybox:2"}, where="deployment/server"
    )
    assert changed is True
    assert images_of(updated) == {"setup": "busybox:2", "server": "app:1"}


def test_same_image_is_no_change():
    original = deployment(server="app:1")
    updated, changed = with_images(original, {"server": "app:1"}, where="deployment/server")
    assert changed is False
    assert updated == original
    assert image_patch(original, updated) == {}


def test_unknown_name_names_workload_container_and_the_known_ones():
    with pytest.raises(RolloutError) as info:
        with_images(
            deployment(server="app:1"),
            {"server": "app:2", "sever": "app:2"},
            where="deployment/server",
        )
    message = str(info.value)
    assert message.startswith('deployment/server: unable to find container named "sever"')
    assert "setup, server" in message
    assert not info.value.retryable


def test_star_with_other_names_is_refused_like_kubectl():
    with pytest.raises(RolloutError, match="already specified by \\*"):
        with_images(deployment(server="a"), {"*": "x", "server": "y"}, where="deployment/server")


def test_empty_images_is_refused():
    with pytest.raises(RolloutError, match="at least one image"):
        with_images(deployment(server="a"), {}, where="deployment/server")


def test_pod_spec_of_a_pod_and_a_cronjob():
    pod = {"kind": "Pod", "spec": {"containers": [{"name": "c", "image": "a"}]}}
    updated, changed = with_images(pod, {"c": "b"}, where="pod/p")
    assert changed and updated["spec"]["containers"][0]["image"] == "b"
    cron = {
        "kind": "CronJob",
        "spec": {
            "jobTemplate": {
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a"}]}}}
            }
        },
    }
    updated, _ = with_images(cron, {"c": "b"}, where="cronjob/c")
    patch = image_patch(cron, updated)
    assert patch["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"] == [
        {"image": "b", "name": "c"}
    ]


def test_image_patch_is_kubectls_two_way_merge_shape():
    before = deployment(server="app:1", envoy="envoy:1")
    after, _ = with_images(before, {"envoy": "envoy:2"}, where="deployment/server")
    assert image_patch(before, after) == {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "server"}, {"name": "envoy"}],
                    "containers": [{"image": "envoy:2", "name": "envoy"}],
                }
            }
        }
    }


@pytest.mark.parametrize(
    ("now", "text"),
    [
        (datetime(2024, 5, 1, 12, 30, 5, 999, tzinfo=UTC), "2024-05-01T12:30:05Z"),
        (
            datetime(2024, 5, 1, 12, 30, 5, tzinfo=timezone(timedelta(hours=2))),
            "2024-05-01T12:30:05+02:00",
        ),
        (
            datetime(2024, 5, 1, 12, 30, 5, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
            "2024-05-01T12:30:05-05:30",
        ),
    ],
)
def test_rfc3339_matches_go(now, text):
    assert rfc3339(now) == text


def test_restarted_sets_annotation_and_keeps_others():
    original = deployment(server="app:1")
    original["spec"]["template"]["metadata"]["annotations"] = {"keep": "me"}
    frozen = copy.deepcopy(original)
    now = datetime(2024, 5, 1, 12, 30, 5, tzinfo=UTC)
    updated = restarted(original, now)
    assert updated["spec"]["template"]["metadata"]["annotations"] == {
        "keep": "me",
        RESTARTED_AT: "2024-05-01T12:30:05Z",
    }
    assert original == frozen


def test_restarted_creates_missing_metadata():
    obj = {"kind": "DaemonSet", "spec": {"template": {"spec": {}}}}
    updated = restarted(obj, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert updated["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == (
        "2024-01-02T03:04:05Z"
    )
