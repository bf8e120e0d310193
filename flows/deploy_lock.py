"""One deploy per environment at a time, across processes, deployments and the CLI.

A Prefect global concurrency limit named after the namespace, with one slot: a second run
for the same namespace waits for the first (the deployments' own `concurrency_limit` only
covers runs of one deployment). Prefect needs the limit to exist before a slot is taken.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

LEASE_SECONDS = 3600.0


def limit_name(namespace: str) -> str:
    """The global concurrency limit guarding `namespace`."""
    return f"shipline-deploy-{namespace}"


def _ensure_limit(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            # Another run may create it first.
            with suppress(ObjectAlreadyExists):
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )


@contextmanager
def one_deploy_at_a_time(namespace: str) -> Iterator[None]:
    """Hold the namespace's single deploy slot for the body."""
    from prefect.concurrency.sync import concurrency

    name = limit_name(namespace)
    _ensure_limit(name)
    with concurrency(name, occupy=1, lease_duration=LEASE_SECONDS, strict=True):
        yield
