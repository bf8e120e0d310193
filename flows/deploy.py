"""The `deploy` flow: a pipeline file in, its steps run as a DAG of Prefect tasks.

pipeline file -> steps (`flows.pipeline`) -> DAG (`flows.planner`) -> task runs
(`tasks.prefect_tasks`) -> clients. A step is submitted once every step it needs has
completed, with those futures as `wait_for`, so the run graph in the Prefect UI shows the
plan's edges. The first failure stops new submissions; when a rollout failed, every
workload the run changed is undone to its revision before the run (unless `rollback` is
off) and the run fails with the first cause.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prefect import flow, runtime
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.futures import PrefectFuture, as_completed
from prefect.logging import get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.checkout import checkout, local_repository, require_checkout_at
from flows.deploy_lock import one_deploy_at_a_time
from flows.deploy_summary import DeployOutcome, summary_markdown
from flows.pipeline import Pipeline, read_pipeline
from flows.plan_view import objects_loader, plan_table
from flows.planner import Plan, PlannedStep, plan_pipeline
from flows.shell_namespace import shell_kube_env
from flows.steps import (
    WORKLOAD_KINDS,
    ApplyStep,
    BuildStep,
    KubeScope,
    RestartStep,
    SetImageStep,
    ShellStep,
    Step,
    WaitStep,
)
from tasks.credentials import kubeconfig_secrets, registry_secrets
from tasks.deploy_record import Workload, newer_than, read_records, write_records
from tasks.errors import (
    InputError,
    ManifestError,
    PipelineError,
    RolloutFailed,
    ShiplineError,
)
from tasks.prefect_tasks import (
    WorkloadChange,
    apply_task,
    build_task,
    restart_task,
    set_image_task,
    shell_task,
    undo_task,
    wait_task,
)
from tasks.redact import RedactingFilter, Redactor, masked_errors
from tasks.step_context import StepContext, cluster_for

ROLLBACK_TIMEOUT = 300.0
_SHORTEST_CREDENTIAL = 6
_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def _run_name() -> str:
    parameters = runtime.flow_run.parameters
    commit = str(parameters.get("commit") or "HEAD")[:12]
    return f"deploy-{commit}"


@flow(
    name="deploy",
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=16),
    log_prints=True,
)
def deploy(
    pipeline: str = "okteto-pipeline.yaml",
    commit: str = "",
    branch: str = "",
    repository: str = "",
    namespace: str | None = None,
    registry: str | None = None,
    variables: dict[str, str] | None = None,
    secrets: list[str] | None = None,
    secret_blocks: dict[str, str] | None = None,
    strict: bool = False,
    rollback: bool = True,
    dry_run: bool = False,
    timeout: float = 600.0,
    stamp: int | None = None,
) -> dict[str, Any]:
    """Deploy a commit: run the pipeline file's lines as a DAG of tasks.

    Args:
        pipeline: Path of the okteto-pipeline.yaml (or Okteto manifest); relative paths
            inside it resolve against its folder.
        commit: The commit to deploy (`${OKTETO_GIT_COMMIT}`); default: HEAD of the
            pipeline's repository.
        branch: The branch (`${OKTETO_GIT_BRANCH}`).
        repository: The repository the commit belongs to (OWNER/NAME), for the record.
        namespace: Namespace for lines without `-n`; default: the kubeconfig context's.
        registry: Registry host:port that `okteto.dev/` images map to; default:
            $SHIPLINE_REGISTRY, else 127.0.0.1:5000.
        variables: Extra variables for the lines and manifests (NAME: VALUE).
        secrets: Names of variables whose values are secret: masked in logs,
            artifacts, events and errors.
        secret_blocks: Variables whose values come from Prefect Secret blocks
            (NAME: block name); always masked.
        strict: Refuse manifests that reference an unset variable.
        rollback: When a rollout fails, undo every workload this run changed.
        dry_run: Build nothing, change nothing: render, validate with a server-side dry
            run, and print the plan.
        timeout: Seconds each rollout may take when its line gives no --timeout.
        stamp: Arrival order given by a trigger (nanoseconds since the epoch); a run
            older than what is deployed ends without touching the cluster. A run
            without one (by hand, on schedule) neither checks nor records a stamp: a
            new stamp on every rerun would change the workloads' annotations, and with
            them a Deployment's metadata.generation.

    """
    log = get_run_logger()
    variables = {**(variables or {}), **_from_secret_blocks(secret_blocks or {})}
    redactor = _redactor(variables, [*(secrets or []), *(secret_blocks or {})])
    # Errors leave masked too: the failed state's message, its events and the CLI's
    # error line all come from the exception.
    with masked_errors(redactor), _masked_run_logs(redactor):
        local = local_repository(repository)
        if local is not None and commit:
            worktree = checkout(local, commit)
            log.info("deploying from a worktree of %s at %s: %s", local, commit, worktree)
            pipeline = str(worktree / pipeline)
        elif repository and commit:
            require_checkout_at(Path(pipeline).resolve().parent, commit, repository)
        run = _prepare(pipeline, commit, branch, namespace, registry, variables, strict, timeout)
        # Credentials found in files, not named by the user: a value this short is no
        # real token or password (a test's "t"), and masking it would garble every line.
        found = [
            *kubeconfig_secrets(os.environ.get("KUBECONFIG")),
            *registry_secrets(_registries(run.plan)),
        ]
        redactor.add(value for value in found if len(value) >= _SHORTEST_CREDENTIAL)
        run.context = StepContext(
            pipeline=run.parsed.path,
            workdir=run.parsed.workdir,
            namespace=run.parsed.namespace,
            kubeconfig=os.environ.get("KUBECONFIG") or None,
            env=run.env,
            strict=strict,
            timeout=timeout,
            redactor=redactor,
        )
        log.info("plan for %s:\n%s", run.parsed.path, _plan_text(run.plan))
        if dry_run:
            return redactor.within(_dry_run(run, log))
        with (
            one_deploy_at_a_time(run.parsed.namespace),
            _shell_env(run, namespace) as run.shell_env,
        ):
            workloads = _workloads(run)
            newer = _newer_deploy(run, workloads, stamp)
            if newer is not None:
                log.warning(newer)
                return {"commit": run.commit, "skipped": newer}
            if _needs_check_ahead(run.plan):
                _check_applies(run, up_to_first_shell=True)
            outcome = _execute(run, log)
            outcome.commit, outcome.namespace = run.commit, run.parsed.namespace
            if outcome.failure is not None and rollback and _rollout_failed(outcome.failure):
                outcome.rolled_back = _roll_back(run, outcome.changes, log)
                for message in outcome.rolled_back:  # shown under the CLI's error line
                    outcome.failure.add_note(f"rollback: {redactor(message)}")
            if outcome.failure is None and workloads:
                write_records(cluster_for(run.context), workloads, run.commit, stamp)
        _report(outcome, redactor)
        if outcome.failure is not None:
            raise outcome.failure
        return redactor.within(outcome.as_dict())  # the CLI prints it


@dataclass
class _Run:
    """One run's prepared inputs."""

    commit: str
    parsed: Pipeline
    plan: Plan
    env: dict[str, str] = field(repr=False)
    context: StepContext | None = None
    shell_env: dict[str, str] = field(default_factory=dict)  # see flows.shell_namespace


