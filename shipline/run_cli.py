"""`shipline run` and `shipline demo`: run the deploy flow from the command line.

Runs go to $PREFECT_API_URL when set, else to the local stack's Prefect server when it
answers, else to Prefect's temporary local server. KUBECONFIG and SHIPLINE_REGISTRY
default to the stack's too, so `shipline run` works right after `shipline stack up`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.commit import check_timeout, head_commit, parse_variables, resolve_commit
from tasks.errors import InputError, ShiplineError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pr12er"
DEMO_NAMESPACE = "pr12er"
DEMO_VARIABLES = {
    "GRAFANA_REMOTE_WRITE_URL": "http://127.0.0.1:9009/api/prom/push",
    "GRAFANA_USERNAME": "demo",
    "GRAFANA_API_KEY": "demo-api-key",
}


def use_stack_defaults(*, prefer_stack: bool = False) -> None:
    """Point Prefect, kubectl settings and the registry at the stack when unset.

    The cluster is kubectl's default first: with ``KUBECONFIG`` unset, a user's
    ``~/.kube/config`` is what their kubectl acts on, so it is what a deploy acts on
    (unless ``prefer_stack``: the demo deploys to the stack it brought up).
    """
    # Nothing may leave the machine: no telemetry from a temporary Prefect server, which
    # on a busy machine also needs longer than Prefect's default to start.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from shipline.stack.layout import StackLayout
    from shipline.stack.lifecycle import StackState, prefect_answers

    state = StackState.load(StackLayout.from_env())
    if state is None:
        return
    home_config = Path(os.path.expanduser("~"), ".kube", "config")
    if "KUBECONFIG" not in os.environ and (prefer_stack or not home_config.is_file()):
        os.environ["KUBECONFIG"] = state.kubeconfig
    os.environ.setdefault("SHIPLINE_REGISTRY", state.registry)
    api_url = state.prefect_api_url
    if "PREFECT_API_URL" not in os.environ and api_url and prefect_answers(api_url):
        os.environ["PREFECT_API_URL"] = api_url


def run_deploy(parameters: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Run the flow in this process; (flow run id, its result) or raise its failure."""
    _check_utf8(parameters)
    use_stack_defaults()
    from flows.deploy import deploy

    _no_console_tracebacks_for_shipline_errors()

    state = deploy(**parameters, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        if flow_run_id is not None:
            result.add_note(f"flow run: {_page(str(flow_run_id))}")
        raise result
    return (str(flow_run_id) if flow_run_id else None), result


def _check_utf8(parameters: dict[str, Any]) -> None:
    """Refuse bytes that are not UTF-8 (from argv): the API stores parameters as JSON."""
    for name, value in parameters.items():
        texts = value.items() if isinstance(value, dict) else [(None, value)]
        for key, text in texts:
            for part in (key, text):
                if isinstance(part, str) and not _is_utf8(part):
                    raise InputError(
                        f"the {name} parameter holds bytes that are not UTF-8 "
                        f"({ascii(part)[:80]}); pass it as UTF-8"
                    )


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _no_console_tracebacks_for_shipline_errors() -> None:
    """Keep Prefect's console log from printing a traceback for a shipline error.

    The CLI prints such an error once, by itself, with what to do; a traceback through
    Prefect's engine above it only buries that. The run's log on the server keeps it.
    """
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    from tasks.errors import ShiplineError

    class _Formatter(logging.Formatter):
        def __init__(self, inner: logging.Formatter) -> None:
            super().__init__()
            self._inner = inner

        def format(self, record: logging.LogRecord) -> str:
            exc = record.exc_info[1] if record.exc_info else None
            if isinstance(exc, ShiplineError):
                # A copy: the other handlers (the API's) still get the traceback.
                record = logging.makeLogRecord({**record.__dict__, "exc_info": None})
                record.exc_text = None
            return self._inner.format(record)

    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and not isinstance(
                handler.formatter, _Formatter
            ):
                handler.setFormatter(_Formatter(handler.formatter or logging.Formatter()))


def _secrets_to_environment(variables: dict[str, str], secrets: list[str]) -> dict[str, str]:
    """`variables` without the secret ones, whose values go to this process's environment.

    Flow-run parameters are stored on the Prefect server and shown in its UI; a secret's
    value must not be one. The flow runs in this process and reads them from here.
    """
    kept = dict(variables)
    for name in secrets:
        if name in kept:
            os.environ[name] = kept.pop(name)
    return kept


def _page(flow_run_id: str) -> str:
    from flows.deploy import run_page

    return run_page(flow_run_id)


def _print_outcome(flow_run_id: str | None, result: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    if result.get("dry_run"):
        console.print("[bold]dry run[/bold]: nothing built, pushed or changed")
        for line in result.get("objects", []):
            console.print(f"  {line}")
    else:
        for line in result.get("applied", []):
            console.print(f"  {line}")
        for target, seconds in result.get("rollouts", {}).items():
            console.print(f"  {target} rolled out ({seconds} s)")
        namespace = result.get("namespace", "")
        console.print(
            f"[bold green]deployed[/bold green] {result.get('commit', '')[:12]} to namespace "
            f"{namespace} (kubectl -n {namespace} get deployments)"
        )
    if flow_run_id:
        console.print(f"flow run: {_page(flow_run_id)}", soft_wrap=True)


def run(
    pipeline: Annotated[Path, typer.Argument(help="okteto-pipeline.yaml or Okteto manifest.")],
    commit: Annotated[
        str, typer.Option(help="Commit to deploy; default: git HEAD of the pipeline's repo.")
    ] = "",
    branch: Annotated[str, typer.Option(help="Branch (${OKTETO_GIT_BRANCH}).")] = "",
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace for lines without -n.")
    ] = None,
    registry: Annotated[
        str | None, typer.Option(help="Registry for okteto.dev/ images (host:port).")
    ] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="NAME=VALUE for lines and manifests.")
    ] = None,
    secret: Annotated[
        list[str] | None, typer.Option("--secret", help="A variable name whose value is secret.")
    ] = None,
    strict: Annotated[bool, typer.Option(help="Refuse unset variables in manifests.")] = False,
    rollback: Annotated[
        bool, typer.Option("--rollback/--no-rollback", help="Undo changes when a rollout fails.")
    ] = True,
    dry_run: Annotated[bool, typer.Option(help="Render and validate only.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per rollout without --timeout.")] = 600,
) -> None:
    """Run a pipeline file as the `deploy` flow; exit 0 only when every rollout completed."""
    timeout = check_timeout(timeout)
    # Resolved here, not in the flow, so the run's name and parameters show it.
    commit = resolve_commit(pipeline, commit)
    parameters = {
        # Absolute: the run's parameters are kept, and a rerun may start elsewhere.
        "pipeline": str(pipeline.absolute()),
        "commit": commit,
        "branch": branch,
        "namespace": namespace,
        "registry": registry,
        "variables": _secrets_to_environment(parse_variables(var or []), list(secret or [])),
        "secrets": list(secret or []),
        "strict": strict,
        "rollback": rollback,
        "dry_run": dry_run,
        "timeout": timeout,
    }
    flow_run_id, result = run_deploy(parameters)
    _print_outcome(flow_run_id, result)


