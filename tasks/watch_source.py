"""Follow Kubernetes objects by list-then-watch, re-listing whenever a watch ends.

The wait loop needs every change to a workload (and its new pods) until a deadline, but a
watch is not forever: the server closes it after ``timeoutSeconds``, answers 410 Gone when
the resource version is too old, and drops it when the API server restarts. ``follow``
turns that into one stream of changes: it lists (a ``LIST`` change carrying every object),
watches from the list's resource version, and on any end lists again. Transient failures
(connection refused, 5xx) are retried with a short backoff until the deadline: a flaky
connection never turns into a failed rollout.

The loop is plain logic over a ``Source`` (list and watch as callables on dicts), with its
clock and sleep injected, so unit tests drive it with dict fixtures in milliseconds;
``KubeSource`` is the real source on the kubernetes client.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from tasks.errors import TransientError
from tasks.kube import Cluster, Refused, api_call

__all__ = [
    "LIST",
    "Backoff",
    "Change",
    "Deadline",
    "KubeSource",
    "Source",
    "follow",
    "watch_seconds",
]

LIST = "LIST"
_GONE = 410
# Extra seconds the client waits on a silent watch beyond the server's own timeout, so a
# half-open connection (API server killed) ends the read instead of hanging forever.
_READ_GRACE = 10.0

Logger = logging.Logger | logging.LoggerAdapter
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deadline:
    """A point on ``clock`` after which waiting stops; ``at`` None waits forever."""

    at: float | None
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(cls, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline ``seconds`` from now (None: no deadline)."""
        return cls(None if seconds is None else clock() + seconds, clock)

    def remaining(self) -> float | None:
        """Seconds left (never below 0), or None without a deadline."""
        return None if self.at is None else max(0.0, self.at - self.clock())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.at is not None and self.clock() >= self.at


def watch_seconds(remaining: float | None, cap: float) -> int:
    """The ``timeoutSeconds`` of the next watch: the time left, at most ``cap``, at least 1.

    The API takes whole seconds; rounding up keeps the watch open until the deadline
    rather than ending it a fraction early and re-listing for nothing.
    """
    limit = cap if remaining is None else min(cap, remaining)
    return max(1, math.ceil(limit))


@dataclass
class Backoff:
    """Delays between retries after transient failures: doubling from ``first`` to ``most``."""

    first: float = 0.5
    most: float = 5.0
    _next: float = field(default=0.0, init=False)

    def next_delay(self) -> float:
        """The delay before the next retry (and double it for the one after)."""
        delay = self._next or self.first
        self._next = min(self.most, delay * 2)
        return delay

    def reset(self) -> None:
        """Start again from ``first`` (after a call succeeded)."""
        self._next = 0.0


@dataclass(frozen=True)
class Change:
    """One step of the followed state.

    ``type`` is ``LIST`` (``objects`` is everything the list returned: a fresh start) or a
    watch event type (ADDED, MODIFIED, DELETED) with the one object it carries.
    """

    type: str
    objects: tuple[dict[str, Any], ...]