def _prepare(
    pipeline: str,
    commit: str,
    branch: str,
    namespace: str | None,
    registry: str | None,
    variables: dict[str, str],
    strict: bool,
    timeout: float,
) -> _Run:
    """Parse and plan: every input error surfaces here, before anything runs."""
    from flows.commit import check_timeout, run_options

    check_timeout(timeout)  # runs from the UI or the API come without the CLI's check

    options = run_options(
        pipeline,
        commit=commit or None,
        branch=branch or None,
        namespace=namespace,
        registry=registry,
        variables=variables,
    )
    parsed = read_pipeline(pipeline, options)
    _check_build_files(parsed)
    env = {**os.environ, **parsed.variables}
    plan = plan_pipeline(parsed, objects_loader(parsed, environ=env))
    commit = options.commit
    return _Run(commit=commit, parsed=parsed, plan=plan, env=env)


def _shell_env(run: _Run, namespace: str | None) -> contextlib.AbstractContextManager[dict]:
    """What shell lines get (see flows.shell_namespace); nothing to make without any."""
    if not any(isinstance(p.step, ShellStep) for p in run.plan.steps):
        return contextlib.nullcontext({})
    return shell_kube_env(namespace, run.env)


def _check_build_files(parsed: Pipeline) -> None:
    """Refuse a build whose context or Dockerfile is missing before anything runs.

    Up to the first shell line: that line may create them.
    """
    from flows.build_commands import build_files_problem

    for step in parsed.steps:
        if isinstance(step, ShellStep):
            return
        if isinstance(step, BuildStep):
            problem = build_files_problem(step.context, step.dockerfile)
            if problem:
                raise PipelineError(f"{parsed.path} line {step.line}: {step.command}: {problem}")


