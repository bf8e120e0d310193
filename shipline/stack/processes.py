"""Start and stop the stack's daemons with pid files; find who holds a port.

`down` stops only what `up` started: a daemon counts as ours only while its pid file
names a live process whose executable is the one we started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shipline.stack.layout import StackLayout
from tasks.errors import StackError

LOG_TAIL_LINES = 25


@dataclass(frozen=True)
class Daemon:
    """One long-running process of the stack and how to tell it is ready."""

    name: str
    argv: Sequence[str]
    ready: Callable[[], bool]
    ports: tuple[int, ...] = ()
    # Added to the environment of the `up` process.
    env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout: float = 120.0
    # Run as this system user (and its group) instead of root: PostgreSQL refuses root.
    user: str | None = None


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file, for error messages."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _alive(pid: int) -> bool:
    """A live, non-zombie process with this pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # Field 3 is the state; the command name in field 2 may contain spaces, so split after ')'.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _exe_name(pid: int) -> str:
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return ""


def running_pid(layout: StackLayout, name: str) -> int | None:
    """The pid of component `name` if `up` started it and it still runs."""
    pid_file = layout.pid_file(name)
    try:
        pid_text, _, exe = pid_file.read_text().partition("\n")
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        return None
    if _alive(pid) and (not exe.strip() or _exe_name(pid) == exe.strip()):
        return pid
    return None


def port_holder(port: int) -> str | None:
    """Who listens on `port`, as 'name (pid N)'; None when the port is free."""
    try:
        out = subprocess.run(
            ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    if not out.strip():
        return None
    # users:(("dockerd",pid=123,fd=4))
    if 'users:(("' in out:
        users = out.split('users:(("', 1)[1]
        proc_name, _, rest = users.partition('"')
        pid = rest.split("pid=", 1)[1].split(",", 1)[0] if "pid=" in rest else "?"
        return f"{proc_name} (pid {pid})"
    return "an unknown process"


def start(layout: StackLayout, daemon: Daemon) -> int:
    """Start `daemon`, write its pid file, wait until it is ready.

    Raises StackError naming the port and its holder when a port is taken, or naming the
    component and the tail of its log when it dies or never becomes ready (it is stopped
    then, so nothing half-started stays behind).
    """
    for port in daemon.ports:
        holder = port_holder(port)
        if holder:
            raise StackError(
                f"cannot start {daemon.name}: port {port} is already in use by {holder}; "
                f"stop that process or free the port, then run `shipline stack up` again"
            )
    log_path = layout.log_file(daemon.name)
    env = {**os.environ, **daemon.env}
    with log_path.open("ab") as log:
        log.write(f"\n--- shipline: starting {daemon.name} at {time.ctime()}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(daemon.argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            user=daemon.user,
            group=_group_of(daemon.user),
            extra_groups=[] if daemon.user else None,
        )
    layout.pid_file(daemon.name).write_text(f"{proc.pid}\n{_exe_name(proc.pid)}\n")
    deadline = time.monotonic() + daemon.ready_timeout
    while True:
        code = proc.poll()
        if code is not None:
            layout.pid_file(daemon.name).unlink(missing_ok=True)
            raise StackError(
                f"{daemon.name} exited with code {code} while starting; "
                f"last lines of {log_path}:\n{log_tail(log_path)}"
            )
        if _safe_ready(daemon.ready):
            return proc.pid
        if time.monotonic() > deadline:
            stop(layout, daemon.name)
            raise StackError(
                f"{daemon.name} did not become ready within {daemon.ready_timeout:.0f} s; "
                f"last lines of {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(0.25)


def _group_of(user: str | None) -> int | None:
    """The primary group of `user`, None for none."""
    if user is None:
        return None
    import pwd

    return pwd.getpwnam(user).pw_gid


def _safe_ready(probe: Callable[[], bool]) -> bool:
    try:
        return probe()
    except Exception:
        return False


def stop(layout: StackLayout, name: str, timeout: float = 10.0) -> bool:
    """Stop component `name` if `up` started it: SIGTERM its process group, then SIGKILL.

    Returns whether a process was stopped. The pid file goes either way.
    """
    pid = running_pid(layout, name)
    layout.pid_file(name).unlink(missing_ok=True)
    if pid is None:
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if _alive(pid):
        _signal_group(pid, signal.SIGKILL)
        while _alive(pid) and time.monotonic() < deadline + 5:
            _reap(pid)
            time.sleep(0.05)
    # Children that outlived the leader (e.g. uvicorn under `prefect server start`).
    _signal_group(pid, signal.SIGKILL)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


class Launch:
    """The daemons one `up` started, so a failure can stop exactly those."""

    def __init__(self, layout: StackLayout, report: Callable[[str], None]) -> None:
        self.layout = layout
        self.report = report
        self.started: list[str] = []

    def ensure(self, daemon: Daemon) -> None:
        """Start `daemon` unless `up` already started it and it still runs."""
        if running_pid(self.layout, daemon.name):
            self.report(f"[dim]· {daemon.name} already running[/dim]")
            return
        t0 = time.monotonic()
        start(self.layout, daemon)
        self.started.append(daemon.name)
        self.report(f"[green]✓[/green] {daemon.name} ready in {time.monotonic() - t0:.1f} s")

    def undo(self) -> None:
        """Stop what this launch started, newest first."""
        for name in reversed(self.started):
            stop(self.layout, name)
        self.started.clear()
