"""What every case shares: the stack's environment, timed processes, namespaces, rows.

A case measures shipline and its baseline alternately (round 1 shipline, round 1
baseline, round 2 ...) so drift on a noisy machine hits both sides alike, and returns
`Row`s: the numbers, the target, and whether it was met.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "pr12er"
EXAMPLE_VARS = {
    "GRAFANA_REMOTE_WRITE_URL": "http://127.0.0.1:9009/api/prom/push",
    "GRAFANA_USERNAME": "bench",
    "GRAFANA_API_KEY": "bench-key",
}
_FLOW_RUN = re.compile(r"/runs/flow-run/([0-9a-f-]{36})")


@dataclass(frozen=True)
class Settings:
    """How big and how often: --quick runs every case once with small sizes."""

    quick: bool
    rounds: int


@dataclass(frozen=True)
class Target:
    """A target as text and the test of (shipline median, ratio) that says it is met."""

    text: str
    met: Callable[[float, float | None], bool]


def ratio_at_most(limit: float, text: str | None = None) -> Target:
    """shipline / baseline <= limit."""
    return Target(text or f"ratio <= {limit:g}", lambda _m, r: r is not None and 0 < r <= limit)


def faster_by(factor: float) -> Target:
    """baseline / shipline >= factor, i.e. ratio <= 1 / factor."""
    return ratio_at_most(1 / factor, f">= {factor:g}x faster (ratio <= {1 / factor:.3g})")


def at_most(limit: float, unit: str) -> Target:
    """The shipline median <= limit."""
    return Target(f"<= {limit:g} {unit}", lambda m, _r: m <= limit)


def at_least(limit: float, unit: str) -> Target:
    """The shipline median >= limit."""
    return Target(f">= {limit:g} {unit}", lambda m, _r: m >= limit)


REPORT_ONLY = Target("report only", lambda _m, _r: True)


@dataclass
class Row:
    """One line of the table and one entry of the JSON's `cases`."""

    name: str
    unit: str
    shipline: list[float]
    baseline: list[float] | None
    target: Target
    note: str = ""
    checks: dict[str, bool] = field(default_factory=dict)  # extra conditions for `met`

    @property
    def ratio(self) -> float | None:
        if not self.baseline or not self.shipline:
            return None
        base = statistics.median(self.baseline)
        return statistics.median(self.shipline) / base if base else None

    @property
    def met(self) -> bool:
        if not self.shipline:
            return False
        return self.target.met(statistics.median(self.shipline), self.ratio) and all(
            self.checks.values()
        )

    def as_json(self) -> dict:
        """The issue's JSON shape (plus `rounds` and `note`)."""
        return {
            "name": self.name,
            "unit": self.unit,
            "shipline": _stats(self.shipline),
            "baseline": _stats(self.baseline) if self.baseline else None,
            "ratio": self.ratio,
            "target": self.target.text,
            "met": self.met,
            "rounds": len(self.shipline),
            "note": self.note,
        }


