"""Test-suite wide settings: stack-restarting (serial) tests run last, one at a time."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests marked `serial` restart shared components of the stack (registry, API server,
    # the whole stack): run them after everything else so no other test sees the outage.
    items.sort(key=lambda item: item.get_closest_marker("serial") is not None)
