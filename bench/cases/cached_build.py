"""Case 3: rerun with an unchanged commit: shipline's build step vs a full build.

A pipeline holding the example's build line runs once untimed (builds and pushes the
image); each timed round reruns it with the same commit and reads the build task's
duration (state Cached) from the Prefect API. The baseline is what the shell pipeline
does on every run: `docker build --no-cache` and `docker push` of the same image.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from cases.full_deploy import copy_example, touch_source
from cases.harness import Row, Settings, ratio_at_most, run, shipline_run, task_seconds

BUILD_LINE = (
    "okteto build -t okteto.dev/pr12er-server:${OKTETO_GIT_COMMIT} "
    "-f ./server/deploy/Dockerfile server"
)


def measure(settings: Settings, env: dict[str, str]) -> list[Row]:
    """Alternate a cached shipline build step with a full docker CLI build and push."""
    rounds = settings.rounds if settings.quick else min(settings.rounds, 3)
    ours: list[float] = []
    theirs: list[float] = []
    states: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        example = copy_example(Path(tmp))
        commit = touch_source(example)  # content no earlier run has built
        pipeline = example / "build-only.yaml"
        pipeline.write_text(f"deploy:\n  - {BUILD_LINE}\n")
        shipline_run(pipeline, env, commit=commit)  # untimed: the first build and push
        image = f"{env['SHIPLINE_REGISTRY']}/pr12er-server:baseline-{uuid.uuid4().hex[:8]}"
        for _ in range(rounds):
            rerun = shipline_run(pipeline, env, commit=commit)
            seconds, state = task_seconds(env, rerun.flow_run_id(), "build")
            ours.append(seconds)
            states.add(state)
            started = run(
                [
                    "docker",
                    "build",
                    "--no-cache",
                    "-q",
                    "-t",
                    image,
                    "-f",
                    "server/deploy/Dockerfile",
                    "server",
                ],
                env,
                cwd=example,
            ).seconds
            theirs.append(started + run(["docker", "push", image], env).seconds)
    return [
        Row(
            "3 rerun unchanged commit: build step vs full build + push",
            "s",
            ours,
            theirs,
            ratio_at_most(0.02, "ratio <= 0.02"),
            note=f"build task state(s): {', '.join(sorted(states))}; baseline docker CLI "
            "build --no-cache + push",
            checks={"build task Cached": states == {"Cached"}},
        )
    ]