def _workloads(run: _Run) -> list[Workload]:
    """The Deployments (and other workloads) the plan changes or waits for."""
    found: dict[tuple[str, str, str], None] = {}
    for planned in run.plan.steps:
        step = planned.step
        if isinstance(step, ApplyStep):
            for obj in planned.objects:
                if obj.kind in WORKLOAD_KINDS:
                    found[(obj.kind, obj.name, obj.namespace)] = None
        elif isinstance(step, (SetImageStep, RestartStep)):
            for name in step.names:
                found[(step.workload_kind, name, step.scope.namespace)] = None
        elif isinstance(step, WaitStep):
            found[(step.workload_kind, step.name, step.scope.namespace)] = None
    return [Workload(*key) for key in found]


def _newer_deploy(run: _Run, workloads: list[Workload], stamp: int | None) -> str | None:
    """Why this run must not deploy (a newer stamp is recorded), or None."""
    if stamp is None or not workloads:
        return None
    assert run.context is not None
    newer = newer_than(read_records(cluster_for(run.context), workloads), stamp)
    if newer is None:
        return None
    return (
        f"skipped: {newer.workload.target} already runs commit {newer.commit[:12]} "
        f"(stamp {newer.stamp}), newer than this run's {run.commit[:12]} (stamp {stamp}); "
        "an older commit never lands after a newer one"
    )


def _plan_text(plan: Plan) -> str:
    """The plan table as plain text for the run log."""
    import io

    from rich.console import Console

    console = Console(width=120, record=True, file=io.StringIO())
    console.print(plan_table(plan))
    return console.export_text()


def _from_secret_blocks(blocks: dict[str, str]) -> dict[str, str]:
    """Variable values read from Prefect Secret blocks (NAME: block name)."""
    if not blocks:
        return {}
    from prefect.blocks.system import Secret

    values = {}
    for name, block in blocks.items():
        try:
            values[name] = str(Secret.load(block).get())
        except ValueError as exc:
            raise InputError(
                f"secret_blocks: variable {name}: cannot load the Prefect Secret block "
                f"{block!r} ({exc}); create it with `prefect block create secret`"
            ) from None
    return values


def _registries(plan: Plan) -> list[str]:
    """The registries the builds push to (their hosts)."""
    return [
        p.step.image.split("/", 1)[0]
        for p in plan.steps
        if isinstance(p.step, BuildStep) and "/" in p.step.image
    ]


def _redactor(variables: dict[str, str], secrets: list[str]) -> Redactor:
    """Mask the values of the variables named secret (from `variables` or the process).

    A secret without a value is refused: substituted as an empty string it would deploy
    an empty password or key without a word (a secret is named secret to be used).
    """
    from flows.commit import is_variable_name

    invalid = [name for name in secrets if not is_variable_name(name)]
    if invalid:
        raise InputError(
            f"--secret {invalid[0]!r}: expected the name of a variable (letters, digits, _; "
            "not starting with a digit), not its value"
        )
    values = {name: variables.get(name) or os.environ.get(name, "") for name in secrets}
    missing = sorted(name for name, value in values.items() if not value)
    if missing:
        raise InputError(
            f"no value for the secret variable(s) {', '.join(missing)}: export them in the "
            "environment of the process that runs the flow (`shipline run`, `shipline "
            "serve` or the worker), or take them from Prefect Secret blocks (the "
            "`secret_blocks` parameter)"
        )
    return Redactor(list(values.values()))


class _masked_run_logs:
    """Install a RedactingFilter on Prefect's run loggers for the length of the run."""

    def __init__(self, redactor: Redactor) -> None:
        self.filter = RedactingFilter(redactor)

    def __enter__(self) -> None:
        for name in _RUN_LOGGERS:
            logging.getLogger(name).addFilter(self.filter)

    def __exit__(self, *exc: object) -> None:
        for name in _RUN_LOGGERS:
            logging.getLogger(name).removeFilter(self.filter)


def _step_context(run: _Run, step: Step) -> StepContext:
    """The run's context, pointed where a kubectl line acts: its -n, --context, --kubeconfig."""
    assert run.context is not None
    scope = getattr(step, "scope", None)
    if not isinstance(scope, KubeScope):
        return run.context
    kubeconfig = run.context.kubeconfig
    if scope.kubeconfig:
        # kubectl reads a relative --kubeconfig from where the pipeline runs.
        kubeconfig = os.path.join(run.context.workdir, scope.kubeconfig)
    return replace(
        run.context, namespace=scope.namespace, kubeconfig=kubeconfig, kube_context=scope.context
    )


