"""wait-rollout: ``kubectl rollout status`` on a watch, plus failing fast on stuck pods.

For each target, one thread follows the workload (list, then watch; re-list when the
watch ends) and judges every version with ``rollout_verdict``, logging kubectl's
progress line when it changes. With ``fail_fast``, a second thread follows the rollout's
new pods and fails the wait as soon as one is stuck (``pod_problem``), instead of waiting
out the progress deadline as kubectl does. ``wait_rollouts`` waits for many targets at
once, each with its own timeout, and cancels the rest when one fails.

kubectl's loop, which this mirrors (UntilWithSync over a field-selected list-watch):
https://github.com/kubernetes/kubectl/blob/release-1.32/pkg/cmd/rollout/rollout_status.go
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tasks.errors import InputError, RolloutError, RolloutFailed, ShiplineError, TransientError
from tasks.kube import Cluster
from tasks.pod_health import new_pods_selector, pod_problem, selector_string
from tasks.rollout_status import Verdict, rollout_verdict
from tasks.watch_source import LIST, Backoff, Change, Deadline, KubeSource, Source, follow

__all__ = [
    "KUBECTL_TIMEOUT",
    "ProgressLog",
    "WaitResult",
    "WaitTarget",
    "canonical_kind",
    "timeout_message",
    "wait_rollout",
    "wait_rollouts",
]

Logger = logging.Logger | logging.LoggerAdapter
_LOG = logging.getLogger(__name__)

# wait.ErrWaitTimeout's text, which kubectl prints when --timeout passes.
KUBECTL_TIMEOUT = "timed out waiting for the condition"

# kubectl's names for the kinds it has a status viewer for (short names included).
_KINDS = {
    "deployment": "Deployment",
    "deployments": "Deployment",
    "deploy": "Deployment",
    "statefulset": "StatefulSet",
    "statefulsets": "StatefulSet",
    "sts": "StatefulSet",
    "daemonset": "DaemonSet",
    "daemonsets": "DaemonSet",
    "ds": "DaemonSet",
}
# How often the waiting thread looks at the caller's stop event.
_STOP_POLL = 0.2
# How long a cancelled follower may take to let go (its watch socket is shut at once).
_JOIN_GRACE = 5.0


@dataclass(frozen=True)
class WaitTarget:
    """A workload to wait for; ``timeout`` in seconds, None waits forever (as kubectl)."""

    kind: str
    name: str
    namespace: str
    timeout: float | None


@dataclass(frozen=True)
class WaitResult:
    """How a wait ended: ``target`` as kubectl names it ("deployment/server")."""

    target: str
    ok: bool
    message: str
    seconds: float


class ProgressLog:
    """Log kubectl's status lines, each only when it differs from the previous one.

    kubectl prints its line on every watch event; re-lists and unrelated status updates
    would repeat it, so the same line twice in a row is said once.
    """

    def __init__(self, log: Logger, prefix: str = "") -> None:
        self._log = log
        self._prefix = prefix
        self.last = ""

    def say(self, message: str) -> bool:
        """Log ``message`` unless it repeats the last one; return whether it was logged."""
        if message == self.last:
            return False
        self.last = message
        self._log.info("%s%s", self._prefix, message)
        return True


def canonical_kind(kind: str) -> str:
    """The Kind for a name kubectl accepts (deployment, deploy, sts, ds, Kind.apps ...)."""
    base = kind.strip().lower().removesuffix(".apps")
    if base not in _KINDS:
        raise InputError(
            f"rollout status is not available for {kind!r}: use deployment, statefulset "
            "or daemonset (kubectl has no status viewer for other kinds)"
        )
    return _KINDS[base]


def timeout_message(target: str, timeout: float | None, last_status: str) -> str:
    """The timeout failure: kubectl's text, the time waited and the last status line."""
    waited = f" after {timeout:g}s" if timeout is not None else ""
    status = f"; last status: {last_status}" if last_status else ""
    return (
        f"{target}: {KUBECTL_TIMEOUT}{waited}{status}; check 'kubectl describe {target}' "
        "and its pods, or raise the timeout"
    )


def _failed(message: str, target: str, reason: str, **details: str | None) -> RolloutFailed:
    """A RolloutFailed that also carries what code may branch on (target, reason, pod)."""
    exc = RolloutFailed(message)
    exc.target = target  # type: ignore[attr-defined]
    exc.reason = reason  # type: ignore[attr-defined]
    exc.pod = details.get("pod")  # type: ignore[attr-defined]
    exc.container = details.get("container")  # type: ignore[attr-defined]
    return exc


