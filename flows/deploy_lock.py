"""One deploy per environment at a time, across processes, deployments and the CLI.

A Prefect global concurrency limit named after the namespace, with one slot: a second run
for the same namespace waits for the first (the deployments' own `concurrency_limit` only
covers runs of one deployment). Prefect needs the limit to exist before a slot is taken.

A run that is killed (SIGKILL, OOM, a lost machine) never releases its slot: its lease
is renewed while it lives, so it ends at most LEASE_SECONDS after the death (plus the
server's repossessor pass). The holder's flow run id is kept in a Prefect Variable while
the slot is held; a run that gets the slot and still finds another holder's id there
knows that run died holding it, and marks it Crashed instead of leaving it "Running".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

# Renewed every 0.75 * LEASE_SECONDS while the run lives (Prefect's lease renewal).
LEASE_SECONDS = 60.0


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
        me = _current_flow_run_id()
        _take_over(namespace, me)
        try:
            yield
        finally:
            _let_go(namespace, me)


def holder_variable(namespace: str) -> str:
    """The Prefect Variable naming the flow run that holds `namespace`'s deploy slot."""
    return f"shipline-deploy-holder-{namespace}"


def _current_flow_run_id() -> str | None:
    from prefect import runtime

    run_id = runtime.flow_run.id
    return str(run_id) if run_id else None


def _take_over(namespace: str, me: str | None) -> None:
    """Record `me` as the holder; mark a previous holder that never let go Crashed."""
    from prefect.variables import Variable

    if me is None:
        return
    previous = Variable.get(holder_variable(namespace))
    if previous and previous != me:
        _mark_crashed(str(previous), namespace, me)
    Variable.set(holder_variable(namespace), me, overwrite=True)


def _let_go(namespace: str, me: str | None) -> None:
    from prefect.variables import Variable

    if me is not None and Variable.get(holder_variable(namespace)) == me:
        Variable.unset(holder_variable(namespace))


def _mark_crashed(flow_run_id: str, namespace: str, successor: str) -> None:
    """Set the dead holder's flow run Crashed, unless it already reached a final state."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.logging import get_run_logger
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        try:
            flow_run = client.read_flow_run(flow_run_id)
        except ObjectNotFound:
            return
        if flow_run.state is None or flow_run.state.is_final():
            return
        message = (
            f"the process running this deploy died while it held the deploy slot of "
            f"namespace {namespace} (it never released it; its lease expired); flow run "
            f"{successor} took over"
        )
        client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)
    get_run_logger().warning(
        "flow run %s (%s) died holding the deploy slot of namespace %s: marked it Crashed",
        flow_run.name,
        flow_run_id,
        namespace,
    )