def _stats(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def stack_env() -> dict[str, str]:
    """This process's environment plus the stack's (`shipline stack env`)."""
    out = subprocess.run(
        ["shipline", "stack", "env"], check=True, capture_output=True, text=True
    ).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            env[name] = value.strip("'\"")
    if not env.get("PREFECT_API_URL"):
        sys.exit("the stack has no Prefect server: run `shipline stack up` first")
    return env


@dataclass
class Timed:
    """A finished process: wall seconds, exit code, output, peak RSS of its tree."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak_mib: float

    def flow_run_id(self) -> str:
        """The flow run `shipline run` printed, or fail naming the command's output."""
        found = _FLOW_RUN.findall(self.stderr + self.stdout)
        if not found:
            raise RuntimeError(f"no flow run id in the output:\n{self.stderr[-2000:]}")
        return found[-1]


def run(
    argv: Sequence[str],
    env: dict[str, str],
    *,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float = 600,
    watch_memory: bool = False,
) -> Timed:
    """Run a process to its end, timed; with `watch_memory`, poll its tree's RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err)
        peak = [0]
        stop = threading.Event()
        poller = None
        if watch_memory:
            poller = threading.Thread(target=_poll_rss, args=(proc.pid, peak, stop), daemon=True)
            poller.start()
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        seconds = time.monotonic() - started
        stop.set()
        if poller is not None:
            poller.join()
        out.seek(0)
        err.seek(0)
        result = Timed(
            seconds,
            returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            peak[0] / 1024,
        )
    if check and returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {returncode}:\n{result.stderr[-3000:]}{result.stdout[-1000:]}"
        )
    return result


def _poll_rss(pid: int, peak: list[int], stop: threading.Event) -> None:
    """Sum VmRSS (KiB) over `pid` and its descendants every 20 ms; keep the largest."""
    while not stop.is_set():
        total = 0
        for child in [pid, *_descendants(pid)]:
            total += _rss_kib(child)
        # The main process's own high-water mark catches peaks between two samples.
        peak[0] = max(peak[0], total, _hwm_kib(pid))
        stop.wait(0.02)


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found += [child, *_descendants(child)]
    return found


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _rss_kib(pid: int) -> int:
    return _status_kib(pid, "VmRSS:")


def _hwm_kib(pid: int) -> int:
    return _status_kib(pid, "VmHWM:")


def kubectl(*args: str, env: dict[str, str], check: bool = True, timeout: float = 120) -> str:
    """Run kubectl; its stdout."""
    done = subprocess.run(
        ["kubectl", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def namespace(prefix: str, env: dict[str, str]) -> Iterator[str]:
    """A fresh namespace, deleted afterwards (with its deploy lock on the Prefect server)."""
    name = f"bench-{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name, env=env)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", env=env, check=False)
        _delete_deploy_lock(name, env)


def _delete_deploy_lock(name: str, env: dict[str, str]) -> None:
    """Remove the global concurrency limit a shipline run made for the namespace."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.exceptions import ObjectNotFound

    with SyncPrefectClient(env["PREFECT_API_URL"]) as client, suppress(ObjectNotFound):
        client.delete_global_concurrency_limit_by_name(f"shipline-deploy-{name}")


def task_runs(env: dict[str, str], flow_run_id: str) -> list:
    """The task runs of a flow run, read from the Prefect API."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)]))
        )


def task_seconds(env: dict[str, str], flow_run_id: str, name_prefix: str) -> tuple[float, str]:
    """Duration (end - start, from the server) and state name of the run's one task."""
    runs = [r for r in task_runs(env, flow_run_id) if r.name.startswith(name_prefix)]
    if len(runs) != 1:
        raise RuntimeError(f"flow run {flow_run_id}: expected one {name_prefix} task run")
    task = runs[0]
    start = task.start_time or task.expected_start_time
    end = task.end_time
    if start is None or end is None:
        raise RuntimeError(f"task run {task.id} ({task.name}) has no start or end time")
    return (end - start).total_seconds(), task.state_name or ""


def shipline_run(
    pipeline: Path,
    env: dict[str, str],
    *,
    commit: str,
    namespace: str | None = None,
    extra: Sequence[str] = (),
    check: bool = True,
    watch_memory: bool = False,
    timeout: float = 600,
) -> Timed:
    """`shipline run PIPELINE --commit C [-n NS] EXTRA...`, timed."""
    argv = ["shipline", "run", str(pipeline), "--commit", commit]
    if namespace:
        argv += ["--namespace", namespace]
    return run([*argv, *extra], env, check=check, watch_memory=watch_memory, timeout=timeout)


def example_vars() -> list[str]:
    """The example's variables as `--var NAME=VALUE` options."""
    return [arg for name, value in EXAMPLE_VARS.items() for arg in ("--var", f"{name}={value}")]


def write_pipeline(folder: Path, lines: Sequence[str]) -> Path:
    """An okteto-pipeline.yaml with these deploy lines (each quoted as a YAML string)."""
    import json

    path = folder / "okteto-pipeline.yaml"
    path.write_text("deploy:\n" + "".join(f"  - {json.dumps(line)}\n" for line in lines))
    return path
