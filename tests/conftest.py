"""Test-suite wide settings.

- The stack's endpoints are exported before any test module imports Prefect: Prefect
  reads PREFECT_API_URL when it is imported, and a test module that imports it first
  would otherwise send its task runs to a temporary server of its own.
- Stack-restarting (serial) tests run last, one at a time.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    from shipline.run_cli import use_stack_defaults

    # The stack's kubeconfig (even where a ~/.kube/config exists: tests act on the stack
    # only), registry and Prefect server when the stack is up; nothing changes when it is
    # not (unit tests need none of it).
    use_stack_defaults(prefer_stack=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests marked `serial` restart shared components of the stack (registry, API server,
    # the whole stack): run them after everything else so no other test sees the outage.
    items.sort(key=lambda item: item.get_closest_marker("serial") is not None)
