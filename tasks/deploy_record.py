"""Which commit each workload runs, recorded in its metadata annotations.

The annotations sit on the workload's own metadata, not its pod template, so writing them
starts no rollout and leaves metadata.generation alone. The stamp is the arrival order a
trigger gave the run: a run that finds a newer stamp recorded must not roll back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tasks.kube import Cluster, api_call

COMMIT_ANNOTATION = "shipline.dev/commit"
STAMP_ANNOTATION = "shipline.dev/stamp"


@dataclass(frozen=True)
class Workload:
    """A workload a run deploys."""

    kind: str
    name: str
    namespace: str

    @property
    def target(self) -> str:
        """`deployment/server`."""
        return f"{self.kind.lower()}/{self.name}"


@dataclass(frozen=True)
class DeployRecord:
    """What a workload says was last deployed to it."""

    workload: Workload
    commit: str
    stamp: int | None


def read_records(cluster: Cluster, workloads: Iterable[Workload]) -> list[DeployRecord]:
    """The recorded commit and stamp of each existing workload (missing ones are skipped)."""
    records = []
    for workload in workloads:
        obj = cluster.get("apps/v1", workload.kind, workload.name, workload.namespace)
        if obj is None:
            continue
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        stamp = annotations.get(STAMP_ANNOTATION)
        records.append(
            DeployRecord(
                workload,
                annotations.get(COMMIT_ANNOTATION, ""),
                int(stamp) if stamp and stamp.isdigit() else None,
            )
        )
    return records


def newer_than(records: Iterable[DeployRecord], stamp: int | None) -> DeployRecord | None:
    """The record with the newest stamp above `stamp`, if any (pure)."""
    if stamp is None:
        return None
    newer = [r for r in records if r.stamp is not None and r.stamp > stamp]
    return max(newer, key=lambda r: r.stamp or 0) if newer else None


def write_records(
    cluster: Cluster, workloads: Iterable[Workload], commit: str, stamp: int | None
) -> None:
    """Record `commit` (and `stamp`) on each workload's metadata (a merge patch)."""
    annotations = {COMMIT_ANNOTATION: commit}
    if stamp is not None:
        annotations[STAMP_ANNOTATION] = str(stamp)
    for workload in workloads:
        resource = cluster.resource("apps/v1", workload.kind)
        with api_call(f"recording the deployed commit on {workload.target}"):
            resource.patch(
                name=workload.name,
                namespace=workload.namespace,
                body={"metadata": {"annotations": annotations}},
                content_type="application/merge-patch+json",
            )