class _Outcome:
    """The first thing that ends a wait (done, failed, error), shared by its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.event = threading.Event()
        self.message: str | None = None
        self.error: BaseException | None = None

    def succeed(self, message: str) -> None:
        with self._lock:
            if not self.event.is_set():
                self.message = message
                self.event.set()

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if not self.event.is_set():
                self.error = error
                self.event.set()


@dataclass
class _Wait:
    """One target's wait: what the workload thread and the pod thread share."""

    cluster: Cluster
    target: WaitTarget
    kind: str
    label: str
    deadline: Deadline
    cancel: threading.Event
    outcome: _Outcome
    progress: ProgressLog
    log: Logger
    watch_cap: float
    backoff: Callable[[], Backoff]
    latest: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._sources: list[Source] = []
        self._sources_lock = threading.Lock()

    def track(self, source: Source) -> Source:
        """Remember ``source`` so cancelling stops its watch at once."""
        with self._sources_lock:
            self._sources.append(source)
        if self.cancel.is_set():
            source.stop()
        return source

    def stop_all(self) -> None:
        """Cancel the wait and end the watches of its threads."""
        self.cancel.set()
        with self._sources_lock:
            sources = list(self._sources)
        for source in sources:
            source.stop()

    def follow(self, source: Source) -> Iterator[Change]:
        """Follow ``source`` within this wait's deadline, stopped by its cancel."""
        return follow(
            self.track(source),
            deadline=self.deadline,
            cancel=self.cancel,
            watch_cap=self.watch_cap,
            backoff=self.backoff(),
            log=self.log,
        )


def wait_rollout(
    cluster: Cluster,
    target: WaitTarget,
    *,
    log: Logger = _LOG,
    fail_fast: bool = True,
    stop: threading.Event | None = None,
    watch_cap: float = 60.0,
    clock: Callable[[], float] = time.monotonic,
) -> WaitResult:
    """Wait until ``target`` is rolled out, as ``kubectl rollout status --timeout`` does.

    Raises RolloutFailed when the progress deadline is exceeded, the Deployment is
    paused, the object is deleted, a new pod is stuck (``fail_fast``), or the timeout
    passes; RolloutError when the object does not exist or kubectl could not judge it
    (OnDelete strategy). Setting ``stop`` cancels the wait: the result is then not ok.
    ``watch_cap`` bounds each watch request (the server's ``timeoutSeconds``).
    """
    kind = canonical_kind(target.kind)
    label = f"{kind.lower()}/{target.name}"
    started = clock()
    wait = _Wait(
        cluster=cluster,
        target=target,
        kind=kind,
        label=label,
        deadline=Deadline.after(target.timeout, clock),
        cancel=threading.Event(),
        outcome=_Outcome(),
        # StatefulSet lines do not name the object ("Waiting for 1 pods to be ready..."),
        # so with many targets at once they get the target in front.
        progress=ProgressLog(log, f"{label}: " if kind == "StatefulSet" else ""),
        log=log,
        watch_cap=watch_cap,
        backoff=Backoff,
    )
    workers = [threading.Thread(target=_guarded(wait, _follow_workload), daemon=True)]
    if fail_fast:
        workers.append(threading.Thread(target=_guarded(wait, _follow_new_pods), daemon=True))
    for worker in workers:
        worker.start()
    cancelled = False
    while not wait.outcome.event.wait(_STOP_POLL):
        if stop is not None and stop.is_set():
            cancelled = True
            break
    wait.stop_all()
    for worker in workers:
        worker.join(_JOIN_GRACE)
    seconds = clock() - started
    if cancelled and not wait.outcome.event.is_set():
        return WaitResult(label, False, f"{label}: wait cancelled", seconds)
    if wait.outcome.error is not None:
        raise wait.outcome.error
    return WaitResult(label, True, wait.outcome.message or "", seconds)


def wait_rollouts(
    cluster: Cluster,
    targets: Sequence[WaitTarget],
    *,
    log: Logger = _LOG,
    fail_fast: bool = True,
    watch_cap: float = 60.0,
) -> list[WaitResult]:
    """Wait for every target at once, each with its own timeout; results in target order.

    The first failure cancels the other waits and is raised (RolloutFailed names the
    target, and for a stuck pod the pod, container and reason).
    """
    if not targets:
        return []
    for target in targets:
        canonical_kind(target.kind)  # refuse a bad kind before starting anything
    stop = threading.Event()
    first_error: list[BaseException] = []
    lock = threading.Lock()

    def run(target: WaitTarget) -> WaitResult | None:
        try:
            return wait_rollout(
                cluster, target, log=log, fail_fast=fail_fast, stop=stop, watch_cap=watch_cap
            )
        except BaseException as exc:
            with lock:
                if not first_error:
                    first_error.append(exc)
            stop.set()
            return None

    with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="wait-rollout") as pool:
        results = list(pool.map(run, targets))
    if first_error:
        others = [r.target for r in results if r is not None and not r.ok]
        if others:
            log.warning("cancelled the waits for %s after a failure", ", ".join(others))
        raise first_error[0]
    return [result for result in results if result is not None]


def _guarded(wait: _Wait, body: Callable[[_Wait], None]) -> Callable[[], None]:
    """Run ``body`` so that any error it raises ends the wait (threads cannot raise)."""

    def run() -> None:
        try:
            body(wait)
        except ShiplineError as exc:
            wait.outcome.fail(exc)
        except Exception as exc:
            wait.outcome.fail(
                ShiplineError(f"{wait.label}: the wait broke: {type(exc).__name__}: {exc}")
            )

    return run


