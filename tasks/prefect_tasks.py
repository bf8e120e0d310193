"""The Prefect tasks: one per kind of step, each a thin wrapper over its plain function.

Everything Prefect-specific about a step lives here: retries (only for errors classified
as retryable, see `tasks.errors`), the build's cache, run loggers with secrets masked,
the progress artifact of a build. The logic stays in the plain modules, testable without
Prefect.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NONE
from prefect.logging import get_run_logger

from tasks.errors import is_retryable
from tasks.redact import Redactor, masked_errors
from tasks.step_context import StepContext, cluster_for

RETRY_DELAYS = [2.0, 5.0, 10.0]


def _retry_when_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry hook: retry only what `tasks.errors` classified as retryable."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as error:  # the state may hold the exception as its result
        exc = error
    return isinstance(exc, BaseException) and is_retryable(exc)


def _step_task(**options: Any) -> Any:
    """`prefect.task` with shipline's defaults: no input hashing, transient retries.

    The function's first parameter is the run's StepContext; an exception it raises
    leaves with the secrets in its message masked (the server echoes refused values,
    and Prefect keeps the message in the task run's state, its log and its events).
    """
    options.setdefault("cache_policy", NONE)
    options.setdefault("retries", len(RETRY_DELAYS))
    options.setdefault("retry_delay_seconds", RETRY_DELAYS)
    options.setdefault("retry_condition_fn", _retry_when_transient)

    def decorate(fn: Callable[..., Any]) -> Any:
        @functools.wraps(fn)
        def masked(context: StepContext, *args: Any, **kwargs: Any) -> Any:
            with masked_errors(context.redactor):
                return fn(context, *args, **kwargs)

        return task(**options)(masked)

    return decorate


@dataclass(frozen=True)
class WorkloadChange:
    """A workload a step changed, and its revision before this run touched it."""

    target: str
    kind: str
    name: str
    namespace: str
    revision_before: int | None
    # Where it lives: the kubeconfig and context of the step that changed it.
    kubeconfig: str | None = None
    kube_context: str | None = None


# --- build -------------------------------------------------------------------------------


def _build_cache_key(_context: Any, parameters: dict[str, Any]) -> str:
    """Cache on what goes into the image (the build key) and the tag it must carry.

    Hashed: the key names the stored result's file and shows in the task run's state,
    and an image tag may hold a secret value.
    """
    tagged = f"{parameters['image']}\0{parameters['key']}".encode()
    return f"shipline-build-{hashlib.sha256(tagged).hexdigest()}"


@task(
    name="build",
    cache_key_fn=_build_cache_key,
    persist_result=True,
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=_retry_when_transient,
)
def build_task(
    image: str,
    key: str,
    context_dir: str,
    dockerfile: str,
    build_args: tuple[tuple[str, str], ...] = (),
    target: str | None = None,
    push: bool = True,
    redactor: Redactor | None = None,
) -> Any:
    """Build and push one image; Cached on (image, key) across runs.

    `redactor` masks secrets in its artifact and its errors (its log lines pass the
    run's filter); it is not part of the cache key.
    """
    from tasks.build import build_and_push

    mask = redactor or Redactor()
    with masked_errors(mask):
        log = get_run_logger()
        artifact = create_progress_artifact(0.0, description=mask(f"build and push of {image}"))
        last = [0.0]

        def progress(fraction: float, text: str) -> None:
            # The API takes one update per call: a few a second is plenty for the UI.
            now = time.monotonic()
            if fraction >= 1.0 or now - last[0] > 0.5:
                last[0] = now
                update_progress_artifact(artifact, progress=round(fraction * 100, 1))

        result = build_and_push(
            image,
            context_dir,
            dockerfile,
            build_args=build_args,
            target=target,
            push=push,
            log=log,
            progress=progress,
        )
        update_progress_artifact(artifact, progress=100.0)
        # The result is stored (pickled) for the cache: no secret in it either.
        return dataclasses.replace(result, image=mask(result.image))


# --- apply -------------------------------------------------------------------------------


@_step_task(name="apply")
def apply_task(
    context: StepContext,
    files: tuple[str, ...],
    objects: tuple[tuple[str, str, str], ...],
    image_overrides: tuple[tuple[str, str, str, str], ...] = (),
    only: frozenset[str] | None = None,
    dry_run: bool = False,
    explicit_namespace: bool = False,
    namespaces_coming: frozenset[str] = frozenset(),
    kinds_coming: bool = False,
) -> tuple[list[Any], list[WorkloadChange]]:
    """Apply the chosen objects of `files` (kind, name, namespace), final images in place.

    `image_overrides` holds (kind, name, container, image). Returns the per-object results
    and the workloads whose spec changed, with their revision before. The last three
    are passed on to `tasks.apply.apply_objects`.
    """
    from tasks.apply import apply_objects
    from tasks.manifests import load_objects
    from tasks.rollout import revision

    log = get_run_logger()
    cluster = cluster_for(context)
    wanted = set(objects)
    chosen = [
        obj
        for obj in load_objects(files, context.env, strict=context.strict, only=only)
        if (obj.kind, obj.name, obj.namespace or context.namespace) in wanted
    ]
    overrides: dict[tuple[str, str], dict[str, str]] = {}
    for kind, name, container, image in image_overrides:
        overrides.setdefault((kind, name), {})[container] = image
    before = {}
    if not dry_run:
        for obj in chosen:
            if obj.kind == "Deployment":
                ns = obj.namespace or context.namespace
                before[(obj.name, ns)] = revision(cluster, obj.kind, obj.name, ns)
    results = apply_objects(
        cluster,
        chosen,
        namespace=context.namespace,
        image_overrides=overrides,
        dry_run=dry_run,
        explicit_namespace=explicit_namespace,
        namespaces_coming=namespaces_coming,
        kinds_coming=kinds_coming,
        log=log,
    )
    changes = []
    for obj, result in zip(_in_apply_order(chosen), results, strict=True):
        ns = obj.namespace or context.namespace
        if obj.kind == "Deployment" and result.action != "unchanged" and not dry_run:
            target = f"deployment/{obj.name}"
            changes.append(
                WorkloadChange(
                    target,
                    obj.kind,
                    obj.name,
                    ns,
                    before.get((obj.name, ns)),
                    *_where(context),
                )
            )
    return results, changes


def _in_apply_order(objects: list[Any]) -> list[Any]:
    from tasks.manifests import apply_order

    return apply_order(objects)


# --- rollout verbs -----------------------------------------------------------------------


@_step_task(name="set-image")
def set_image_task(
    context: StepContext,
    kind: str,
    names: tuple[str, ...],
    namespace: str,
    images: tuple[tuple[str, str], ...],
) -> list[WorkloadChange]:
    """`kubectl set image` on each named workload."""
    from tasks.rollout import revision, set_image

    log = get_run_logger()
    cluster = cluster_for(context)
    changes = []
    for name in names:
        rev = revision(cluster, kind, name, namespace) if kind == "Deployment" else None
        result = set_image(cluster, kind, name, namespace, dict(images), log=log)
        if result.changed:
            changes.append(
                WorkloadChange(result.target, kind, name, namespace, rev, *_where(context))
            )
    return changes


def _where(context: StepContext) -> tuple[str | None, str | None]:
    return context.kubeconfig, context.kube_context


@_step_task(name="restart")
def restart_task(
    context: StepContext, kind: str, names: tuple[str, ...], namespace: str
) -> list[WorkloadChange]:
    """`kubectl rollout restart` of each named workload."""
    from tasks.rollout import restart, revision

    log = get_run_logger()
    cluster = cluster_for(context)
    changes = []
    for name in names:
        rev = revision(cluster, kind, name, namespace) if kind == "Deployment" else None
        result = restart(cluster, kind, name, namespace, log=log)
        changes.append(WorkloadChange(result.target, kind, name, namespace, rev, *_where(context)))
    return changes


@_step_task(name="wait")
def wait_task(
    context: StepContext, kind: str, name: str, namespace: str, timeout: float | None
) -> Any:
    """`kubectl rollout status`, failing fast on stuck pods."""
    from tasks.rollout_wait import WaitTarget, wait_rollout

    return wait_rollout(
        cluster_for(context),
        WaitTarget(kind, name, namespace, timeout),
        log=get_run_logger(),
    )


@_step_task(name="undo", retries=0)
def undo_task(context: StepContext, change: WorkloadChange, timeout: float) -> str:
    """Roll one workload back to its revision before this run, and wait for it."""
    from tasks.rollout import undo
    from tasks.rollout_wait import WaitTarget, wait_rollout

    log = get_run_logger()
    cluster = cluster_for(context)
    if change.revision_before is None:
        message = f"{change.target} was created by this run: left in place, nothing to undo"
        log.warning(message)
        return message
    result = undo(
        cluster,
        change.kind,
        change.name,
        change.namespace,
        to_revision=change.revision_before,
        log=log,
    )
    wait_rollout(
        cluster,
        WaitTarget(change.kind, change.name, change.namespace, timeout),
        log=log,
        fail_fast=False,
    )
    return result.message


# --- shell -------------------------------------------------------------------------------


@_step_task(name="shell", retries=0)
def shell_task(context: StepContext, command: str, cwd: str, line: int) -> int:
    """Run a line shipline does not model, verbatim, in bash."""
    from pathlib import Path

    from tasks.shell import run_shell

    result = run_shell(
        command,
        cwd=Path(cwd),
        env=context.env,
        where=context.where(line),
        log=get_run_logger(),
        mask=context.redactor,
    )
    return result.exit_code
