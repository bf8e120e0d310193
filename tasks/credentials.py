"""The credentials a run holds without being told: kube tokens and registry passwords.

Their values join the run's masks so that no log line, artifact, event or error can show
them, even when a server echoes a request back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

# Keys whose values authenticate a user: static ones, and what auth providers cache.
_KUBE_SECRET_KEYS = frozenset(
    {
        "token",
        "password",
        "client-key-data",
        "id-token",
        "refresh-token",
        "access-token",
        "client-secret",
    }
)


def kubeconfig_secrets(path: str | None) -> list[str]:
    """Token, password and key values in the kubeconfig at `path`, whatever its shape.

    `path` may list files as $KUBECONFIG does; None means the kubeconfig kubectl would
    read (see `tasks.kube.kubeconfig_path`). Files that cannot be read or parsed give
    nothing: `Cluster.connect` reports them with its own message.
    """
    from tasks.kube import kubeconfig_path

    values: list[str] = []
    for entry in kubeconfig_path(path).split(os.pathsep):
        if entry:
            values += _file_secrets(Path(os.path.expanduser(entry)))
    return list(dict.fromkeys(values))


def _file_secrets(path: Path) -> list[str]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return []
    return list(_secret_values(document))


def _secret_values(document: Any) -> Iterator[str]:
    """Values under a secret key anywhere in `document` (iterative: YAML aliases may loop)."""
    pending, seen = [document], set()
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _KUBE_SECRET_KEYS and _is_scalar(value):
                    yield str(value)
                else:
                    pending.append(value)
        elif isinstance(node, list):
            pending.extend(node)


def _is_scalar(value: Any) -> bool:
    # A boolean is no secret, and masking "True" would garble every log.
    return isinstance(value, str | int | float) and not isinstance(value, bool) and str(value) != ""


def registry_secrets(registries: list[str]) -> list[str]:
    """The passwords or identity tokens the docker config holds for `registries`."""
    from tasks.errors import ShiplineError
    from tasks.registry import registry_credentials

    values = []
    for registry in dict.fromkeys(registries):
        try:
            found = registry_credentials(registry)
        except ShiplineError:
            continue  # the build reports an unreadable docker config itself
        if found and found[1]:
            values.append(found[1])
    return values