def _submit(run: _Run, planned: PlannedStep, wait_for: list[PrefectFuture]) -> PrefectFuture:
    """Submit the task of one planned step, named after it, after `wait_for`."""
    step = planned.step
    context = _step_context(run, step)
    named = {"task_run_name": context.redactor(planned.id)}
    if isinstance(step, BuildStep):
        from tasks.build_key import build_key

        key = build_key(step.context, step.dockerfile, step.build_args, step.target)
        return build_task.with_options(**named, refresh_cache=not _registry_has(step.image)).submit(
            image=step.image,
            key=key,
            context_dir=step.context,
            dockerfile=step.dockerfile,
            build_args=step.build_args,
            target=step.target,
            push=step.push,
            redactor=context.redactor,
            wait_for=wait_for,
        )
    if isinstance(step, ApplyStep):
        return _submit_apply(run, planned, planned.id, wait_for=wait_for)
    if isinstance(step, SetImageStep):
        return set_image_task.with_options(**named).submit(
            context,
            step.workload_kind,
            step.names,
            step.scope.namespace,
            step.images,
            wait_for=wait_for,
        )
    if isinstance(step, RestartStep):
        return restart_task.with_options(**named).submit(
            context, step.workload_kind, step.names, step.scope.namespace, wait_for=wait_for
        )
    if isinstance(step, WaitStep):
        return wait_task.with_options(**named).submit(
            context,
            step.workload_kind,
            step.name,
            step.scope.namespace,
            step.timeout if step.timeout is not None else context.timeout,
            wait_for=wait_for,
        )
    assert isinstance(step, ShellStep)
    if run.shell_env:
        context = replace(context, env={**context.env, **run.shell_env})
    return shell_task.with_options(**named).submit(
        context, step.command, step.cwd, step.line, wait_for=wait_for
    )


def _submit_apply(run: _Run, planned: PlannedStep, name: str, **options: Any) -> PrefectFuture:
    """Submit the apply task of a planned apply step; `options` go to the task."""
    step = planned.step
    assert isinstance(step, ApplyStep)
    context = _step_context(run, step)
    return apply_task.with_options(task_run_name=context.redactor(name)).submit(
        context,
        step.files,
        tuple((o.kind, o.name, o.namespace) for o in planned.objects),
        _overrides(planned, run.parsed.namespace),
        only=step.substituted_names,
        explicit_namespace=step.scope.explicit_namespace,
        **options,
    )


def _overrides(planned: PlannedStep, run_namespace: str) -> tuple[tuple[str, str, str, str], ...]:
    """(kind, name, container, image) for the planner's (target, container, image)."""
    by_target = {o.target(run_namespace): o for o in planned.objects}
    return tuple(
        (by_target[target].kind, by_target[target].name, container, image)
        for target, container, image in planned.image_overrides
    )


def _registry_has(image: str) -> bool:
    """Whether the registry holds `image` now (unknown counts as no: build to be sure)."""
    from tasks.image_ref import parse_image
    from tasks.registry import Registry

    try:
        ref = parse_image(image)
        return Registry.for_image(ref).manifest_digest(ref) is not None
    except ShiplineError:
        return False


def _execute(run: _Run, log: logging.Logger | logging.LoggerAdapter) -> DeployOutcome:
    """Submit steps as their needs complete; stop submitting at the first failure."""
    outcome = DeployOutcome(plan_ids=[p.id for p in run.plan.steps])
    futures: dict[str, PrefectFuture] = {}
    running: dict[PrefectFuture, PlannedStep] = {}
    pending = list(run.plan.steps)
    completed: set[str] = set()
    while True:
        if outcome.failure is None:
            for planned in [p for p in pending if completed.issuperset(p.needs)]:
                pending.remove(planned)
                future = _submit(run, planned, [futures[n] for n in planned.needs])
                futures[planned.id] = running_future = future
                running[running_future] = planned
        if not running:
            break
        future = next(as_completed(list(running)))
        planned = running.pop(future)
        future.wait()  # sets the final state locally; the server's copy may lag
        state = future.state
        if state.is_completed():
            completed.add(planned.id)
            outcome.record(planned, future.result(), cached=state.name == "Cached")
        else:
            error = future.result(raise_on_failure=False)
            outcome.fail(planned, error if isinstance(error, BaseException) else None, state)
    outcome.not_run = [p.id for p in pending]
    return outcome


def _rollout_failed(failure: BaseException) -> bool:
    return isinstance(failure, RolloutFailed)


