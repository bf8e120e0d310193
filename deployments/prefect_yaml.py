"""Read the deployments of prefect.yaml, the one place they are defined (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tasks.errors import InputError

FLOW_ENTRYPOINT = "flows/deploy.py:deploy"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of the `deploy` flow as prefect.yaml states it."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    crons: tuple[tuple[str, str], ...] = ()  # (cron, timezone)
    concurrency_limit: int | None = None
    collision_strategy: str = "ENQUEUE"
    tags: tuple[str, ...] = ()


def read_deployments(path: str | Path) -> list[DeploymentSpec]:
    """The deployments of the `deploy` flow in prefect.yaml at `path`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} does not exist: run from the project root") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}") from exc
    specs = []
    for index, entry in enumerate((data or {}).get("deployments") or [], start=1):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise InputError(f"{path}: deployment #{index} has no name")
        if entry.get("entrypoint") != FLOW_ENTRYPOINT:
            continue
        limit = entry.get("concurrency_limit")
        if isinstance(limit, dict):
            count, strategy = limit.get("limit"), str(limit.get("collision_strategy", "ENQUEUE"))
        else:
            count, strategy = limit, "ENQUEUE"
        crons = tuple(
            (str(s["cron"]), str(s.get("timezone") or "UTC"))
            for s in entry.get("schedules") or []
            if isinstance(s, dict) and s.get("cron")
        )
        specs.append(
            DeploymentSpec(
                name=str(entry["name"]),
                description=str(entry.get("description") or ""),
                parameters=dict(entry.get("parameters") or {}),
                crons=crons,
                concurrency_limit=int(count) if count is not None else None,
                collision_strategy=strategy,
                tags=tuple(entry.get("tags") or ()),
            )
        )
    if not specs:
        raise InputError(f"{path}: no deployment has entrypoint {FLOW_ENTRYPOINT}")
    return specs
