"""Case 7: peak memory of the whole process tree.

`shipline run` of the example (a full deploy with a changed source each round) vs a bare
Prefect flow process (flow_driver.py: a flow of a few no-op tasks against the same
server). RSS of the process and its children is polled every 20 ms from /proc; the
main process's VmHWM catches peaks between two polls.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cases.full_deploy import ROLLOUT_TIMEOUT, copy_example, touch_source
from cases.harness import (
    Row,
    Settings,
    example_vars,
    namespace,
    ratio_at_most,
    run,
    shipline_run,
)

DRIVER = Path(__file__).with_name("flow_driver.py")


def measure(settings: Settings, env: dict[str, str]) -> list[Row]:
    """Alternate the two processes; peak MiB."""
    rounds = settings.rounds if settings.quick else min(settings.rounds, 3)
    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, namespace("memory", env) as ns:
        example = copy_example(Path(tmp))
        for _ in range(rounds):
            deployed = shipline_run(
                example / "okteto-pipeline.yaml",
                env,
                commit=touch_source(example),
                namespace=ns,
                extra=[*example_vars(), "--timeout", str(ROLLOUT_TIMEOUT)],
                watch_memory=True,
            )
            ours.append(deployed.peak_mib)
            bare = run([sys.executable, str(DRIVER), "bare", "5"], env, watch_memory=True)
            theirs.append(bare.peak_mib)
    return [
        Row(
            "7 peak memory: shipline run of the example vs bare Prefect flow",
            "MiB",
            ours,
            theirs,
            ratio_at_most(1.5),
            note="RSS of the process tree, polled every 20 ms",
        )
    ]
