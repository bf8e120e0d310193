"""`shipline plan`: the JSON contract on the pr12er pipeline, errors, and no Prefect import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.pipeline import PipelineOptions, read_pipeline
from flows.plan_view import plan_json, plan_table
from flows.planner import ObjectRef, plan_pipeline

SHIPLINE = str(Path(sys.executable).with_name("shipline"))
PR12ER = Path(__file__).parent / "testdata" / "pipelines" / "pr12er"


def shipline(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SHIPLINE_REGISTRY", "KUBECONFIG")}
    env["HOME"] = "/nonexistent"  # no ~/.kube/config: the namespace is "default"
    env["COLUMNS"] = "200"
    return subprocess.run(
        [SHIPLINE, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def test_plan_json_on_pr12er() -> None:
    done = shipline("plan", PR12ER / "okteto-pipeline.yaml", "--json", "--commit", "abc")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)  # stdout holds the JSON and nothing else
    image = "127.0.0.1:5000/pr12er-server:abc"
    assert data["steps"] == [
        {"id": "build[pr12er-server]", "kind": "build", "line": 3, "targets": [image]},
        {
            "id": "apply[k8s]",
            "kind": "apply",
            "line": 4,
            "targets": [
                "deployment/envoy",
                "configmap/grafana-agent",
                "deployment/grafana-agent",
                "service/server",
            ],
        },
        {"id": "apply[server]", "kind": "apply", "line": 4, "targets": ["deployment/server"]},
        {
            "id": "set-image[server]",
            "kind": "set-image",
            "line": 5,
            "targets": ["deployment/server"],
        },
        {
            "id": "restart[grafana-agent]",
            "kind": "restart",
            "line": 6,
            "targets": ["deployment/grafana-agent"],
        },
        {"id": "wait[server]", "kind": "wait", "line": 7, "targets": ["deployment/server"]},
        {
            "id": "wait[grafana-agent]",
            "kind": "wait",
            "line": 7,
            "targets": ["deployment/grafana-agent"],
        },
    ]
    edges = {tuple(edge) for edge in data["edges"]}
    # The test: the first apply part does not wait for the build.
    assert not any(target == "apply[k8s]" for _, target in edges)
    assert ("build[pr12er-server]", "set-image[server]") in edges
    assert ("apply[server]", "set-image[server]") in edges
    assert ("set-image[server]", "wait[server]") in edges
    assert ("restart[grafana-agent]", "wait[grafana-agent]") in edges
    assert len(edges) == len(data["edges"]) == 9


def test_plan_options_shape_the_plan(tmp_path: Path) -> None:
    done = shipline(
        "plan",
        PR12ER / "okteto-pipeline.yaml",
        "--json",
        "--commit=c1",
        "--namespace",
        "prod",
        "--registry",
        "reg.local:5000",
        "--var",
        "GRAFANA_API_KEY=s3cret",
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["steps"][0]["targets"] == ["reg.local:5000/pr12er-server:c1"]
    assert "s3cret" not in done.stdout + done.stderr


def test_commit_defaults_to_git_head_and_must_be_given_outside_a_repository(
    tmp_path: Path,
) -> None:
    shutil.copytree(PR12ER, tmp_path / "repo")
    repo = tmp_path / "repo"
    for given in ((), ("--commit", "")):
        done = shipline("plan", repo / "okteto-pipeline.yaml", "--json", *given)
        assert done.returncode == 2, done.stdout
        assert "cannot tell which commit to deploy" in done.stderr
        assert "pass --commit REV" in done.stderr
        assert "Traceback" not in done.stderr

    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    done = shipline("plan", repo / "okteto-pipeline.yaml", "--json")
    assert json.loads(done.stdout)["steps"][0]["targets"] == [f"127.0.0.1:5000/pr12er-server:{sha}"]


def test_human_output_is_a_table_with_ids_and_needs() -> None:
    done = shipline("plan", PR12ER / "okteto-pipeline.yaml", "--commit", "abc")
    assert done.returncode == 0, done.stderr
    for text in ("build[pr12er-server]", "apply[server]", "wait[grafana-agent]", "needs"):
        assert text in done.stdout


def test_errors_exit_2_with_file_and_line(tmp_path: Path) -> None:
    missing = shipline("plan", tmp_path / "nope.yaml", "--json")
    assert missing.returncode == 2
    assert "nope.yaml does not exist" in missing.stderr
    assert missing.stdout == ""

    bad = tmp_path / "p.yaml"
    bad.write_text("deploy:\n  - echo ok\n  - kubectl set image deploy/a\n")
    refused = shipline("plan", bad, "--json", "--commit", "c1")
    assert refused.returncode == 2
    assert (
        "p.yaml line 3: kubectl set image: at least one image update is required" in refused.stderr
    )

    var = shipline("plan", PR12ER / "okteto-pipeline.yaml", "--var", "1X=y")
    assert var.returncode == 2
    assert "--var '1X=y': expected NAME=VALUE" in var.stderr


def test_manifest_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("kind: Deployment\nmetadata: {}\n")
    (tmp_path / "p.yaml").write_text("deploy:\n  - kubectl apply -f bad.yaml\n")
    done = shipline("plan", tmp_path / "p.yaml", "--json", "--commit", "c1")
    assert done.returncode == 2
    assert "bad.yaml" in done.stderr


def test_plan_does_not_import_prefect() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from shipline.cli import app\n"
        f"result = CliRunner().invoke(app, ['plan', {str(PR12ER / 'okteto-pipeline.yaml')!r}, "
        "'--json', '--commit', 'c'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('prefect', 'kubernetes', 'docker'))\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_plan_json_and_table_in_process() -> None:
    pipeline = read_pipeline(PR12ER / "okteto-pipeline.yaml", PipelineOptions(commit="abc"))
    plan = plan_pipeline(pipeline, lambda step: [ObjectRef("Deployment", "server", "default")])
    data = plan_json(plan)
    assert set(data) == {"steps", "edges"}
    assert all(set(step) == {"id", "kind", "line", "targets"} for step in data["steps"])
    assert all(isinstance(edge, list) and len(edge) == 2 for edge in data["edges"])
    assert plan_table(plan).row_count == len(plan.steps)


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize(
    "commit", ["has space", "-rf", "tab\there", "x" * 129, "é", "a/b", ".abc", "a$b"]
)
def test_a_commit_that_cannot_be_a_tag_is_refused(command: str, commit: str) -> None:
    # `run` refuses it before it creates a flow run: no Prefect server is needed.
    done = shipline(command, PR12ER / "okteto-pipeline.yaml", "--commit", commit)
    assert done.returncode == 2, done.stdout
    assert "--commit" in done.stderr and "expected a commit" in done.stderr


def test_run_outside_a_repository_needs_a_commit(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("deploy:\n  - 'true'\n")
    done = shipline("run", tmp_path / "p.yaml")
    assert done.returncode == 2, done.stdout
    assert "cannot tell which commit to deploy" in done.stderr
    assert "flow run" not in done.stderr


@pytest.mark.parametrize(
    "line",
    ["kubectl apply -f k8s/", "for f in k8s/*.yaml; do envsubst < $f | kubectl apply -f -; done"],
)
def test_manifests_without_an_object_are_refused_as_kubectl_does(line: str, tmp_path: Path) -> None:
    # `kubectl apply` says "error: no objects passed to apply" for the same files.
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "a.yaml").write_text("# nothing yet\n---\n")
    (tmp_path / "p.yaml").write_text(f"deploy:\n  - {line}\n")
    done = shipline("plan", tmp_path / "p.yaml", "--commit", "c1")
    assert done.returncode == 2, done.stdout
    assert "p.yaml line 2: no objects passed to apply" in done.stderr
    assert "k8s/a.yaml" in done.stderr


@pytest.mark.parametrize("registry", ["http://127.0.0.1:5000", "a b", "/path"])
def test_a_registry_that_images_cannot_name_is_refused(registry: str) -> None:
    done = shipline(
        "plan", PR12ER / "okteto-pipeline.yaml", "--commit", "c1", "--registry", registry
    )
    assert done.returncode == 2, done.stdout
    assert f"--registry {registry!r}: expected HOST[:PORT]" in done.stderr


@pytest.mark.parametrize("option", ["--branch", "--var"])
def test_run_refuses_arguments_that_are_not_utf8(option: str) -> None:
    # argv bytes that are not UTF-8 reach Python as surrogates, which JSON cannot carry.
    value = os.fsdecode(b"X=b\xff" if option == "--var" else b"b\xff")
    done = shipline("run", PR12ER / "okteto-pipeline.yaml", "--commit", "c1", option, value)
    assert done.returncode == 2, done.stdout
    assert "holds bytes that are not UTF-8" in done.stderr
    assert "Traceback" not in done.stderr