class Source(Protocol):
    """What ``follow`` needs: list with a resource version, watch from one, stop a watch."""

    description: str

    def list(self) -> tuple[list[dict[str, Any]], str]:
        """The objects (with kind and apiVersion) and the list's resourceVersion."""

    def watch(self, resource_version: str, seconds: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event type, object) from ``resource_version`` on, for at most ``seconds``."""

    def stop(self) -> None:
        """End the watch in progress now (called from another thread)."""


def follow(
    source: Source,
    *,
    deadline: Deadline,
    cancel: threading.Event,
    watch_cap: float = 60.0,
    backoff: Backoff | None = None,
    sleep: Callable[[float], Any] | None = None,
    log: Logger = _LOG,
) -> Iterator[Change]:
    """Yield ``source``'s changes until ``deadline`` passes or ``cancel`` is set.

    Each round lists (yielding a ``LIST`` change) and then watches from the list's
    resource version for at most ``watch_cap`` seconds (and never past the deadline).
    A watch that ends, expires (410 Gone) or breaks leads to a new round. Transient
    errors are logged once per kind of trouble and retried after a backoff; any other
    error propagates. The generator simply ends at the deadline or on cancel: the caller
    tells them apart.
    """
    backoff = backoff or Backoff()
    sleep = sleep or cancel.wait
    last_trouble = ""
    while not cancel.is_set() and not deadline.expired():
        try:
            objects, resource_version = source.list()
            backoff.reset()
            if last_trouble:
                log.info("%s: the API server answers again", source.description)
                last_trouble = ""
            yield Change(LIST, tuple(objects))
            if cancel.is_set():
                return
            seconds = watch_seconds(deadline.remaining(), watch_cap)
            for event_type, obj in source.watch(resource_version, seconds):
                if event_type in ("ADDED", "MODIFIED", "DELETED"):
                    yield Change(event_type, (obj,))
                if cancel.is_set() or deadline.expired():
                    return
        except Refused as exc:
            if exc.status != _GONE:
                raise
            # The resource version is too old for the watch cache: list afresh.
            log.debug("%s: watch expired (410 Gone), listing again", source.description)
        except TransientError as exc:
            if str(exc) != last_trouble:
                log.warning("%s: %s; retrying", source.description, exc)
                last_trouble = str(exc)
            delay = backoff.next_delay()
            remaining = deadline.remaining()
            sleep(delay if remaining is None else min(delay, remaining))


class KubeSource:
    """A ``Source`` over the kubernetes client: one named object, or a label selection."""

    def __init__(
        self,
        cluster: Cluster,
        api_version: str,
        kind: str,
        namespace: str,
        *,
        name: str | None = None,
        label_selector: str | None = None,
    ) -> None:
        self._cluster = cluster
        self._api_version = api_version
        self._kind = kind
        self._namespace = namespace
        # The API filters a watch by name only through a field selector.
        self._field_selector = f"metadata.name={name}" if name else None
        self._label_selector = label_selector or None
        self._lock = threading.Lock()
        self._watcher: Any = None
        self._stopped = False
        what = f"{kind.lower()}/{name}" if name else f"{kind.lower()}s ({label_selector})"
        self.description = f"{what} in namespace {namespace}"

    def _resource(self) -> Any:
        resource = self._cluster.resource(self._api_version, self._kind)
        if resource is None:
            raise TransientError(
                f"the cluster does not serve {self._kind} in {self._api_version} (yet)"
            )
        return resource

    def list(self) -> tuple[list[dict[str, Any]], str]:
        """List the objects; list items lack kind and apiVersion, so set them."""
        resource = self._resource()
        with api_call(f"listing {self.description}"):
            result = resource.get(
                namespace=self._namespace,
                field_selector=self._field_selector,
                label_selector=self._label_selector,
            ).to_dict()
        items = []
        for item in result.get("items") or []:
            item.setdefault("kind", self._kind)
            item.setdefault("apiVersion", self._api_version)
            items.append(item)
        return items, (result.get("metadata") or {}).get("resourceVersion", "")

    def watch(self, resource_version: str, seconds: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """Watch from ``resource_version`` (kubernetes ``watch.Watch().stream``)."""
        from kubernetes import watch

        resource = self._resource()
        watcher = watch.Watch()
        with self._lock:
            if self._stopped:
                return
            self._watcher = watcher
        try:
            with api_call(f"watching {self.description}"):
                for event in watcher.stream(
                    resource.get,
                    namespace=self._namespace,
                    field_selector=self._field_selector,
                    label_selector=self._label_selector,
                    resource_version=resource_version,
                    timeout_seconds=seconds,
                    serialize=False,
                    _request_timeout=(10, seconds + _READ_GRACE),
                ):
                    if self._stopped:
                        return
                    yield event["type"], event["raw_object"]
        except TransientError:
            if self._stopped:  # the socket shut by stop() reads as a broken connection
                return
            raise
        finally:
            with self._lock:
                self._watcher = None

    def stop(self) -> None:
        """End the watch in progress (shuts its socket) and refuse new ones."""
        with self._lock:
            self._stopped = True
            watcher = self._watcher
        if watcher is not None:
            watcher.stop()
