"""`up` and `down` of the real stack: port conflicts, external clusters, no leftovers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from shipline.stack import processes
from shipline.stack.layout import StackLayout
from shipline.stack.lifecycle import COMPONENTS, StackState

pytestmark = pytest.mark.integration


def _env_without_stack(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KUBECONFIG", "SHIPLINE_REGISTRY", "PREFECT_API_URL")
    }
    env.update(extra)
    return env


def _shipline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["shipline", *args], capture_output=True, text=True, env=env, timeout=600)


def test_port_taken_by_another_process_is_named_and_nothing_starts(stack, tmp_path: Path) -> None:
    # A second stack on this machine finds the registry port held by the first one.
    env = _env_without_stack(SHIPLINE_STACK_DIR=str(tmp_path / "other"))
    out = _shipline("stack", "up", env=env)
    assert out.returncode == 1
    assert "port 5000 is already in use by docker-registry (pid" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    run_dir = tmp_path / "other" / "run"
    assert not list(run_dir.glob("*.pid")), "nothing half-started may stay behind"


def test_up_uses_a_reachable_external_cluster_and_starts_nothing(stack, tmp_path: Path) -> None:
    stack_dir = tmp_path / "external"
    env = _env_without_stack(
        SHIPLINE_STACK_DIR=str(stack_dir),
        KUBECONFIG=stack.kubeconfig,
        SHIPLINE_REGISTRY=stack.registry,
    )
    out = _shipline("stack", "up", env=env)
    assert out.returncode == 0, out.stderr
    assert "nothing started" in out.stderr
    assert not list((stack_dir / "run").glob("*.pid"))
    printed = _shipline("stack", "env", env=env).stdout.splitlines()
    assert f"export KUBECONFIG={stack.kubeconfig}" in printed
    assert f"export SHIPLINE_REGISTRY={stack.registry}" in printed


def _descendants_of(pids: set[int]) -> set[int]:
    """Every process whose ancestry reaches one of `pids`."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found = set(pids)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parent.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found & set(parent)


@pytest.mark.serial
def test_down_leaves_no_process_up_started_then_up_restores(stack) -> None:
    layout = StackLayout.from_env()
    ours = {pid for name in COMPONENTS if (pid := processes.running_pid(layout, name))}
    assert ours, "the stack's own components should be running"
    tree = _descendants_of(ours)
    shims = {
        int(p.parent.name)
        for p in Path("/proc").glob("[0-9]*/comm")
        if p.read_text().startswith("containerd-shim")
    }
    env = os.environ.copy()
    out = _shipline("stack", "down", env=env)
    assert out.returncode == 0, out.stderr
    alive = {pid for pid in tree | shims if processes._alive(pid)}
    assert not alive, f"processes left running after down: {sorted(alive)}"
    assert all(processes.running_pid(layout, name) is None for name in COMPONENTS)
    # Data and caches stay: the next `up` is warm and the cluster keeps its objects.
    assert (layout.data / "etcd").is_dir()
    out = _shipline("stack", "up", env=env)
    assert out.returncode == 0, out.stderr
    assert StackState.load(layout) == stack
    ready = subprocess.run(
        [
            "kubectl",
            "get",
            "node",
            "localhost",
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        ],
        capture_output=True,
        text=True,
    )
    assert ready.stdout == "True"
