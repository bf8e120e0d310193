"""Run flows in one process and print their wall times as JSON (cases 5 and 7).

    python flow_driver.py shipline N NAMESPACE   # the deploy flow of N `true` lines
    python flow_driver.py bare N                 # a bare Prefect flow of N no-op tasks

Each mode runs a warm-up flow (1 step, untimed), then a 1-step flow and an N-step flow,
all chained (each step waits for the one before), and prints {"one": s, "many": s}.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path


def _shipline(steps: int, namespace: str) -> float:
    from shipline.run_cli import run_deploy

    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Path(tmp) / "okteto-pipeline.yaml"
        pipeline.write_text("deploy:\n" + '  - "true"\n' * steps)
        started = time.monotonic()
        run_deploy({"pipeline": str(pipeline), "commit": "overhead", "namespace": namespace})
        return time.monotonic() - started


def _bare_flow():
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    @task
    def noop(index: int) -> int:
        return index

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=16))
    def bare(steps: int) -> None:
        previous = None
        for index in range(steps):
            previous = noop.submit(index, wait_for=[previous] if previous else [])
        if previous is not None:
            previous.result()

    return bare


def main() -> None:
    mode, steps = sys.argv[1], int(sys.argv[2])
    if mode == "shipline":
        namespace = sys.argv[3]

        def timed(n: int) -> float:
            return _shipline(n, namespace)
    else:
        bare = _bare_flow()

        def timed(n: int) -> float:
            started = time.monotonic()
            bare(n)
            return time.monotonic() - started

    timed(1)
    one = timed(1)
    many = timed(steps)
    print(json.dumps({"one": one, "many": many}))


if __name__ == "__main__":
    main()
