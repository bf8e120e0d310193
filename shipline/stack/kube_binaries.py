"""The control-plane binaries and the pause binary, built once from Debian's sources.

Debian ships no kube-apiserver or kubelet, but its `kubernetes` source package (1.20.2,
vendored dependencies included) builds them with Go 1.19 through the project's `make`
(a plain `go build -mod=vendor` fails with Go 1.19). The result is cached outside the
repository keyed by the source version, so only the first `up` on a machine pays the
~7-10 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from rich.console import Console
from rich.status import Status

from shipline.stack import packages
from shipline.stack.layout import StackLayout
from tasks.errors import StackError

KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet")
PAUSE_BINARY = "pause"
# Debian 12's package; Debian 13's `kubernetes` has its vendored code stripped, so both
# build this one (docs/local-cluster.md).
SOURCE_VERSION = "1.20.5+really1.20.2-1.1+deb12u1"
KUBE_GIT_VERSION = "v1.20.2"
_DEB_SRC_FILE = Path("/etc/apt/sources.list.d/shipline-bookworm-src.sources")
_DEB_SRC = """\
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def binaries_dir(layout: StackLayout) -> Path:
    """Where the binaries of SOURCE_VERSION are (or will be) cached."""
    return layout.cache / "kubernetes" / SOURCE_VERSION


def cached(layout: StackLayout) -> bool:
    """Whether every binary is already in the cache."""
    folder = binaries_dir(layout)
    return all(os.access(folder / name, os.X_OK) for name in (*KUBE_BINARIES, PAUSE_BINARY))


def _go_bin() -> Path:
    for candidate in (Path("/usr/lib/go-1.19/bin"),):
        if (candidate / "go").exists():
            return candidate
    raise StackError(
        "Go 1.19 is needed to build Kubernetes 1.20 from source, but /usr/lib/go-1.19/bin/go "
        "is missing; install Debian's golang-1.19-go (or golang-go on Debian 12)"
    )


def _ensure_deb_src() -> None:
    """Make `apt-get source kubernetes=SOURCE_VERSION` resolvable (bookworm deb-src)."""
    shown = subprocess.run(
        ["apt-cache", "showsrc", f"kubernetes={SOURCE_VERSION}"],
        capture_output=True,
        text=True,
    )
    if f"Version: {SOURCE_VERSION}" in shown.stdout:
        return
    _DEB_SRC_FILE.write_text(_DEB_SRC)
    packages.apt_update(force=True)


def _run_logged(
    argv: list[str], cwd: Path, env: dict[str, str], log: Path, status: Status, phase: str
) -> None:
    """Run `argv`, appending its output to `log`; show elapsed time and the latest line."""
    started = time.monotonic()
    compiled = 0
    # Without a terminal (CI) the spinner draws nothing: print a line every 30 s instead.
    console = status.console
    next_line_at = 30.0
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert proc.stdout is not None
        for raw in proc.stdout:
            fh.write(raw)
            line = raw.decode("utf-8", "replace").strip()
            # With GOFLAGS=-v the go tool names every package it compiles: real progress.
            if line and not line.startswith(("+", "#")) and " " not in line:
                compiled += 1
            elapsed = int(time.monotonic() - started)
            progress = f"{phase} [{elapsed // 60}m{elapsed % 60:02d}s, {compiled} packages]"
            status.update(f"{progress} [dim]{line[:60]}[/dim]")
            if not console.is_terminal and elapsed >= next_line_at:
                console.print(progress)
                next_line_at += 30.0
        code = proc.wait()
    if code != 0:
        from shipline.stack.processes import log_tail

        raise StackError(f"{phase} failed (exit {code}); last lines of {log}:\n{log_tail(log)}")


def ensure_binaries(layout: StackLayout, console: Console) -> Path:
    """Return the folder holding the four control-plane binaries and `pause`; build if needed."""
    folder = binaries_dir(layout)
    if cached(layout):
        return folder
    packages.ensure(["dpkg-dev", "golang-1.19-go", "gcc", "libc6-dev", "rsync", "make"], console)
    _ensure_deb_src()
    work = layout.cache / "build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = layout.log_file("kubernetes-build")
    log.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PATH": f"{_go_bin()}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(layout.cache / "gohome"),
        "GOCACHE": str(layout.cache / "gocache"),
        "CGO_ENABLED": "0",
        "GOFLAGS": "-v",
        "KUBE_GIT_VERSION": KUBE_GIT_VERSION,
        "KUBE_GIT_TREE_STATE": "clean",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    started = time.monotonic()
    with console.status("Kubernetes: fetching Debian's source package") as status:
        _run_logged(
            ["apt-get", "source", "-q", f"kubernetes={SOURCE_VERSION}"],
            work,
            env,
            log,
            status,
            "fetching the kubernetes source package",
        )
        src = next(p for p in work.iterdir() if p.is_dir() and p.name.startswith("kubernetes-"))
        gopath = src / ".go"
        (gopath / "src" / "k8s.io").mkdir(parents=True, exist_ok=True)
        (gopath / "src" / "k8s.io" / "kubernetes").symlink_to("../../..")
        env["GOPATH"] = str(gopath)
        _run_logged(
            ["make", "WHAT=" + " ".join(f"cmd/{name}" for name in KUBE_BINARIES)],
            src,
            env,
            log,
            status,
            "building kube-apiserver, controller-manager, scheduler, kubelet",
        )
        status.update("building the pause binary")
        out = work / "out"
        out.mkdir()
        for name in KUBE_BINARIES:
            shutil.copy2(src / "_output" / "bin" / name, out / name)
        _run_logged(
            [
                "gcc",
                "-Os",
                "-Wall",
                "-static",
                "-DVERSION=v3.2-shipline",
                "-o",
                str(out / PAUSE_BINARY),
                str(src / "build/pause/linux/pause.c"),
            ],
            src,
            env,
            log,
            status,
            "compiling pause.c",
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    out.rename(folder)
    shutil.rmtree(work, ignore_errors=True)
    console.print(
        f"[green]✓[/green] built Kubernetes {KUBE_GIT_VERSION} from source in "
        f"{time.monotonic() - started:.0f} s, cached in {folder}"
    )
    return folder