def _follow_workload(wait: _Wait) -> None:
    """Judge each version of the workload until done, failed, timed out or cancelled."""
    target = wait.target
    source = KubeSource(wait.cluster, "apps/v1", wait.kind, target.namespace, name=target.name)
    seen = False
    for change in wait.follow(source):
        if change.type == "DELETED" or (change.type == LIST and not change.objects and seen):
            raise _failed(
                f"{wait.label} in namespace {target.namespace} was deleted while waiting for "
                "its rollout (kubectl: object has been deleted); check who deleted it",
                wait.label,
                "Deleted",
            )
        if change.type == LIST and not change.objects:
            raise RolloutError(
                f'{wait.kind.lower()}s.apps "{target.name}" not found in namespace '
                f"{target.namespace}; check the name and namespace, and that its manifest "
                "was applied"
            )
        seen = True
        obj = change.objects[0]
        wait.latest = obj
        if _judge(wait, rollout_verdict(obj)):
            return
    if not wait.cancel.is_set():
        wait.outcome.fail(
            _failed(
                timeout_message(wait.label, target.timeout, wait.progress.last),
                wait.label,
                "Timeout",
            )
        )


def _judge(wait: _Wait, verdict: Verdict) -> bool:
    """Act on one verdict; return True when the wait is over."""
    if verdict.state == "waiting":
        wait.progress.say(verdict.message)
        return False
    if verdict.state == "done":
        wait.progress.say(verdict.message)
        wait.outcome.succeed(verdict.message)
        return True
    namespace = wait.target.namespace
    if verdict.state == "failed" and verdict.reason in ("ProgressDeadlineExceeded", "Paused"):
        wait.outcome.fail(
            _failed(
                f"{wait.label} in namespace {namespace}: {verdict.message}"
                + (
                    "; see 'kubectl describe' of its newest ReplicaSet and pods"
                    if verdict.reason == "ProgressDeadlineExceeded"
                    else ""
                ),
                wait.label,
                verdict.reason,
            )
        )
    else:
        # kubectl stops with an error too: OnDelete strategy, revision mismatch, unknown kind.
        wait.outcome.fail(
            RolloutError(
                f"{wait.label} in namespace {namespace}: cannot wait for its rollout: "
                f"{verdict.message}"
            )
        )
    return True


def _follow_new_pods(wait: _Wait) -> None:
    """Fail the wait as soon as one of the rollout's new pods is stuck."""
    backoff = wait.backoff()
    while not wait.cancel.is_set() and not wait.deadline.expired():
        try:
            selector = _new_pods_selector(wait)
        except TransientError as exc:
            # Never a false failure: the workload thread reports the timeout if it lasts.
            wait.log.debug("%s: cannot find the new pods yet: %s", wait.label, exc)
            wait.cancel.wait(backoff.next_delay())
            continue
        backoff.reset()
        if selector is None:
            # The controller has not created the new ReplicaSet/revision yet.
            wait.cancel.wait(1.0)
            continue
        source = KubeSource(
            wait.cluster, "v1", "Pod", wait.target.namespace, label_selector=selector
        )
        for change in wait.follow(source):
            if change.type == "DELETED":
                continue
            for pod in change.objects:
                problem = pod_problem(pod)
                if problem is not None:
                    wait.outcome.fail(
                        _failed(
                            f"{wait.label} in namespace {wait.target.namespace}: new pod is "
                            f"stuck, {problem.reason}: {problem.message}",
                            wait.label,
                            problem.reason,
                            pod=problem.pod,
                            container=problem.container,
                        )
                    )
                    return
            if change.type == LIST and _selector_changed(wait, selector):
                break  # the template changed under us: follow the newer pods


def _selector_changed(wait: _Wait, selector: str) -> bool:
    try:
        return _new_pods_selector(wait) not in (None, selector)
    except TransientError:
        return False


def _new_pods_selector(wait: _Wait) -> str | None:
    """The label selector of the new pods, from the latest workload and its revisions."""
    workload = wait.latest
    if workload is None:
        return None
    spec_selector = (workload.get("spec") or {}).get("selector") or {}
    owned = selector_string(spec_selector)
    if wait.kind == "Deployment":
        replicasets, _ = _list(wait, "apps/v1", "ReplicaSet", owned)
        return new_pods_selector(workload, replicasets=replicasets)
    if wait.kind == "DaemonSet":
        revisions, _ = _list(wait, "apps/v1", "ControllerRevision", owned)
        return new_pods_selector(workload, controller_revisions=revisions)
    return new_pods_selector(workload)


def _list(wait: _Wait, api_version: str, kind: str, selector: str) -> tuple[list[dict], str]:
    source = KubeSource(
        wait.cluster, api_version, kind, wait.target.namespace, label_selector=selector
    )
    return source.list()
