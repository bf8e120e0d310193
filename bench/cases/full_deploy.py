"""Case 1: full deploy of the example, `shipline run` vs `bash deploy.sh`.

Each round changes a comment in server/main.go of a temporary copy, so both sides really
build (compile, push) and then apply, set the image, restart and wait for three
Deployments. Each side deploys into its own namespace, created fresh for the case; a
first, untimed round per side creates the objects, so timed rounds are redeploys.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from cases.harness import (
    EXAMPLE,
    EXAMPLE_VARS,
    Row,
    Settings,
    example_vars,
    namespace,
    ratio_at_most,
    run,
    shipline_run,
)

ROLLOUT_TIMEOUT = 120


def copy_example(into: Path) -> Path:
    """A temporary copy of the example to edit."""
    copy = into / "pr12er"
    shutil.copytree(EXAMPLE, copy)
    return copy


def touch_source(example: Path) -> str:
    """Change a comment in server/main.go; the new commit name to deploy it as."""
    commit = f"bench-{uuid.uuid4().hex[:12]}"
    with (example / "server" / "main.go").open("a") as fh:
        fh.write(f"\n// bench round {commit}\n")
    return commit


def deploy_shipline(example: Path, env: dict[str, str], ns: str) -> float:
    """One `shipline run` of the example with a changed source; seconds."""
    commit = touch_source(example)
    return shipline_run(
        example / "okteto-pipeline.yaml",
        env,
        commit=commit,
        namespace=ns,
        extra=[*example_vars(), "--timeout", str(ROLLOUT_TIMEOUT)],
    ).seconds


def deploy_shell(example: Path, env: dict[str, str], ns: str) -> float:
    """One `bash deploy.sh` of the example with a changed source; seconds."""
    commit = touch_source(example)
    shell_env = {
        **env,
        **EXAMPLE_VARS,
        "COMMIT": commit,
        "NAMESPACE": ns,
        "ROLLOUT_TIMEOUT": f"{ROLLOUT_TIMEOUT}s",
    }
    return run(["bash", str(example / "deploy.sh")], shell_env).seconds


def measure(settings: Settings, env: dict[str, str]) -> list[Row]:
    """Alternate shipline and the shell pipeline; full deploys with a fresh build each."""
    ours: list[float] = []
    theirs: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        namespace("deploy-s", env) as ns_ours,
        namespace("deploy-b", env) as ns_theirs,
    ):
        example = copy_example(Path(tmp))
        deploy_shipline(example, env, ns_ours)  # untimed: creates the objects
        deploy_shell(example, env, ns_theirs)
        for _ in range(settings.rounds):
            ours.append(deploy_shipline(example, env, ns_ours))
            theirs.append(deploy_shell(example, env, ns_theirs))
    return [
        Row(
            "1 full deploy (build, apply, set image, restart, 3 waits)",
            "s",
            ours,
            theirs,
            ratio_at_most(0.8),
            note="whole processes; each round builds a changed server/main.go",
        )
    ]
