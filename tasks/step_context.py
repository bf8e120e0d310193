"""What every task of one deploy run shares: where the cluster is, the variables, the masks.

Plain data built once by the flow and handed to each task. Values of variables are kept
out of ``repr`` so a logged or raised context never shows them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from tasks.kube import Cluster
from tasks.redact import Redactor


@dataclass(frozen=True)
class StepContext:
    """The run's settings every step needs."""

    pipeline: str
    workdir: str
    namespace: str
    kubeconfig: str | None = None
    kube_context: str | None = None  # a kubectl line's --context; None: the current one
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    strict: bool = False
    timeout: float | None = None
    redactor: Redactor = field(default_factory=Redactor, repr=False)

    def where(self, line: int) -> str:
        """``FILE:LINE`` of a pipeline line, for messages."""
        return f"{self.pipeline}:{line}"


_clusters: dict[tuple[str | None, str | None], Cluster] = {}
_clusters_lock = threading.Lock()


def cluster_for(context: StepContext) -> Cluster:
    """One connection per kubeconfig and context per process: discovery is paid once."""
    key = (context.kubeconfig, context.kube_context)
    with _clusters_lock:
        cluster = _clusters.get(key)
        if cluster is None:
            cluster = _clusters[key] = Cluster.connect(*key)
        return cluster
