"""Case 2: apply many manifests, one object per file, through envsubst.

(a) `shipline run` of a pipeline holding only the apply loop vs the bash loop
    `for file in k8s/*.yaml; do envsubst < $file | kubectl apply -f -; done`, whole
    processes (start-up included);
(b) the apply task's own duration in that run (start and end read from the Prefect API)
    vs one batched `kubectl apply -f DIR/` of the same files, rendered beforehand.
A third of the files each are ConfigMaps, Services and Deployments with 0 replicas. An
untimed first round creates the objects; each timed round changes an annotation on every
object (not the pod template: no rollout), so every object is "configured".
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from pathlib import Path

from cases.harness import (
    Row,
    Settings,
    faster_by,
    namespace,
    ratio_at_most,
    run,
    shipline_run,
    task_seconds,
    write_pipeline,
)

LOOP = "for file in k8s/*.yaml; do envsubst < $file | kubectl apply -f -; done"

_CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-{i:03d}
  annotations:
    bench/round: "${{BENCH_ROUND}}"
data:
  index: "{i}"
  owner: "${{BENCH_OWNER}}"
"""
_SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: svc-{i:03d}
  annotations:
    bench/round: "${{BENCH_ROUND}}"
spec:
  selector:
    app: app-{i:03d}
  ports:
    - port: 80
      targetPort: 8080
"""
_DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i:03d}
  annotations:
    bench/round: "${{BENCH_ROUND}}"
spec:
  replicas: 0
  selector:
    matchLabels:
      app: app-{i:03d}
  template:
    metadata:
      labels:
        app: app-{i:03d}
        owner: "${{BENCH_OWNER}}"
    spec:
      containers:
        - name: app
          image: shipline/busybox:1.35
          imagePullPolicy: IfNotPresent
          command: ["sleep", "3600"]
"""


def write_manifests(folder: Path, count: int) -> Path:
    """`count` files in folder/k8s, one object each, cycling ConfigMap, Service, Deployment."""
    k8s = folder / "k8s"
    k8s.mkdir(parents=True)
    templates = (_CONFIGMAP, _SERVICE, _DEPLOYMENT)
    for i in range(count):
        (k8s / f"{i:03d}.yaml").write_text(templates[i % 3].format(i=i))
    return k8s


def render(k8s: Path, into: Path, env: dict[str, str]) -> None:
    """The files as envsubst renders them (untimed input of the batched kubectl apply)."""
    into.mkdir(exist_ok=True)
    for path in sorted(k8s.glob("*.yaml")):
        with path.open("rb") as template:
            done = subprocess.run(["envsubst"], stdin=template, env=env, capture_output=True)
        (into / path.name).write_bytes(done.stdout)


def measure(settings: Settings, env: dict[str, str]) -> list[Row]:
    """Alternate shipline's apply with the bash loop and with one batched kubectl apply."""
    count = 60 if settings.quick else 200
    rounds = settings.rounds if settings.quick else min(settings.rounds, 3)
    whole_ours: list[float] = []
    whole_theirs: list[float] = []
    task_ours: list[float] = []
    batched: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        namespace("apply-s", env) as ns_ours,
        namespace("apply-b", env) as ns_loop,
        namespace("apply-k", env) as ns_batch,
    ):
        folder = Path(tmp)
        k8s = write_manifests(folder, count)
        pipeline = write_pipeline(folder, [LOOP])
        for timed_round in range(rounds + 1):  # round 0 creates the objects, untimed
            round_env = {**env, "BENCH_ROUND": uuid.uuid4().hex, "BENCH_OWNER": "bench"}
            ours = shipline_run(pipeline, round_env, commit="apply", namespace=ns_ours)
            theirs = run(
                ["bash", "-c", LOOP.replace("kubectl apply", f"kubectl apply -n {ns_loop}")],
                round_env,
                cwd=folder,
            )
            rendered = folder / "rendered"
            render(k8s, rendered, round_env)
            batch = run(["kubectl", "apply", "-n", ns_batch, "-f", f"{rendered}/"], round_env)
            if timed_round == 0:
                continue
            whole_ours.append(ours.seconds)
            whole_theirs.append(theirs.seconds)
            task_ours.append(task_seconds(env, ours.flow_run_id(), "apply")[0])
            batched.append(batch.seconds)
    return [
        Row(
            f"2a apply {count} manifests: shipline run vs bash loop",
            "s",
            whole_ours,
            whole_theirs,
            faster_by(15),
            note="whole processes, start-up included; every object configured each round",
        ),
        Row(
            f"2b apply {count} manifests: apply task vs one kubectl apply -f dir/",
            "s",
            task_ours,
            batched,
            ratio_at_most(1.0),
            note="task start/end from the Prefect API; kubectl on pre-rendered files",
        ),
    ]
