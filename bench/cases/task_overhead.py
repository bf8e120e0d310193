"""Case 5: orchestration overhead per task, shipline vs a bare Prefect flow.

Both run in a fresh process against the stack's Prefect server (flow_driver.py): a
warm-up flow, then an N-step flow whose steps are chained. Per-task overhead is the span
from the first task run's start to the last one's end, over N, which leaves out the
flow's fixed cost. shipline's steps are `true` shell lines (each spawns bash); the bare
flow's tasks return their argument.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cases.harness import Row, Settings, namespace, ratio_at_most, run

DRIVER = Path(__file__).with_name("flow_driver.py")


def _per_task_ms(argv: list[str], env: dict[str, str]) -> float:
    out = run([sys.executable, str(DRIVER), *argv], env).stdout
    found = json.loads(out.strip().splitlines()[-1])
    return found["span"] / found["steps"] * 1000


def measure(settings: Settings, env: dict[str, str]) -> list[Row]:
    """Alternate the two drivers; per-task milliseconds."""
    steps = 10 if settings.quick else 40
    rounds = settings.rounds if settings.quick else min(settings.rounds, 3)
    ours: list[float] = []
    theirs: list[float] = []
    with namespace("overhead", env) as ns:
        for _ in range(rounds):
            ours.append(_per_task_ms(["shipline", str(steps), ns], env))
            theirs.append(_per_task_ms(["bare", str(steps)], env))
    return [
        Row(
            f"5 overhead per task ({steps} chained steps)",
            "ms",
            ours,
            theirs,
            ratio_at_most(1.2),
            note="first task start to last task end, over N (server records); shipline runs `true`",
        )
    ]
