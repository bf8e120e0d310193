"""Case 4: a missing image tag: time to a failed verdict, shipline vs kubectl.

Each attempt gets its own Deployment (1 replica of busybox, `progressDeadlineSeconds`
120; --quick: 30), rolled out untimed. Then the image is set to a tag the registry does
not have and the time until a failure verdict is taken:
- shipline: `shipline run --no-rollback` of `kubectl set image ...` + `kubectl rollout
  status ...` (whole process, start-up included; it exits non-zero);
- baseline: `kubectl set image` then `kubectl rollout status`, which fails only when the
  Deployment reports ProgressDeadlineExceeded.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

from cases.harness import (
    Row,
    Settings,
    faster_by,
    kubectl,
    namespace,
    run,
    shipline_run,
    write_pipeline,
)


def _deployment(name: str, deadline: int) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": deadline,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [
                        {
                            "name": "app",
                            "image": "shipline/busybox:1.35",
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "3600"],
                        }
                    ],
                },
            },
        },
    }


def _ready_deployment(ns: str, deadline: int, env: dict[str, str], folder: Path) -> str:
    """A new Deployment, rolled out; its name."""
    name = f"app-{uuid.uuid4().hex[:6]}"
    manifest = folder / f"{name}.json"
    manifest.write_text(json.dumps(_deployment(name, deadline)))
    kubectl("apply", "-n", ns, "-f", str(manifest), env=env)
    kubectl("rollout", "status", "-n", ns, f"deployment/{name}", "--timeout=120s", env=env)
    return name


def measure(settings: Settings, env: dict[str, str]) -> list[Row]:
    """Alternate shipline's fail-fast verdict with kubectl rollout status's."""
    deadline = 30 if settings.quick else 120
    rounds = settings.rounds if settings.quick else min(settings.rounds, 3)
    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, namespace("missing", env) as ns:
        folder = Path(tmp)
        for _ in range(rounds):
            missing = f"{env['SHIPLINE_REGISTRY']}/bench-missing:absent-{uuid.uuid4().hex[:8]}"
            name = _ready_deployment(ns, deadline, env, folder)
            pipeline = write_pipeline(
                folder,
                [
                    f"kubectl set image deployment {name} app={missing}",
                    f"kubectl rollout status deployment {name}",
                ],
            )
            failed = shipline_run(
                pipeline, env, commit="missing", namespace=ns, extra=["--no-rollback"], check=False
            )
            if failed.returncode == 0:
                raise RuntimeError("shipline run succeeded with a missing image")
            ours.append(failed.seconds)

            name = _ready_deployment(ns, deadline, env, folder)
            argv = ["kubectl", "-n", ns]
            set_image = run([*argv, "set", "image", f"deployment/{name}", f"app={missing}"], env)
            status = run(
                [*argv, "rollout", "status", f"deployment/{name}", f"--timeout={deadline + 120}s"],
                env,
                check=False,
                timeout=deadline + 180,
            )
            if "exceeded its progress deadline" not in status.stderr + status.stdout:
                raise RuntimeError(f"kubectl rollout status did not fail as expected: {status}")
            theirs.append(set_image.seconds + status.seconds)
    return [
        Row(
            f"4 missing image tag: time to failed verdict (deadline {deadline} s)",
            "s",
            ours,
            theirs,
            faster_by(10),
            note=f"progressDeadlineSeconds {deadline}; shipline whole process with --no-rollback",
        )
    ]
