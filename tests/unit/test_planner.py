"""flows.planner: the DAG rules, on parsed pipelines and a dict of objects per apply step."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.pipeline import Pipeline, PipelineOptions, parse_pipeline, read_pipeline
from flows.planner import ObjectRef, Plan, plan_pipeline
from flows.steps import ApplyStep

PR12ER = Path(__file__).parent / "testdata" / "pipelines" / "pr12er"
IMAGE = "127.0.0.1:5000/pr12er-server:abc"


def fake_objects(table: dict[str, list[tuple[str, str, str | None]]]):
    """objects_of backed by {file name: [(kind, name, namespace or None)]}."""

    def objects_of(step: ApplyStep) -> list[ObjectRef]:
        return [
            ObjectRef(kind, name, namespace or step.scope.namespace, path)
            for path in step.files
            for kind, name, namespace in table[Path(path).name]
        ]

    return objects_of


PR12ER_OBJECTS = {
    "envoy.yaml": [("Deployment", "envoy", None)],
    "grafana-agent.yaml": [
        ("ConfigMap", "grafana-agent", None),
        ("Deployment", "grafana-agent", None),
    ],
    "server.yaml": [("Deployment", "server", None), ("Service", "server", None)],
}


def edges(plan: Plan) -> set[tuple[str, str]]:
    return set(plan.edges)


def needs(plan: Plan, step_id: str) -> set[str]:
    return {source for source, target in plan.edges if target == step_id}


def plan_lines(lines: list[str], tmp_path: Path, objects: dict, **options: object) -> Plan:
    for name in objects:
        (tmp_path / name).write_text("kind: ConfigMap\n")
    text = "deploy:\n" + "".join(f"  - {line}\n" for line in lines)
    settings = {"commit": "abc", **options}
    pipeline = parse_pipeline(text, path=tmp_path / "p.yaml", options=PipelineOptions(**settings))
    return plan_pipeline(pipeline, fake_objects(objects))


def test_pr12er_plan() -> None:
    pipeline = read_pipeline(PR12ER / "okteto-pipeline.yaml", PipelineOptions(commit="abc"))
    plan = plan_pipeline(pipeline, fake_objects(PR12ER_OBJECTS))
    assert [s.id for s in plan.steps] == [
        "build[pr12er-server]",
        "apply[k8s]",
        "apply[server]",
        "set-image[server]",
        "restart[grafana-agent]",
        "wait[server]",
        "wait[grafana-agent]",
    ]
    assert edges(plan) == {
        ("apply[k8s]", "apply[server]"),
        ("build[pr12er-server]", "apply[server]"),
        ("build[pr12er-server]", "set-image[server]"),
        ("apply[server]", "set-image[server]"),
        ("apply[k8s]", "restart[grafana-agent]"),
        ("apply[server]", "wait[server]"),
        ("set-image[server]", "wait[server]"),
        ("apply[k8s]", "wait[grafana-agent]"),
        ("restart[grafana-agent]", "wait[grafana-agent]"),
    }
    by_id = {s.id: s for s in plan.steps}
    first, second = by_id["apply[k8s]"], by_id["apply[server]"]
    assert first.step is second.step is pipeline.steps[1]
    assert first.targets == (
        "deployment/envoy",
        "configmap/grafana-agent",
        "deployment/grafana-agent",
        "service/server",
    )
    assert second.targets == ("deployment/server",)
    assert [o.name for o in second.objects] == ["server"]
    assert second.image_overrides == (("deployment/server", "server", IMAGE),)
    assert first.image_overrides == ()
    assert by_id["build[pr12er-server]"].targets == (IMAGE,)
    assert by_id["build[pr12er-server]"].needs == ()


def test_an_apply_without_a_later_set_image_stays_whole(tmp_path: Path) -> None:
    plan = plan_lines(
        [
            "okteto build -t okteto.dev/a:1",
            "kubectl apply -f a.yaml",
            "kubectl rollout status deploy/a",
        ],
        tmp_path,
        {"a.yaml": [("Deployment", "a", None)]},
    )
    assert [s.id for s in plan.steps] == ["build[a]", "apply[a]", "wait[a]"]
    assert edges(plan) == {("apply[a]", "wait[a]")}


def test_a_build_after_the_apply_still_feeds_part_two(tmp_path: Path) -> None:
    plan = plan_lines(
        [
            "kubectl apply -f a.yaml",
            "okteto build -t okteto.dev/a:1",
            "kubectl set image deploy/a '*=okteto.dev/a:1'",
        ],
        tmp_path,
        {"a.yaml": [("Namespace", "x", None), ("Deployment", "a", None)]},
    )
    assert [s.id for s in plan.steps] == ["apply[a]", "build[a]", "apply[a]-2", "set-image[a]"]
    assert needs(plan, "apply[a]") == set()
    assert needs(plan, "apply[a]-2") == {"apply[a]", "build[a]"}
    assert needs(plan, "set-image[a]") == {"build[a]", "apply[a]-2"}
    part2 = plan.steps[2]
    assert part2.image_overrides == (("deployment/a", "*", "127.0.0.1:5000/a:1"),)


def test_an_apply_of_only_rolled_workloads_is_one_part_with_overrides(tmp_path: Path) -> None:
    plan = plan_lines(
        ["okteto build -t x/a:1", "kubectl apply -f a.yaml", "kubectl set image deploy/a c=x/a:1"],
        tmp_path,
        {"a.yaml": [("Deployment", "a", None)]},
    )
    assert [s.id for s in plan.steps] == ["build[a]", "apply[a]", "set-image[a]"]
    assert plan.steps[1].image_overrides == (("deployment/a", "c", "x/a:1"),)
    assert edges(plan) == {
        ("build[a]", "apply[a]"),
        ("build[a]", "set-image[a]"),
        ("apply[a]", "set-image[a]"),
    }


def test_shell_steps_are_barriers(tmp_path: Path) -> None:
    plan = plan_lines(
        [
            "okteto build -t x/a:1",
            "kubectl apply -f a.yaml",
            "./migrate.sh",
            "okteto build -t x/b:1",
            "kubectl rollout restart deploy/a",
            "echo done",
            "kubectl rollout status deploy/a",
        ],
        tmp_path,
        {"a.yaml": [("Deployment", "a", None)]},
    )
    assert [s.id for s in plan.steps] == [
        "build[a]",
        "apply[a]",
        "shell[3]",
        "build[b]",
        "restart[a]",
        "shell[6]",
        "wait[a]",
    ]
    assert needs(plan, "shell[3]") == {"build[a]", "apply[a]"}
    assert needs(plan, "build[b]") == {"shell[3]"}
    # The apply before the barrier is reached through it.
    assert needs(plan, "restart[a]") == {"shell[3]"}
    assert needs(plan, "shell[6]") == {"shell[3]", "build[b]", "restart[a]"}
    assert needs(plan, "wait[a]") == {"shell[6]"}


def test_a_shell_step_between_apply_and_set_image_prevents_the_split(tmp_path: Path) -> None:
    plan = plan_lines(
        [
            "kubectl apply -f a.yaml",
            "echo between",
            "okteto build -t x/a:1",
            "kubectl set image deploy/a c=x/a:1",
        ],
        tmp_path,
        {"a.yaml": [("Deployment", "a", None)]},
    )
    assert [s.id for s in plan.steps] == ["apply[a]", "shell[2]", "build[a]", "set-image[a]"]
    assert plan.steps[0].image_overrides == ()
    assert needs(plan, "set-image[a]") == {"shell[2]", "build[a]"}


def test_wait_with_no_step_naming_its_target_needs_every_apply(tmp_path: Path) -> None:
    plan = plan_lines(
        [
            "kubectl apply -f a.yaml",
            "kubectl apply -f b.yaml",
            "kubectl rollout status deploy/other",
        ],
        tmp_path,
        {"a.yaml": [("ConfigMap", "a", None)], "b.yaml": [("ConfigMap", "b", None)]},
    )
    assert needs(plan, "wait[other]") == {"apply[a]", "apply[b]"}


def test_later_changes_of_a_target_need_the_earlier_ones(tmp_path: Path) -> None:
    plan = plan_lines(
        [
            "kubectl apply -f a.yaml",
            "kubectl rollout restart deploy/a",
            "kubectl apply -f a2.yaml",
            "kubectl rollout restart deploy/a",
            "kubectl rollout status deploy/a",
        ],
        tmp_path,
        {"a.yaml": [("Deployment", "a", None)], "a2.yaml": [("Deployment", "a", None)]},
    )
    ids = [s.id for s in plan.steps]
    assert ids == ["apply[a]", "restart[a]", "apply[a2]", "restart[a]-2", "wait[a]"]
    assert needs(plan, "apply[a2]") == {"apply[a]", "restart[a]"}
    assert needs(plan, "restart[a]-2") == {"apply[a]", "restart[a]", "apply[a2]"}
    assert needs(plan, "wait[a]") == set(ids[:-1])


def test_other_namespaces_are_separate_targets(tmp_path: Path) -> None:
    plan = plan_lines(
        [
            "kubectl apply -f a.yaml",
            "kubectl -n other set image deploy/a c=x:1",
            "kubectl rollout status deploy/a -n other",
            "kubectl rollout status deploy/a",
        ],
        tmp_path,
        {"a.yaml": [("Deployment", "a", None), ("Deployment", "a", "other")]},
        namespace="prod",
    )
    by_id = {s.id: s for s in plan.steps}
    assert by_id["apply[a]"].targets == ("deployment/a",)
    assert by_id["apply[a]-2"].targets == ("deployment/a@other",)
    assert by_id["set-image[a]"].targets == ("deployment/a@other",)
    assert needs(plan, "set-image[a]") == {"apply[a]-2"}
    assert needs(plan, "wait[a]") == {"apply[a]-2", "set-image[a]"}
    assert needs(plan, "wait[a]-2") == {"apply[a]"}


def test_manifest_builds_depend_on_their_depends_on(tmp_path: Path) -> None:
    text = (
        "build:\n  base: {}\n  api:\n    depends_on: [base]\n"
        "deploy:\n  - kubectl set image deploy/api api=${OKTETO_BUILD_API_IMAGE}\n"
    )
    pipeline = parse_pipeline(
        text, path=tmp_path / "okteto.yml", options=PipelineOptions(commit="c")
    )
    plan = plan_pipeline(pipeline, fake_objects({}))
    name = tmp_path.name
    assert edges(plan) == {
        (f"build[{name}-base]", f"build[{name}-api]"),
        (f"build[{name}-api]", "set-image[api]"),
    }


def test_object_ref_target() -> None:
    assert ObjectRef("Deployment", "server", "prod").target("prod") == "deployment/server"
    assert ObjectRef("ConfigMap", "c", "x").target("prod") == "configmap/c@x"


@pytest.mark.parametrize("count", [1, 3])
def test_ids_are_unique(count: int, tmp_path: Path) -> None:
    plan = plan_lines(["kubectl rollout status deploy/a"] * count, tmp_path, {})
    assert [s.id for s in plan.steps] == ["wait[a]", "wait[a]-2", "wait[a]-3"][:count]


def test_plan_of_an_empty_pipeline(tmp_path: Path) -> None:
    pipeline = Pipeline(str(tmp_path / "p.yaml"), str(tmp_path), "default", ())
    assert plan_pipeline(pipeline, fake_objects({})) == Plan((), ())