def demo(
    commit: Annotated[str, typer.Option(help="Commit tag for the demo image.")] = "",
) -> None:
    """Bring the local stack up and deploy the example (examples/pr12er)."""
    from rich.console import Console

    from shipline.stack.layout import StackLayout
    from shipline.stack.lifecycle import up

    if not EXAMPLE.is_dir():  # the example ships with the repository, not in a wheel
        raise InputError(
            f"shipline demo deploys the example of a source checkout ({EXAMPLE} is not "
            "here): clone the repository and install it with `pip install -e .`"
        )
    up(StackLayout.from_env(), Console(stderr=True))
    use_stack_defaults(prefer_stack=True)
    if not commit:
        try:
            commit = head_commit(EXAMPLE)
        except ShiplineError:
            commit = "demo"
    parameters = {
        "pipeline": str(EXAMPLE / "okteto-pipeline.yaml"),
        "commit": commit,
        "namespace": DEMO_NAMESPACE,
        "variables": _secrets_to_environment(DEMO_VARIABLES, ["GRAFANA_API_KEY"]),
        "secrets": ["GRAFANA_API_KEY"],
    }
    _ensure_namespace(DEMO_NAMESPACE)
    flow_run_id, result = run_deploy(parameters)
    _print_outcome(flow_run_id, result)


def _ensure_namespace(name: str) -> None:
    """Create the demo's namespace when missing (the example's manifests do not)."""
    from tasks.kube import Cluster, api_call

    cluster = Cluster.connect(os.environ.get("KUBECONFIG"))
    try:
        if cluster.get("v1", "Namespace", name, None) is None:
            with api_call(f"creating namespace {name}"):
                cluster.resource("v1", "Namespace").create(
                    body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                )
    finally:
        cluster.close()
