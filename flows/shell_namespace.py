"""Shell lines act in the run's namespace, as ``okteto deploy`` makes its commands do.

A shell line's ``kubectl get pods`` uses the kubeconfig's current context; with a run
namespace given (``-n``), that context gets the namespace from an overlay listed before
the user's kubeconfig files (see :func:`flows.kube_context.namespace_overlay`). Like
okteto, shell lines then get one file in ``KUBECONFIG`` (tools such as ``helm
--kubeconfig "$KUBECONFIG"`` take one path): the merge, flattened by kubectl itself
(``kubectl config view --flatten --raw``), in a private folder that lives for the run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from flows.kube_context import namespace_overlay

__all__ = ["shell_kube_env"]

_PREFIX = "shipline-kube-"  # then the pid of the run's process


@contextlib.contextmanager
def shell_kube_env(namespace: str | None, environ: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """The variables that point shell lines at ``namespace`` and the run's kubeconfig.

    Shell lines run in the pipeline's folder: a relative ``KUBECONFIG`` is made absolute.
    """
    overlay = namespace_overlay(namespace, environ) if namespace else None
    if overlay is None:
        listed = environ.get("KUBECONFIG", "")
        absolute = os.pathsep.join(os.path.abspath(p) if p else p for p in listed.split(os.pathsep))
        yield {"KUBECONFIG": absolute} if listed and absolute != listed else {}
        return
    text, files = overlay
    _remove_orphans()
    # mkdtemp makes the folder 0700: the flattened file holds the user's credentials.
    with tempfile.TemporaryDirectory(prefix=f"{_PREFIX}{os.getpid()}-") as folder:
        path = Path(folder, "namespace.kubeconfig")
        path.write_text(text, encoding="utf-8")
        merged = f"{path}{os.pathsep}{files}"
        flat = _flattened(merged, environ)
        if flat is None:  # no kubectl to flatten: the list works for kubectl and client-go
            yield {"KUBECONFIG": merged}
            return
        single = Path(folder, "kubeconfig")
        single.write_text(flat, encoding="utf-8")
        single.chmod(0o600)
        yield {"KUBECONFIG": str(single)}


def _remove_orphans() -> None:
    """Delete this user's folders of runs that were killed (SIGKILL skips the clean-up)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = folder.name[len(_PREFIX) :].split("-", 1)[0]
        with contextlib.suppress(OSError):
            if pid.isdigit() and folder.stat().st_uid == os.getuid() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        return True
    return True


def _flattened(kubeconfig: str, environ: Mapping[str, str]) -> str | None:
    """The merged kubeconfig as one self-contained file (files inlined), or ``None``."""
    try:
        done = subprocess.run(
            ["kubectl", "config", "view", "--flatten", "--raw"],
            env={**environ, "KUBECONFIG": kubeconfig},
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 and done.stdout.strip() else None
