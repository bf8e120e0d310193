"""Install what the stack needs from Debian's packages (only what is missing)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable

from rich.console import Console

from tasks.errors import StackError

_updated = False


def installed(name: str) -> bool:
    """Whether Debian package `name` is installed."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
    # A removed or purged package reports "deinstall ok config-files" / "unknown ok
    # not-installed": only this exact status means installed.
    return out.returncode == 0 and out.stdout == "install ok installed"


def _apt_env() -> dict[str, str]:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def apt_update(force: bool = False) -> None:
    """`apt-get update`, once per process unless forced (after adding a source)."""
    global _updated
    if _updated and not force:
        return
    proc = subprocess.run(
        ["apt-get", "update", "-q"], capture_output=True, text=True, env=_apt_env()
    )
    if proc.returncode != 0:
        raise StackError(f"apt-get update failed:\n{proc.stderr[-2000:]}")
    _updated = True


def ensure(names: Iterable[str], console: Console) -> None:
    """Install the missing packages among `names`; needs root."""
    missing = [name for name in names if not installed(name)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise StackError(
            f"the local stack needs Debian packages {', '.join(missing)}; run "
            "`shipline stack up` as root, or point KUBECONFIG and SHIPLINE_REGISTRY at a "
            "reachable cluster and registry"
        )
    with console.status(f"installing {' '.join(missing)} (apt-get)"):
        apt_update()
        proc = subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
            capture_output=True,
            text=True,
            env=_apt_env(),
        )
    if proc.returncode != 0:
        raise StackError(
            f"apt-get install {' '.join(missing)} failed:\n"
            f"{proc.stdout[-1500:]}{proc.stderr[-1500:]}"
        )
    console.print(f"[green]✓[/green] installed {' '.join(missing)}")