def _roll_back(
    run: _Run, changes: list[WorkloadChange], log: logging.Logger | logging.LoggerAdapter
) -> list[str]:
    """Undo every workload this run changed, to its revision before the run; wait for it."""
    first: dict[str, WorkloadChange] = {}
    for change in changes:
        first.setdefault(f"{change.target}@{change.namespace}", change)
    if not first:
        return []
    log.warning("rolling back %s", ", ".join(c.target for c in first.values()))
    assert run.context is not None
    futures = [
        undo_task.with_options(task_run_name=run.context.redactor(f"undo[{c.name}]")).submit(
            replace(run.context, kubeconfig=c.kubeconfig, kube_context=c.kube_context),
            c,
            ROLLBACK_TIMEOUT,
        )
        for c in first.values()
    ]
    messages = []
    for change, future in zip(first.values(), futures, strict=True):
        result = future.result(raise_on_failure=False)
        if isinstance(result, BaseException):
            messages.append(f"rollback of {change.target} failed: {result}")
        else:
            messages.append(str(result))
    return messages


def _report(outcome: DeployOutcome, redactor: Redactor) -> None:
    """The summary artifact and the event automations listen to, with secrets masked."""
    create_markdown_artifact(
        redactor(summary_markdown(outcome)),
        key=f"deploy-summary-{_slug(outcome.namespace)}",
        description=redactor(f"shipline deploy of {outcome.commit[:12]} to {outcome.namespace}"),
    )
    event = "shipline.deploy.failed" if outcome.failure else "shipline.deploy.succeeded"
    payload: dict[str, Any] = {
        "commit": outcome.commit,
        "namespace": outcome.namespace,
        "images": outcome.images(),
    }
    if outcome.failure is not None:
        payload["error"] = str(outcome.failure)
    emit_event(
        event=event,
        resource=redactor.within(
            {
                "prefect.resource.id": f"shipline.namespace.{outcome.namespace}",
                "prefect.resource.name": outcome.namespace,
            }
        ),
        payload=redactor.within(payload),
    )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "default"


def _dry_run(run: _Run, log: logging.Logger | logging.LoggerAdapter) -> dict[str, Any]:
    """Render and validate every apply with a server-side dry run; change nothing."""
    results = _check_applies(run, up_to_first_shell=False)
    log.info("dry run: nothing was built, pushed or changed")
    return {"dry_run": True, "plan": [p.id for p in run.plan.steps], "objects": results}


def _needs_check_ahead(plan: Plan) -> bool:
    """Whether anything could change the cluster before an apply's own dry run.

    One apply and nothing else that writes: its own all-or-nothing dry run suffices.
    """
    applies = [p for p in plan.steps if isinstance(p.step, ApplyStep)]
    writers = [p for p in plan.steps if isinstance(p.step, (SetImageStep, RestartStep))]
    return len(applies) > 1 or (bool(applies) and bool(writers))


def _check_applies(run: _Run, *, up_to_first_shell: bool) -> list[str]:
    """Server-side dry run of the run's applies, all at once, before anything changes.

    An apply split around a build, or a second apply line, would otherwise find a bad
    manifest only after the first had changed the cluster. Steps after a shell line are
    left to their own dry run (what the shell does is unknown), unless
    `up_to_first_shell` is off (a dry run of the whole pipeline). Namespaces and
    CustomResourceDefinitions that an earlier step creates count as coming. Raises one
    ManifestError listing every refusal; returns the result lines.
    """
    namespaces: set[str] = set()
    crds = False
    futures: list[PrefectFuture] = []
    for planned in run.plan.steps:
        if isinstance(planned.step, ShellStep) and up_to_first_shell:
            break
        if not isinstance(planned.step, ApplyStep):
            continue
        futures.append(
            _submit_apply(
                run,
                planned,
                f"{planned.id} (dry run)",
                dry_run=True,
                namespaces_coming=frozenset(namespaces),
                kinds_coming=crds,
            )
        )
        namespaces |= {o.name for o in planned.objects if o.kind == "Namespace"}
        crds = crds or any(o.kind == "CustomResourceDefinition" for o in planned.objects)
    results: list[str] = []
    refused: list[ShiplineError] = []
    for future in futures:
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, InputError):
            refused.append(outcome)
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            applied, _ = outcome
            results.extend(f"{r.target} {r.action}" for r in applied)
    if len(refused) == 1:
        raise refused[0]
    if refused:
        prefix = "nothing was applied:\n"
        raise ManifestError(prefix + "\n".join(str(e).removeprefix(prefix) for e in refused))
    return results


def run_page(flow_run_id: str) -> str:
    """The flow run's page in the Prefect UI."""
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value() or "http://127.0.0.1:4200"
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}"
