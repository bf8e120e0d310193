"""Fixtures for tests on the real local stack (`shipline stack up`).

Each test that touches the cluster gets a fresh namespace (as kr8s's suite does), so
tests never see each other's objects.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipline.stack.layout import StackLayout
from shipline.stack.lifecycle import StackState

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def stack() -> StackState:
    """The running stack; its endpoints exported to the environment of the tests."""
    import httpx

    state = StackState.load(StackLayout.from_env())
    if state is None:
        pytest.fail("the local stack is not up: run `shipline stack up` first")
    try:
        httpx.get(f"http://{state.registry}/v2/", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        pytest.fail(
            f"the stack's registry {state.registry} does not answer ({exc}): "
            "run `shipline stack up`"
        )
    os.environ["KUBECONFIG"] = state.kubeconfig
    os.environ["SHIPLINE_REGISTRY"] = state.registry
    if state.prefect_api_url:
        os.environ["PREFECT_API_URL"] = state.prefect_api_url
    return state


@pytest.fixture(scope="session")
def kube_api(stack: StackState):
    from kubernetes import config

    return config.new_client_from_config(config_file=stack.kubeconfig)


@pytest.fixture(scope="session")
def core(kube_api):
    from kubernetes import client

    return client.CoreV1Api(kube_api)


@pytest.fixture(scope="session")
def apps(kube_api):
    from kubernetes import client

    return client.AppsV1Api(kube_api)


@pytest.fixture(scope="session")
def docker_client(stack: StackState):
    import docker

    client = docker.from_env(timeout=300)
    yield client
    client.close()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, core) -> Iterator[str]:
    """A fresh namespace named after the test, deleted afterwards (without waiting)."""
    from kubernetes import client

    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def test_output(request: pytest.FixtureRequest) -> Path:
    """A folder under test-output/ for files a test keeps (screenshots, captured logs)."""
    root = Path(__file__).resolve().parents[2] / "test-output"
    folder = root / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
