"""The default namespace kubectl would use, read from the kubeconfig with pyyaml only.

Mirrors client-go's loader (tools/clientcmd/loader.go ``ClientConfigLoadingRules``):
``--kubeconfig`` names the only file; else ``KUBECONFIG`` lists files (``:``-separated,
missing ones ignored) whose entries merge with the first file winning; else
``~/.kube/config``. The context is ``--context`` or the merged ``current-context``; its
``namespace`` is the default. In a pod without a kubeconfig, kubectl uses the service
account's namespace (``POD_NAMESPACE`` or the service account file), as here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tasks.errors import InputError

__all__ = [
    "IN_CLUSTER_NAMESPACE_FILE",
    "context_namespace",
    "kubeconfig_files",
    "namespace_overlay",
]

IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def kubeconfig_files(environ: Mapping[str, str], kubeconfig: str | None = None) -> list[Path]:
    """The kubeconfig files kubectl would read, in precedence order (existing ones only)."""
    if kubeconfig:
        return [Path(kubeconfig)]
    listed = environ.get("KUBECONFIG", "")
    if listed:
        paths = [Path(p) for p in listed.split(os.pathsep) if p]
        return [p for p in dict.fromkeys(paths) if p.is_file()]
    home = environ.get("HOME") or os.path.expanduser("~")
    default = Path(home) / ".kube" / "config"
    return [default] if default.is_file() else []


def context_namespace(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    in_cluster_file: Path = IN_CLUSTER_NAMESPACE_FILE,
) -> str | None:
    """The namespace of ``context`` (default: the current context), or ``None`` if unset.

    Raises :class:`InputError` when a named kubeconfig file is missing or not YAML, or when
    ``context`` is named but defined nowhere (kubectl refuses both too).
    """
    env = os.environ if environ is None else environ
    files = kubeconfig_files(env, kubeconfig)
    if kubeconfig and not files[0].is_file():
        raise InputError(
            f"kubeconfig {kubeconfig} does not exist: check the --kubeconfig path in the "
            "pipeline line"
        )
    if not files:
        # client-go falls back to the in-cluster config only inside a pod.
        if context is None and env.get("KUBERNETES_SERVICE_HOST"):
            return env.get("POD_NAMESPACE") or _in_cluster_namespace(in_cluster_file)
        return None
    documents = [_read_kubeconfig(path) for path in files]
    chosen = context or _first(doc.get("current-context") for doc in documents)
    if not chosen:
        return None
    entry = _find_context(documents, chosen)
    if entry is None:
        if context is not None:
            names = ", ".join(str(p) for p in files)
            raise InputError(
                f'context "{context}" does not exist in the kubeconfig ({names}): check '
                "the --context flag or run `kubectl config get-contexts`"
            )
        return None
    namespace = entry.get("namespace")
    return namespace if isinstance(namespace, str) and namespace else None


def namespace_overlay(namespace: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """A kubeconfig that gives the current context ``namespace``, and the files it goes before.

    Returns ``(yaml_text, kubeconfig_list)``: with ``KUBECONFIG`` set to a file holding the
    text, then ``:``, then the list, kubectl (and client-go) in a shell line uses the run's
    namespace, as ``okteto deploy`` sets it for its commands. The overlay redefines only
    the current context (same name, cluster and user; first file wins when merging), so
    credentials stay where they are and ``--context`` still picks any other.
    ``None`` when there is no kubeconfig or no current context to carry the namespace.
    """
    files = kubeconfig_files(environ)
    if not files:
        return None
    documents = [_read_kubeconfig(path) for path in files]
    current = _first(doc.get("current-context") for doc in documents)
    entry = _find_context(documents, current) if current else None
    if entry is None:
        return None
    overlay = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": current,
        "contexts": [{"name": current, "context": {**entry, "namespace": namespace}}],
    }
    listed = os.pathsep.join(str(path.absolute()) for path in files)
    return yaml.safe_dump(overlay, sort_keys=False), listed


def _read_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"kubeconfig {path} cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise InputError(
            f"kubeconfig {path} is not valid YAML: {exc}; check the file or KUBECONFIG"
        ) from exc
    return data if isinstance(data, dict) else {}


def _find_context(documents: Sequence[dict[str, Any]], name: str) -> dict[str, Any] | None:
    # Merging keeps the first definition of a name (clientcmd's mergo, first file wins).
    for document in documents:
        for item in document.get("contexts") or []:
            if isinstance(item, dict) and item.get("name") == name:
                body = item.get("context")
                return body if isinstance(body, dict) else {}
    return None


def _first(values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value:
            return value
    return None


def _in_cluster_namespace(path: Path) -> str | None:
    try:
        namespace = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return namespace or None
