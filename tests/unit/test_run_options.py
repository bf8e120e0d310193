"""The run's options: namespaces Kubernetes accepts, and a sane --timeout."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from flows.commit import MAX_TIMEOUT, check_namespace, check_timeout, run_options
from tasks.errors import InputError


def options(tmp_path: Path, **kwargs):
    pipeline = tmp_path / "okteto-pipeline.yaml"
    pipeline.write_text("deploy:\n  - echo hi\n", encoding="utf-8")
    environ = kwargs.pop("environ", {"HOME": str(tmp_path)})
    return run_options(pipeline, commit="abc", branch="main", environ=environ, **kwargs)


@pytest.mark.parametrize("name", ["a", "kc-run", "pr12er", "0", "a-b-c9", "x" * 63])
def test_valid_namespaces(tmp_path: Path, name: str):
    assert check_namespace(name) == name
    assert options(tmp_path, namespace=name).namespace == name


@pytest.mark.parametrize(
    "name",
    ["Bad_NS!", "UPPER", "under_score", "-lead", "trail-", "dot.ted", "sp ace", "é", "x" * 64],
)
def test_invalid_namespaces_are_input_errors_naming_the_value(tmp_path: Path, name: str):
    with pytest.raises(InputError) as raised:
        options(tmp_path, namespace=name)
    message = str(raised.value)
    assert raised.value.exit_code == 2
    assert repr(name) in message
    assert "RFC 1123 label" in message and "at most 63 characters" in message


def test_a_too_long_namespace_says_how_long(tmp_path: Path):
    with pytest.raises(InputError, match=r"\(it has 64\)"):
        check_namespace("x" * 64)


def test_no_namespace_is_not_checked(tmp_path: Path):
    assert options(tmp_path, namespace=None).namespace is None
    assert options(tmp_path, namespace="").namespace is None


def _kubeconfig(tmp_path: Path, namespace: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "contexts:\n"
        f"- name: c\n  context: {{cluster: k, user: u, namespace: '{namespace}'}}\n"
        "current-context: c\n",
        encoding="utf-8",
    )
    return str(path)


def test_the_kubeconfig_context_namespace_is_checked_too(tmp_path: Path):
    environ = {"KUBECONFIG": _kubeconfig(tmp_path, "Bad_NS")}
    built = options(tmp_path, environ=environ)
    with pytest.raises(InputError) as raised:
        built.kube_namespace(None, None)
    message = str(raised.value)
    assert "the namespace of the kubeconfig's current context 'Bad_NS' is not a valid" in message
    assert "kubectl config set-context" in message


def test_a_valid_kubeconfig_context_namespace_passes(tmp_path: Path):
    environ = {"KUBECONFIG": _kubeconfig(tmp_path, "from-context")}
    assert options(tmp_path, environ=environ).kube_namespace(None, None) == "from-context"


@pytest.mark.parametrize("seconds", [0.001, 1, 600, 600.5, MAX_TIMEOUT])
def test_sane_timeouts(seconds: float):
    assert check_timeout(seconds) == seconds


@pytest.mark.parametrize(
    "seconds", [-5, 0, -0.0, math.nan, math.inf, -math.inf, MAX_TIMEOUT + 1, 1e300]
)
def test_nonsense_timeouts_are_input_errors(seconds: float):
    with pytest.raises(InputError) as raised:
        check_timeout(seconds)
    assert raised.value.exit_code == 2
    message = str(raised.value)
    assert message.startswith(f"--timeout {seconds:g}:")
    assert "greater than 0" in message and "24 hours" in message


@pytest.mark.parametrize(
    ("home_config", "prefer_stack", "expected"),
    [(False, False, "stack"), (True, False, None), (True, True, "stack")],
)
def test_the_cluster_is_kubectls_default_before_the_stacks(
    home_config: bool,
    prefer_stack: bool,
    expected: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # KUBECONFIG unset: kubectl acts on ~/.kube/config, so a deploy does too; the demo
    # (prefer_stack) deploys to the stack it brought up.
    import json

    from shipline.run_cli import use_stack_defaults

    stack_dir = tmp_path / "stack"
    stack_dir.mkdir()
    state = {"kubeconfig": "stack", "registry": "127.0.0.1:5000", "prefect_api_url": ""}
    (stack_dir / "stack.json").write_text(json.dumps(state))
    if home_config:
        (tmp_path / ".kube").mkdir()
        (tmp_path / ".kube" / "config").write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SHIPLINE_STACK_DIR", str(stack_dir))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("SHIPLINE_REGISTRY", raising=False)
    use_stack_defaults(prefer_stack=prefer_stack)
    assert os.environ.get("KUBECONFIG") == expected
    assert os.environ["SHIPLINE_REGISTRY"] == "127.0.0.1:5000"
