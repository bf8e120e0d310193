"""Rollback: a failed rollout undoes what the run changed; the cluster ends on the old images."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

GOOD = "shipline/busybox:1.35"
MISSING = "127.0.0.1:5000/shipline-nope:missing"

MANIFEST = """\
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
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: placeholder
          imagePullPolicy: IfNotPresent
          command: [sleep, "3600"]
"""

PIPELINE = """\
deploy:
  - for f in k8s/*.yaml; do envsubst < $f | kubectl apply -f -; done
  - kubectl set image deployment web web=${IMAGE}
  - kubectl rollout status deployment web --timeout=90s
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "web.yaml").write_text(MANIFEST)
    (tmp_path / "okteto-pipeline.yaml").write_text(PIPELINE)
    return tmp_path / "okteto-pipeline.yaml"


def run(pipeline: Path, namespace: str, image: str, *extra: str):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "shipline.cli",
            "run",
            str(pipeline),
            "--commit",
            "c",
            "-n",
            namespace,
            "--var",
            f"IMAGE={image}",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def running_images(core, namespace: str) -> set[str]:
    deadline = time.monotonic() + 60
    while True:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        images = {c.image for p in live for c in p.spec.containers}
        if (len(live) == 1 and live[0].status.phase == "Running") or time.monotonic() > deadline:
            return images
        time.sleep(1)


def test_failed_rollout_is_undone(stack, namespace, apps, core, project):
    ok = run(project, namespace, GOOD)
    assert ok.returncode == 0, ok.stderr[-3000:]

    failed = run(project, namespace, MISSING)
    assert failed.returncode == 1
    assert "ImagePullBackOff" in failed.stderr or "ErrImagePull" in failed.stderr
    assert "rolling back deployment/web" in failed.stderr
    deployment = apps.read_namespaced_deployment("web", namespace)
    assert deployment.spec.template.spec.containers[0].image == GOOD
    assert running_images(core, namespace) == {GOOD}


def test_no_rollback_leaves_the_failed_rollout(stack, namespace, apps, project):
    assert run(project, namespace, GOOD).returncode == 0
    failed = run(project, namespace, MISSING, "--no-rollback")
    assert failed.returncode == 1
    deployment = apps.read_namespaced_deployment("web", namespace)
    assert deployment.spec.template.spec.containers[0].image == MISSING
