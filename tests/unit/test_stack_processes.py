"""Starting and stopping daemons with pid files (real processes, no stack needed)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipline.stack import processes
from shipline.stack.layout import StackLayout
from shipline.stack.lifecycle import require_root
from tasks.errors import StackError


@pytest.fixture
def layout(tmp_path: Path) -> StackLayout:
    layout = StackLayout(root=tmp_path / "stack", cache=tmp_path / "cache")
    layout.ensure()
    return layout


@pytest.fixture
def busy_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def _sleeper(name: str, ready: bool = True) -> processes.Daemon:
    return processes.Daemon(
        name=name, argv=["sleep", "300"], ready=lambda: ready, ready_timeout=1.0
    )


def test_started_daemon_has_a_pid_file_and_stops(layout: StackLayout) -> None:
    pid = processes.start(layout, _sleeper("nap"))
    assert processes.running_pid(layout, "nap") == pid
    assert processes.stop(layout, "nap") is True
    assert processes.running_pid(layout, "nap") is None
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert processes.stop(layout, "nap") is False  # nothing of ours runs any more


def test_port_taken_names_port_and_holder(layout: StackLayout, busy_port: int) -> None:
    daemon = processes.Daemon(
        name="web", argv=["sleep", "300"], ready=lambda: True, ports=(busy_port,)
    )
    with pytest.raises(StackError) as caught:
        processes.start(layout, daemon)
    message = str(caught.value)
    assert f"port {busy_port} is already in use" in message
    assert f"pid {__import__('os').getpid()}" in message  # this test process holds it
    assert processes.running_pid(layout, "web") is None


def test_component_dying_names_it_and_its_log_tail(layout: StackLayout) -> None:
    daemon = processes.Daemon(
        name="crashy",
        argv=[sys.executable, "-c", "import sys; print('bad flag --frobnicate'); sys.exit(3)"],
        ready=lambda: False,
    )
    with pytest.raises(StackError) as caught:
        processes.start(layout, daemon)
    message = str(caught.value)
    assert "crashy exited with code 3" in message
    assert "bad flag --frobnicate" in message
    assert str(layout.log_file("crashy")) in message


def test_never_ready_is_stopped_and_reported(layout: StackLayout) -> None:
    with pytest.raises(StackError, match="slow did not become ready within 1 s"):
        processes.start(layout, _sleeper("slow", ready=False))
    assert processes.running_pid(layout, "slow") is None


def test_failed_launch_stops_what_it_started(layout: StackLayout, busy_port: int) -> None:
    launch = processes.Launch(layout, report=lambda _: None)
    launch.ensure(_sleeper("first"))
    first = processes.running_pid(layout, "first")
    assert first
    with pytest.raises(StackError):
        launch.ensure(
            processes.Daemon(
                name="second", argv=["sleep", "1"], ready=lambda: True, ports=(busy_port,)
            )
        )
    launch.undo()
    assert processes.running_pid(layout, "first") is None


def test_launch_leaves_running_daemons_alone(layout: StackLayout) -> None:
    processes.start(layout, _sleeper("kept"))
    pid = processes.running_pid(layout, "kept")
    launch = processes.Launch(layout, report=lambda _: None)
    launch.ensure(_sleeper("kept"))
    launch.undo()  # it did not start `kept`, so it does not stop it
    assert processes.running_pid(layout, "kept") == pid
    processes.stop(layout, "kept")


def test_pid_file_of_a_foreign_process_is_not_ours(layout: StackLayout) -> None:
    # A stale pid file that now names another program (pid reuse) does not count.
    pid = processes.start(layout, _sleeper("reused"))
    exe_line = layout.pid_file("reused").read_text().splitlines()[1]
    layout.pid_file("reused").write_text(f"{pid}\nnot-{exe_line}\n")
    assert processes.running_pid(layout, "reused") is None
    layout.pid_file("reused").write_text(f"{pid}\n{exe_line}\n")
    processes.stop(layout, "reused")


def test_not_root_says_what_is_needed() -> None:
    with pytest.raises(StackError, match="needs root") as caught:
        require_root(1000)
    assert "KUBECONFIG and SHIPLINE_REGISTRY" in str(caught.value)
    require_root(0)
