"""Shell lines act in the run's namespace, as ``okteto deploy`` makes its commands do.

A shell line's ``kubectl get pods`` uses the kubeconfig's current context; with a run
namespace given (``-n``), that context gets the namespace through an overlay file listed
first in ``KUBECONFIG`` (see :func:`flows.kube_context.namespace_overlay`). The file
lives for the run only and holds no credentials.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from flows.kube_context import namespace_overlay

__all__ = ["shell_kube_env"]


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
    with tempfile.TemporaryDirectory(prefix="shipline-kube-") as folder:
        path = Path(folder, "namespace.kubeconfig")
        path.write_text(text, encoding="utf-8")
        yield {"KUBECONFIG": f"{path}{os.pathsep}{files}"}
