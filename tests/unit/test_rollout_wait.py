"""The pure parts of wait-rollout: the list-watch loop, time arithmetic, message de-duplication.

The loop runs over a ``Source`` made of plain dict fixtures (lists and watch events as the
API returns them), with its clock and sleep injected: no cluster, no real time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.errors import InputError, RolloutError, RolloutFailed, TransientError
from tasks.kube import Refused
from tasks.rollout_status import rollout_verdict
from tasks.rollout_wait import (
    KUBECTL_TIMEOUT,
    ProgressLog,
    _judge,
    _Outcome,
    _Wait,
    canonical_kind,
    timeout_message,
)
from tasks.watch_source import LIST, Backoff, Change, Deadline, follow, watch_seconds

ROLLOUT = Path(__file__).parent / "testdata" / "rollout"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def deployment(rv: str, updated: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "server", "resourceVersion": rv, "generation": 1},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 1,
            "replicas": 2,
            "updatedReplicas": updated,
            "availableReplicas": updated,
        },
    }


class ScriptedSource:
    """Lists and watches from a script: each round is (list result or error, watch events)."""

    description = "deployment/server in namespace t"

    def __init__(self, rounds: list[tuple[Any, list[Any]]], clock: FakeClock | None = None):
        self.rounds = list(rounds)
        self.clock = clock
        self.watch_calls: list[tuple[str, int]] = []
        self.stopped = False

    def list(self) -> tuple[list[dict[str, Any]], str]:
        listed, self._events = self.rounds.pop(0)
        if isinstance(listed, Exception):
            raise listed
        return listed, f"rv{len(self.rounds)}"

    def watch(self, resource_version: str, seconds: int) -> Iterator[tuple[str, dict]]:
        self.watch_calls.append((resource_version, seconds))
        for event in self._events:
            if isinstance(event, Exception):
                raise event
            if isinstance(event, float) and self.clock:  # time passing inside the watch
                self.clock.now += event
                continue
            yield event

    def stop(self) -> None:
        self.stopped = True


def run(source: ScriptedSource, clock: FakeClock, timeout: float | None, **kwargs) -> tuple:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    changes = []
    for change in follow(
        source, deadline=Deadline.after(timeout, clock), cancel=threading.Event(),
        sleep=sleep, **kwargs,
    ):  # fmt: skip
        changes.append(change)
    return changes, sleeps


# --- time arithmetic -------------------------------------------------------------------


def test_deadline_counts_down_and_expires_on_the_injected_clock():
    clock = FakeClock()
    deadline = Deadline.after(30, clock)
    assert deadline.remaining() == 30
    clock.now += 29.5
    assert deadline.remaining() == 0.5 and not deadline.expired()
    clock.now += 1
    assert deadline.remaining() == 0 and deadline.expired()


def test_no_deadline_never_expires():
    clock = FakeClock()
    deadline = Deadline.after(None, clock)
    clock.now += 1e9
    assert deadline.remaining() is None and not deadline.expired()


@pytest.mark.parametrize(
    ("remaining", "cap", "expected"),
    [
        (None, 300, 300),  # no deadline: the cap
        (1000, 300, 300),  # far deadline: the cap
        (12.2, 300, 13),  # whole seconds, rounded up to reach the deadline
        (0.01, 300, 1),  # the API refuses 0 (it would mean "server default")
        (0, 300, 1),
        (5, 1, 1),  # a tiny cap (tests of early-closed watches)
    ],
)
def test_watch_seconds_is_bounded_by_the_deadline_and_the_cap(remaining, cap, expected):
    assert watch_seconds(remaining, cap) == expected


def test_backoff_doubles_up_to_its_ceiling_and_resets():
    backoff = Backoff(first=0.5, most=3)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1, 2, 3, 3]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_timeout_message_is_kubectls_plus_the_last_status():
    message = timeout_message(
        "deployment/server",
        2,
        'Waiting for deployment "server" rollout to finish: 0 of 1 updated replicas are '
        "available...",
    )
    assert message.startswith(f"deployment/server: {KUBECTL_TIMEOUT} after 2s; last status: ")
    assert "0 of 1 updated replicas are available" in message
    assert "kubectl describe deployment/server" in message
    assert KUBECTL_TIMEOUT in timeout_message("ds/x", None, "")


# --- message de-duplication ---------------------------------------------------------------


def test_progress_log_says_each_line_once_in_a_row(caplog):
    logger = logging.getLogger("test.progress")
    progress = ProgressLog(logger)
    lines = ["a", "a", "b", "b", "b", "a", "done"]
    with caplog.at_level(logging.INFO, logger="test.progress"):
        said = [progress.say(line) for line in lines]
    assert said == [True, False, True, False, False, True, True]
    assert [r.getMessage() for r in caplog.records] == ["a", "b", "a", "done"]
    assert progress.last == "done"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("deployment", "Deployment"),
        ("Deployment", "Deployment"),
        ("deploy", "Deployment"),
        ("deployments.apps", "Deployment"),
        ("sts", "StatefulSet"),
        ("statefulset", "StatefulSet"),
        ("ds", "DaemonSet"),
        ("DaemonSet", "DaemonSet"),
    ],
)
def test_canonical_kind_accepts_kubectls_names(kind, expected):
    assert canonical_kind(kind) == expected


def test_canonical_kind_refuses_kinds_without_rollout_status():
    with pytest.raises(InputError, match=r"'service'.*deployment, statefulset or daemonset"):
        canonical_kind("service")


# --- the list-watch loop ------------------------------------------------------------------


def test_follow_lists_then_watches_from_the_lists_resource_version():
    clock = FakeClock()
    source = ScriptedSource(
        [([deployment("1", 0)], [("MODIFIED", deployment("2", 1)), ("BOOKMARK", {}), 100.0])],
        clock,
    )
    changes, sleeps = run(source, clock, timeout=60)
    assert [c.type for c in changes] == [LIST, "MODIFIED"]
    assert changes[1].objects[0]["status"]["updatedReplicas"] == 1
    assert source.watch_calls == [("rv0", 60)]
    assert sleeps == []


def test_follow_relists_when_the_server_ends_the_watch():
    clock = FakeClock()
    source = ScriptedSource(
        [
            ([deployment("1", 0)], [5.0]),  # the watch ends after 5 s without events
            ([deployment("2", 1)], [("MODIFIED", deployment("3", 2)), 100.0]),
        ],
        clock,
    )
    changes, _ = run(source, clock, timeout=60, watch_cap=5)
    assert [c.type for c in changes] == [LIST, LIST, "MODIFIED"]
    assert [c.objects[0]["metadata"]["resourceVersion"] for c in changes] == ["1", "2", "3"]
    assert source.watch_calls == [("rv1", 5), ("rv0", 5)]


def test_follow_relists_at_once_after_410_gone():
    clock = FakeClock()
    gone = Refused("watching deployment/server: too old resource version", 410)
    source = ScriptedSource(
        [([deployment("1", 0)], [gone]), ([deployment("9", 2)], [100.0])], clock
    )
    changes, sleeps = run(source, clock, timeout=60)
    assert [c.type for c in changes] == [LIST, LIST]
    assert sleeps == []


def test_follow_retries_transient_errors_with_backoff_until_the_deadline(caplog):
    clock = FakeClock()
    refused = TransientError("listing: cannot reach the API server (connection refused)")
    source = ScriptedSource(
        [([deployment("1", 0)], [refused])] + [(refused, [])] * 3 + [([deployment("2", 2)], [])]
        + [(refused, [])] * 50,
        clock,
    )  # fmt: skip
    with caplog.at_level(logging.INFO):
        changes, sleeps = run(source, clock, timeout=10, backoff=Backoff(first=0.5, most=2))
    # No error escapes: the loop just ends at the deadline, never a false failure.
    assert [c.type for c in changes] == [LIST, LIST]
    assert sleeps[:4] == [0.5, 1, 2, 2]
    assert sum(sleeps) == pytest.approx(10)  # the last sleep is cut to the deadline
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # the same trouble is said once per outage
    assert any("answers again" in r.getMessage() for r in caplog.records)


def test_follow_lets_permanent_errors_through():
    clock = FakeClock()
    forbidden = Refused("listing deployment/server: forbidden", 403)
    source = ScriptedSource([(forbidden, [])], clock)
    with pytest.raises(Refused, match="forbidden"):
        run(source, clock, timeout=10)


def test_follow_stops_when_cancelled():
    clock = FakeClock()
    cancel = threading.Event()
    source = ScriptedSource(
        [([deployment("1", 0)], [("MODIFIED", deployment("2", 1))] * 5)] * 3, clock
    )
    seen = []
    for change in follow(source, deadline=Deadline.after(None, clock), cancel=cancel):
        seen.append(change)
        if change.type == "MODIFIED":
            cancel.set()
    assert [c.type for c in seen] == [LIST, "MODIFIED"]


def test_change_carries_every_listed_object():
    change = Change(LIST, ({"a": 1}, {"b": 2}))
    assert len(change.objects) == 2


# --- verdicts turned into outcomes -------------------------------------------------------


def fixture(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROLLOUT / name).read_text())


def judged(name: str) -> tuple[bool, _Outcome, list[str]]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger(f"test.judge.{name}")
    logger.addHandler(Collect())
    logger.setLevel(logging.INFO)
    wait = _Wait(
        cluster=None,  # type: ignore[arg-type]  # judging does no I/O
        target=None,  # type: ignore[arg-type]
        kind="Deployment",
        label="deployment/server",
        deadline=Deadline.after(None),
        cancel=threading.Event(),
        outcome=_Outcome(),
        progress=ProgressLog(logger),
        log=logger,
        watch_cap=1,
        backoff=Backoff,
    )
    object.__setattr__(wait, "target", type("T", (), {"namespace": "prod"})())
    over = _judge(wait, rollout_verdict(fixture(name)))
    return over, wait.outcome, lines


def test_a_waiting_verdict_logs_kubectls_line_and_goes_on():
    over, outcome, lines = judged("deployment-progressing.yaml")
    assert not over and not outcome.event.is_set()
    assert lines and lines[0].startswith("Waiting for deployment ")


def test_a_done_verdict_ends_the_wait_ok():
    over, outcome, _ = judged("deployment-complete.yaml")
    assert over and outcome.error is None and "successfully rolled out" in outcome.message


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("deployment-deadline-exceeded.yaml", "ProgressDeadlineExceeded"),
        ("deployment-paused.yaml", "Paused"),
    ],
)
def test_deadline_and_paused_are_rollout_failures(name, reason):
    over, outcome, _ = judged(name)
    assert over and isinstance(outcome.error, RolloutFailed)
    assert outcome.error.reason == reason
    assert str(outcome.error).startswith("deployment/server in namespace prod: ")


def test_a_verdict_kubectl_refuses_is_a_rollout_error():
    over, outcome, _ = judged("statefulset-ondelete.yaml")
    assert over and type(outcome.error) is RolloutError
    assert "cannot wait for its rollout" in str(outcome.error)
