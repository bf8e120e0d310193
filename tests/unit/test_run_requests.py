"""Arrival stamps and deployment names (the pure parts of deployments.run_requests)."""

from __future__ import annotations

import threading

import pytest

from deployments.run_requests import ArrivalStamps, check_deployment_name
from tasks.errors import InputError


def test_stamps_follow_the_clock_when_it_advances() -> None:
    ticks = iter([1_000, 2_000, 3_000])
    stamps = ArrivalStamps(clock=lambda: next(ticks))
    assert [stamps.next() for _ in range(3)] == [1_000, 2_000, 3_000]


def test_stamps_strictly_increase_when_the_clock_repeats_or_steps_back() -> None:
    ticks = iter([5_000, 5_000, 4_000, 5_001, 9_000])
    stamps = ArrivalStamps(clock=lambda: next(ticks))
    assert [stamps.next() for _ in range(5)] == [5_000, 5_001, 5_002, 5_003, 9_000]


def test_stamps_are_unique_across_threads() -> None:
    stamps = ArrivalStamps(clock=lambda: 7)
    seen: list[int] = []

    def take() -> None:
        seen.extend(stamps.next() for _ in range(500))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(7, 7 + 2000))


@pytest.mark.parametrize("name", ["deploy/deploy-on-merge", "my flow/prod"])
def test_deployment_names_accepted(name: str) -> None:
    assert check_deployment_name(name) == name


@pytest.mark.parametrize("name", ["deploy-on-merge", "a/b/c", "/x", "deploy/", "a/ b"])
def test_deployment_names_refused_with_the_expected_form(name: str) -> None:
    with pytest.raises(InputError, match="expected FLOW/DEPLOYMENT"):
        check_deployment_name(name)
