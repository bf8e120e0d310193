"""`shipline serve`: the prefect.yaml deployments, created on the server and run here.

Prefect's `serve` registers each deployment (same names, schedules, parameters and
concurrency limits as prefect.yaml) and executes their runs (UI, API, schedule) in this
process. To scale out, `prefect deploy --all` puts the same definitions on a process work
pool whose workers run them instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deployments.prefect_yaml import DeploymentSpec, read_deployments


def runner_deployments(specs: list[DeploymentSpec]) -> list[Any]:
    """The `deploy` flow as one RunnerDeployment per spec."""
    from prefect.client.schemas.objects import (
        ConcurrencyLimitConfig,
        ConcurrencyLimitStrategy,
    )
    from prefect.schedules import Cron

    from flows.deploy import deploy

    result = []
    for spec in specs:
        limit = None
        if spec.concurrency_limit is not None:
            limit = ConcurrencyLimitConfig(
                limit=spec.concurrency_limit,
                collision_strategy=ConcurrencyLimitStrategy(spec.collision_strategy),
            )
        result.append(
            deploy.to_deployment(
                name=spec.name,
                description=spec.description or None,
                parameters=spec.parameters,
                schedules=[Cron(cron, timezone=tz) for cron, tz in spec.crons],
                concurrency_limit=limit,
                tags=list(spec.tags),
            )
        )
    return result


def serve(prefect_yaml: str | Path = "prefect.yaml", *, limit: int | None = None) -> None:
    """Create or update the deployments and execute their runs until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*runner_deployments(read_deployments(prefect_yaml)), limit=limit)
