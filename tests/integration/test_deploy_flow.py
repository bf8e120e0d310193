"""The deploy flow end to end: the example deployed by `shipline run`, recorded by the
stack's Prefect server, checked on the real cluster and registry."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from shipline_runs import (
    API_KEY,
    EXAMPLE,
    GRAFANA,
    flow_run_id,
    running_images,
    shipline_run,
    task_runs,
)

pytestmark = pytest.mark.integration

EXAMPLE_PIPELINE = str(EXAMPLE / "okteto-pipeline.yaml")


def deployment(apps, name: str, namespace: str):
    return apps.read_namespaced_deployment(name, namespace)


def test_deploy_a_then_b_then_rerun_b(stack, namespace, apps, core):
    commit_a, commit_b = f"a{uuid.uuid4().hex[:10]}", f"b{uuid.uuid4().hex[:10]}"
    first = shipline_run(EXAMPLE_PIPELINE, "--commit", commit_a, "-n", namespace, *GRAFANA)
    assert first.returncode == 0, first.stderr[-3000:]
    restarted_a = deployment(apps, "grafana-agent", namespace).spec.template.metadata.annotations[
        "kubectl.kubernetes.io/restartedAt"
    ]

    second = shipline_run(EXAMPLE_PIPELINE, "--commit", commit_b, "-n", namespace, *GRAFANA)
    assert second.returncode == 0, second.stderr[-3000:]
    image_b = f"{stack.registry}/pr12er-server:{commit_b}"
    assert running_images(core, namespace, "server") == {image_b}
    agent = deployment(apps, "grafana-agent", namespace)
    assert agent.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] != (
        restarted_a
    )
    for name in ("server", "grafana-agent", "envoy"):
        status = deployment(apps, name, namespace).status
        assert status.updated_replicas == status.replicas == status.available_replicas
    run_b = flow_run_id(second.stderr)
    states = task_runs(stack.prefect_api_url, run_b)
    assert {"set-image[server]", "restart[grafana-agent]", "wait[server]"} <= set(states)
    artifacts = httpx.post(
        f"{stack.prefect_api_url}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [run_b]}, "type": {"any_": ["markdown"]}}},
        timeout=30,
    ).json()
    assert any(commit_b[:12] in a["data"] for a in artifacts)
    assert all(API_KEY not in a["data"] for a in artifacts)

    generations = {
        name: deployment(apps, name, namespace).metadata.generation
        for name in ("server", "envoy", "grafana-agent")
    }
    rerun = shipline_run(EXAMPLE_PIPELINE, "--commit", commit_b, "-n", namespace, *GRAFANA)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    states = task_runs(stack.prefect_api_url, flow_run_id(rerun.stderr))
    build = [state for name, state in states.items() if name.startswith("build[")]
    assert build == ["Cached"], states
    assert deployment(apps, "server", namespace).metadata.generation == generations["server"]
    assert deployment(apps, "envoy", namespace).metadata.generation == generations["envoy"]
    # The restart line restarts on purpose: one new generation, nothing else.
    assert (
        deployment(apps, "grafana-agent", namespace).metadata.generation
        == generations["grafana-agent"] + 1
    )
    assert API_KEY not in first.stderr + second.stderr + rerun.stderr


def test_unknown_line_runs_in_order_and_failure_carries_exit_code(stack, namespace, tmp_path):
    marker = tmp_path / "order.txt"
    pipeline = tmp_path / "okteto-pipeline.yaml"
    pipeline.write_text(
        "deploy:\n"
        f"  - echo one >> {marker}\n"
        f"  - echo two >> {marker} && echo 'bad thing happened' >&2 && exit 7\n"
        f"  - echo three >> {marker}\n"
    )
    result = shipline_run(str(pipeline), "--commit", "x1", "-n", namespace)
    assert result.returncode == 1, result.stderr[-2000:]
    assert marker.read_text().split() == ["one", "two"]
    assert "exited with code 7" in result.stderr
    assert "bad thing happened" in result.stderr


def test_dry_run_changes_nothing(stack, namespace, apps, core):
    commit = f"dry{uuid.uuid4().hex[:10]}"

    def objects() -> dict[str, list[str]]:
        # kube-root-ca.crt is the controller manager's, made when the namespace is new.
        kinds = {
            "configmaps": core.list_namespaced_config_map(namespace).items,
            "secrets": core.list_namespaced_secret(namespace).items,
            "services": core.list_namespaced_service(namespace).items,
            "deployments": apps.list_namespaced_deployment(namespace).items,
        }
        return {
            kind: sorted(
                o.metadata.name
                for o in items
                if o.metadata.name != "kube-root-ca.crt"
                and not o.metadata.name.startswith("default-token-")
            )
            for kind, items in kinds.items()
        }

    before = objects()
    result = shipline_run(
        EXAMPLE_PIPELINE, "--commit", commit, "-n", namespace, "--dry-run", *GRAFANA
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "server dry run" in result.stderr
    assert objects() == before == {kind: [] for kind in before}
    tag = httpx.head(
        f"http://{stack.registry}/v2/pr12er-server/manifests/{commit}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    assert tag.status_code == 404


def test_each_line_acts_where_its_flags_say(stack, namespace, core, tmp_path):
    # `kubectl -n OTHER apply` applies into OTHER, and `--kubeconfig FILE --context NAME`
    # uses that context even when the file's current-context is unusable.
    from kubernetes import client

    other = f"{namespace[:50]}-other"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        config = yaml.safe_load(Path(stack.kubeconfig).read_text())
        good = config["contexts"][0]
        config["contexts"] = [
            {"name": "elsewhere", "context": good["context"]},
            {"name": "broken", "context": {"cluster": "nope", "user": "nope"}},
        ]
        config["current-context"] = "broken"
        (tmp_path / "other.kubeconfig").write_text(yaml.safe_dump(config))
        (tmp_path / "k8s").mkdir()
        for name in ("first", "second"):
            (tmp_path / "k8s" / f"{name}.yaml").write_text(
                f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata: {{a: '1'}}\n"
            )
        (tmp_path / "okteto-pipeline.yaml").write_text(
            "deploy:\n"
            f"  - kubectl -n {other} apply -f k8s/first.yaml\n"
            "  - kubectl --kubeconfig other.kubeconfig --context elsewhere"
            f" --namespace={other} apply -f k8s/second.yaml\n"
        )
        done = shipline_run(
            str(tmp_path / "okteto-pipeline.yaml"), "--commit", "x", "-n", namespace
        )
        assert done.returncode == 0, done.stderr[-3000:]
        in_other = {c.metadata.name for c in core.list_namespaced_config_map(other).items}
        in_run = {c.metadata.name for c in core.list_namespaced_config_map(namespace).items}
        assert {"first", "second"} <= in_other
        assert not {"first", "second"} & in_run
    finally:
        core.delete_namespace(other, propagation_policy="Background")


def test_a_namespace_made_by_an_earlier_line_is_not_refused_ahead(stack, namespace, core, tmp_path):
    # Every apply is dry-run before anything changes; a Namespace that line 1 creates
    # does not exist yet then, so line 2's objects in it are checked when applied.
    made = f"{namespace[:50]}-made"
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "ns.yaml").write_text(
        f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {made}\n"
    )
    (tmp_path / "k8s" / "app.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata: {a: '1'}\n"
    )
    (tmp_path / "okteto-pipeline.yaml").write_text(
        f"deploy:\n  - kubectl apply -f k8s/ns.yaml\n  - kubectl -n {made} apply -f k8s/app.yaml\n"
    )
    try:
        done = shipline_run(
            str(tmp_path / "okteto-pipeline.yaml"), "--commit", "x", "-n", namespace
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert core.read_namespaced_config_map("app", made).data == {"a": "1"}
    finally:
        core.delete_namespace(made, propagation_policy="Background")
