"""Run flows in one process and print what their steps cost as JSON (cases 5 and 7).

    python flow_driver.py shipline N NAMESPACE   # the deploy flow of N `true` lines
    python flow_driver.py bare N                 # a bare Prefect flow of N no-op tasks

Each mode runs a warm-up flow (1 step, untimed), then an N-step flow whose steps are
chained (each waits for the one before), and prints {"span": s, "steps": N}: from the
first task run's start to the last one's end, as the Prefect server recorded them. The
flow's own start and end stay out of it: the end holds a join on Prefect's heartbeat
thread that takes anywhere from 0 to 1 s, which would drown a per-task difference.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx


def _shipline(steps: int, namespace: str) -> str:
    from shipline.run_cli import run_deploy

    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Path(tmp) / "okteto-pipeline.yaml"
        pipeline.write_text("deploy:\n" + '  - "true"\n' * steps)
        flow_run_id, _ = run_deploy(
            {"pipeline": str(pipeline), "commit": "overhead", "namespace": namespace}
        )
        assert flow_run_id is not None
        return flow_run_id


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

    def run(steps: int) -> str:
        state = bare(steps, return_state=True)
        return str(state.state_details.flow_run_id)

    return run


def _task_span(flow_run_id: str, steps: int, wait: float = 60.0) -> float:
    """Seconds from the first task run's start to the last one's end (server records)."""
    api = os.environ["PREFECT_API_URL"]
    deadline = time.monotonic() + wait
    while True:
        runs = httpx.post(
            f"{api}/task_runs/filter",
            json={"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": steps + 10},
            timeout=30,
        ).json()
        done = [r for r in runs if r["start_time"] and r["end_time"]]
        if len(done) >= steps:
            starts = [datetime.fromisoformat(r["start_time"]) for r in done]
            ends = [datetime.fromisoformat(r["end_time"]) for r in done]
            return (max(ends) - min(starts)).total_seconds()
        # Task runs reach the server as events; their records follow a little later.
        if time.monotonic() > deadline:
            raise RuntimeError(f"flow run {flow_run_id}: {len(done)} of {steps} task runs recorded")
        time.sleep(0.5)


def main() -> None:
    mode, steps = sys.argv[1], int(sys.argv[2])
    if mode == "shipline":
        namespace = sys.argv[3]

        def run(n: int) -> str:
            return _shipline(n, namespace)
    else:
        run = _bare_flow()
    run(1)  # warm-up
    flow_run_id = run(steps)
    print(json.dumps({"span": _task_span(flow_run_id, steps), "steps": steps}))


if __name__ == "__main__":
    main()
