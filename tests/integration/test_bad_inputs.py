"""The bad-input catalogue: every kind of mistake gets a clear message naming what is wrong,
the right exit code, and nothing applied or pushed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: shipline/busybox:1.35
          imagePullPolicy: IfNotPresent
          command: [sleep, "3600"]
"""
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '1'\n"
APPLY = "  - for f in k8s/*.yaml; do envsubst < $f | kubectl apply -f -; done\n"
BUILD = "  - okteto build -t okteto.dev/bad-{tag}:${{OKTETO_GIT_COMMIT}} {rest}\n"


@dataclass
class Case:
    files: dict[str, str]
    expect: list[str]
    code: int = 2
    env: dict[str, str | None] = field(default_factory=dict)  # None: unset it
    pipeline: str = "okteto-pipeline.yaml"
    pre: str | None = None  # a kubectl manifest applied first (the cluster's state)
    pre_pause: bool = False
    commit: str | None = None  # default: a fresh one per run


def build_line(rest: str) -> str:
    return BUILD.format(tag=uuid.uuid4().hex[:8], rest=rest)


CASES: dict[str, Case] = {
    "pipeline missing": Case({}, ["okteto-pipeline.yaml", "does not exist"]),
    "pipeline not yaml": Case(
        {"okteto-pipeline.yaml": "deploy:\n  - echo ok\n bad: [\n"},
        ["okteto-pipeline.yaml line 3, column 2: not valid YAML"],
    ),
    "no deploy list": Case({"okteto-pipeline.yaml": "build: {}\n"}, ["deploy"]),
    "line not shell": Case(
        {"okteto-pipeline.yaml": "deploy:\n  - echo ok\n  - echo 'unterminated\n"},
        ["okteto-pipeline.yaml line 3", "unclosed single quote"],
    ),
    "control character in the pipeline": Case(
        {"okteto-pipeline.yaml": "deploy:\n  - echo ok\n  - echo \x1b[31m\n"},
        ["okteto-pipeline.yaml line 3: the control character U+001B at column 10"],
    ),
    "okteto flag not modelled and no okteto installed": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY + build_line("--platform linux/arm64 ."),
            "k8s/settings.yaml": CONFIGMAP,
            "Dockerfile": "FROM shipline/busybox:1.35\n",
        },
        ["okteto-pipeline.yaml line 3", "--platform is not modelled", "okteto is not installed"],
    ),
    "namespace that does not exist": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n  - kubectl -n {namespace}-gone apply -f k8s/\n",
            "k8s/settings.yaml": CONFIGMAP,
            "k8s/web.yaml": DEPLOYMENT,
        },
        [
            'namespaces "{namespace}-gone" not found',
            "namespace {namespace}-gone does not exist: create it (`kubectl create namespace",
        ],
    ),
    # An apply that does not wait for the image comes first: it must not run either.
    "dockerfile missing": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY + build_line("-f nope/Dockerfile ."),
            "k8s/settings.yaml": CONFIGMAP,
        },
        ["okteto-pipeline.yaml line 3", "nope/Dockerfile does not exist"],
    ),
    "context missing": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY + build_line("missing-dir"),
            "k8s/settings.yaml": CONFIGMAP,
        },
        ["okteto-pipeline.yaml line 3", "missing-dir is not a directory"],
    ),
    "shell line bash cannot parse": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY + "  - if true; then echo x\n",
            "k8s/settings.yaml": CONFIGMAP,
        },
        ["okteto-pipeline.yaml line 3: not valid shell", "unexpected end of file"],
    ),
    "commit that cannot be an image tag": Case(
        {"okteto-pipeline.yaml": "deploy:\n" + APPLY, "k8s/settings.yaml": CONFIGMAP},
        ["--commit 'a/b': expected a commit"],
        commit="a/b",
    ),
    "dockerfile step fails": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + build_line("."),
            "Dockerfile": "FROM shipline/busybox:1.35\nRUN echo about-to-fail && false\n",
        },
        ["RUN echo about-to-fail && false", "about-to-fail"],
        code=1,
    ),
    "manifest yaml error": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY,
            "k8s/a.yaml": CONFIGMAP,
            "k8s/b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n",
        },
        ["k8s/b.yaml:5: invalid YAML"],
    ),
    "unknown kind": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY,
            "k8s/a.yaml": CONFIGMAP,
            "k8s/b.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
        },
        ["k8s/b.yaml", "Widget"],
    ),
    "missing metadata.name": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY,
            "k8s/a.yaml": CONFIGMAP + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
        },
        ["k8s/a.yaml", "metadata.name"],
    ),
    "strict unset variable": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY,
            "k8s/a.yaml": CONFIGMAP + "  b: ${SURELY_UNSET_VARIABLE}\n",
        },
        ["k8s/a.yaml:7", "SURELY_UNSET_VARIABLE", "nothing was applied"],
    ),
    "set-image missing deployment": Case(
        {"okteto-pipeline.yaml": "deploy:\n  - kubectl set image deployment ghost app=x:1\n"},
        ["ghost"],
        code=1,
    ),
    "set-image missing container": Case(
        {"okteto-pipeline.yaml": "deploy:\n  - kubectl set image deployment web nope=x:1\n"},
        ['"nope"'],
        code=1,
        pre=DEPLOYMENT,
    ),
    "restart paused deployment": Case(
        {"okteto-pipeline.yaml": "deploy:\n  - kubectl rollout restart deployment web\n"},
        ["paused", "kubectl rollout resume"],
        code=1,
        pre=DEPLOYMENT,
        pre_pause=True,
    ),
    "rollout status missing object": Case(
        {"okteto-pipeline.yaml": "deploy:\n  - kubectl rollout status deployment ghost\n"},
        ["ghost"],
        code=1,
    ),
    "unreachable registry": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n  - okteto build -t 127.0.0.1:1/app:x .\n",
            "Dockerfile": "FROM shipline/busybox:1.35\n",
        },
        ["127.0.0.1:1"],
        code=1,
    ),
    "invalid image reference": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n  - okteto build -t 'Bad Image:tag' .\n",
            "Dockerfile": "FROM shipline/busybox:1.35\n",
        },
        ["Bad Image:tag"],
    ),
    "missing kubeconfig": Case(
        {"okteto-pipeline.yaml": "deploy:\n" + APPLY, "k8s/a.yaml": CONFIGMAP},
        ["/nonexistent/kubeconfig"],
        env={"KUBECONFIG": "/nonexistent/kubeconfig"},
    ),
    "broken kubeconfig": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY,
            "k8s/a.yaml": CONFIGMAP,
            "kubeconfig": "apiVersion: v1\nclusters: [\n",
        },
        ["kubeconfig"],
        env={"KUBECONFIG": "{dir}/kubeconfig"},
    ),
    "unreachable cluster": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY,
            "k8s/a.yaml": CONFIGMAP,
            "kubeconfig": (
                "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                "users: [{name: u, user: {token: t}}]\n"
                "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
            ),
        },
        ["127.0.0.1:1"],
        code=1,
        env={"KUBECONFIG": "{dir}/kubeconfig"},
    ),
    "bad manifest in an apply split around a set image": Case(
        {
            # The planner applies the ConfigMap apart from the Deployment, which it
            # applies with its final image; both are checked before either is applied.
            "okteto-pipeline.yaml": "deploy:\n"
            + APPLY
            + "  - kubectl set image deployment web web=k8s.gcr.io/pause:3.2\n",
            "k8s/a.yaml": CONFIGMAP,
            "k8s/b.yaml": DEPLOYMENT.replace(
                "command:", "ports: [{containerPort: -1}]\n          command:"
            ),
        },
        ["nothing was applied", "k8s/b.yaml:1", "containerPort: Invalid value: -1"],
    ),
    "object of another namespace under -n": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n  - kubectl -n {namespace} apply -f k8s/\n",
            "k8s/a.yaml": CONFIGMAP,
            "k8s/b.yaml": CONFIGMAP.replace(
                "name: settings", "name: other\n  namespace: elsewhere"
            ),
        },
        ["k8s/b.yaml:1", "does not match the namespace", "--namespace=elsewhere"],
    ),
    "secret value in a manifest the server refuses": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY,
            # The API server echoes the refused label value: the secret must not leave.
            "k8s/a.yaml": CONFIGMAP.replace(
                "name: settings", 'name: settings\n  labels: {app: "${SHIPLINE_TEST_SECRET} x"}'
            ),
        },
        ["nothing was applied", "k8s/a.yaml:1", 'Invalid value: "*** x"'],
    ),
    "unknown field (a typo kubectl refuses)": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY,
            "k8s/a.yaml": CONFIGMAP,
            "k8s/b.yaml": DEPLOYMENT.replace("imagePullPolicy:", "imagePullPolcy:"),
        },
        [
            "nothing was applied",
            "k8s/b.yaml:1",
            "ValidationError(Deployment.spec.template.spec.containers[0]): unknown field "
            '"imagePullPolcy" in io.k8s.api.core.v1.Container',
        ],
    ),
    "secret without a value": Case(
        {"okteto-pipeline.yaml": "deploy:\n" + APPLY, "k8s/a.yaml": CONFIGMAP},
        ["no value for the secret variable(s) SHIPLINE_TEST_SECRET", "export them"],
        env={"SHIPLINE_TEST_SECRET": None},
    ),
    "unauthorised cluster": Case(
        {
            "okteto-pipeline.yaml": "deploy:\n" + APPLY,
            "k8s/a.yaml": CONFIGMAP,
            "kubeconfig": (
                "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443', "
                "insecure-skip-tls-verify: true}}]\n"
                "users: [{name: u, user: {token: not-a-valid-token}}]\n"
                "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
            ),
        },
        ["refused the credentials", "401"],
        env={"KUBECONFIG": "{dir}/kubeconfig"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, stack, namespace, apps, core, tmp_path: Path):
    case = CASES[name]
    for rel, text in case.files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{namespace}", namespace))
    kubectl = ["kubectl", "--kubeconfig", stack.kubeconfig, "-n", namespace]
    if case.pre:
        subprocess.run([*kubectl, "apply", "-f", "-"], input=case.pre, text=True, check=True)
    if case.pre_pause:
        subprocess.run([*kubectl, "rollout", "pause", "deployment/web"], check=True)
    before = _snapshot(apps, core, namespace)
    env = {**os.environ, "SHIPLINE_TEST_SECRET": "s3cret-value-never-shown"}
    for key, value in case.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value.format(dir=tmp_path)
    commit = case.commit or f"bad{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shipline.cli",
            "run",
            str(tmp_path / case.pipeline),
            "--commit",
            commit,
            "-n",
            namespace,
            "--strict",
            "--secret",
            "SHIPLINE_TEST_SECRET",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    output = result.stderr + result.stdout
    assert result.returncode == case.code, output[-3000:]
    for text in (expected.replace("{namespace}", namespace) for expected in case.expect):
        assert text in output, f"{text!r} not in:\n{output[-3000:]}"
    # The error is said once, by the CLI, without a traceback (the run's log on the
    # Prefect server keeps those).
    assert "Traceback" not in output, output[-3000:]
    assert "s3cret-value-never-shown" not in output
    assert "s3cret-value-never-shown" not in _recorded(stack, output)
    assert _snapshot(apps, core, namespace) == before
    assert not _registry_has_commit(stack.registry, commit)


def _recorded(stack, output: str) -> str:
    """What the Prefect server keeps of the run: its logs and its runs' state messages."""
    found = re.findall(r"/runs/flow-run/([0-9a-f-]{36})", output)
    if not found:
        return ""
    api, run_id = stack.prefect_api_url, found[-1]
    logs = httpx.post(
        f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}}, timeout=30
    ).json()
    flow_run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=30).json()
    task_runs = httpx.post(
        f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}, timeout=30
    ).json()
    states = [flow_run["state"]] + [t["state"] for t in task_runs]
    return "\n".join(
        [entry["message"] for entry in logs] + [str(state.get("message")) for state in states]
    )


def _snapshot(apps, core, namespace: str) -> dict[str, object]:
    deployments = {
        d.metadata.name: (d.metadata.generation, d.spec.template.spec.containers[0].image)
        for d in apps.list_namespaced_deployment(namespace).items
    }
    configmaps = sorted(
        c.metadata.name
        for c in core.list_namespaced_config_map(namespace).items
        if c.metadata.name != "kube-root-ca.crt"
    )
    return {"deployments": deployments, "configmaps": configmaps}


def _registry_has_commit(registry: str, commit: str) -> bool:
    catalog = httpx.get(f"http://{registry}/v2/_catalog?n=1000", timeout=10).json()
    for repo in catalog.get("repositories") or []:
        if repo.startswith("bad-"):
            tags = httpx.get(f"http://{registry}/v2/{repo}/tags/list", timeout=10).json()
            if commit in (tags.get("tags") or []):
                return True
    return False
