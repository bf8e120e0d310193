"""The credentials a run holds without being told: kube tokens and registry passwords.

Their values join the run's masks so that no log line, artifact, event or error can show
them, even when a server echoes a request back.
"""

from __future__ import annotations

from pathlib import Path

import yaml

_KUBE_USER_SECRETS = ("token", "password", "client-key-data")


def kubeconfig_secrets(path: str | None) -> list[str]:
    """Token, password and key values of every user in the kubeconfig at `path`."""
    if not path or not Path(path).is_file():
        return []
    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return []  # Cluster.connect reports a broken kubeconfig with its own message
    values = []
    for entry in config.get("users") or []:
        user = (entry or {}).get("user") or {}
        values += [str(user[key]) for key in _KUBE_USER_SECRETS if user.get(key)]
    return values


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
