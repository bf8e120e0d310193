"""The one seam to the Kubernetes API.

Everything above this module works on plain dicts (the JSON form of objects). Calls go
through the kubernetes client's DynamicClient (discovery, apply, patch, watch), and every
failure is classified here, once, into shipline's error tree (`tasks.errors`):
connection problems, timeouts, 429 and 5xx are `TransientError` (retrying can help);
everything else keeps its meaning and says what to check.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.errors import InputError, RolloutError, ShiplineError, TransientError

FIELD_MANAGER = "shipline"


class NotFound(RolloutError):
    """The object does not exist (HTTP 404)."""


class Unauthorized(ShiplineError):
    """The cluster refused the credentials (401) or the permission (403)."""

    exit_code = 2


class Refused(ShiplineError):
    """The cluster refused a request for a reason retrying cannot fix (400, 409, 422)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _server_message(exc: Any) -> str:
    """The `message` of the API's Status body, else the reason phrase."""
    import json

    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body:
        try:
            return json.loads(body).get("message") or str(body)[:500]
        except (ValueError, AttributeError):
            return str(body)[:500]
    return str(getattr(exc, "reason", "") or exc)


def classify(exc: BaseException, action: str) -> ShiplineError:
    """Turn a client exception into shipline's tree; `action` says what was being done."""
    import urllib3.exceptions
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ShiplineError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status or 0
        message = _server_message(exc)
        if status == 0 or status == 429 or status >= 500:
            return TransientError(f"{action}: the API server answered {status}: {message}")
        if status == 404:
            return NotFound(f"{action}: not found ({message})")
        if status in (401, 403):
            return Unauthorized(
                f"{action}: the cluster refused the credentials or permission ({status}: "
                f"{message}); check the kubeconfig's user and its RBAC rights"
            )
        return Refused(f"{action}: {message}", status)
    if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError)):
        return TransientError(
            f"{action}: cannot reach the API server ({type(exc).__name__}: {exc}); check that "
            "the cluster runs (`shipline stack status`) and KUBECONFIG points at it"
        )
    return ShiplineError(f"{action}: {type(exc).__name__}: {exc}")


@contextmanager
def api_call(action: str) -> Iterator[None]:
    """Run API calls, re-raising their failures classified (see `classify`)."""
    try:
        yield
    except ShiplineError:
        raise
    except Exception as exc:
        raise classify(exc, action) from exc


def kubeconfig_path(explicit: str | None = None) -> str:
    """The kubeconfig to use: `explicit`, else $KUBECONFIG (first entry), else ~/.kube/config."""
    if explicit:
        return explicit
    env = os.environ.get("KUBECONFIG", "")
    first = env.split(os.pathsep)[0] if env else ""
    return first or str(Path.home() / ".kube" / "config")


@dataclass
class Cluster:
    """A connection to one cluster: the DynamicClient plus the context's namespace."""

    api_client: Any
    namespace: str = "default"
    _dynamic: Any = field(default=None, repr=False)

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Cluster:
        """Load the kubeconfig (errors name the file and what is wrong with it)."""
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        path = kubeconfig_path(kubeconfig)
        if not Path(path).is_file():
            raise InputError(
                f"kubeconfig {path} does not exist; set KUBECONFIG (for the local stack: "
                '`eval "$(shipline stack env)"`) or pass --kubeconfig'
            )
        try:
            api_client = config.new_client_from_config(config_file=path, context=context)
            _, active = config.list_kube_config_contexts(config_file=path)
            if context:
                contexts, _ = config.list_kube_config_contexts(config_file=path)
                active = next(c for c in contexts if c["name"] == context)
        except (ConfigException, StopIteration, ValueError, TypeError, KeyError) as exc:
            raise InputError(
                f"kubeconfig {path} cannot be used: {exc or type(exc).__name__}; check its "
                "current-context, clusters and users"
            ) from exc
        except Exception as exc:  # yaml errors and the like from a broken file
            raise InputError(f"kubeconfig {path} is not valid: {exc}") from exc
        namespace = (active or {}).get("context", {}).get("namespace") or "default"
        return cls(api_client=api_client, namespace=namespace)

    @property
    def dynamic(self) -> Any:
        """The DynamicClient (lazy discovery, cached per server in the temp folder)."""
        if self._dynamic is None:
            from kubernetes.dynamic import DynamicClient

            host = self.api_client.configuration.host
            with api_call(f"discovering the resources of the API server {host}"):
                self._dynamic = DynamicClient(self.api_client)
        return self._dynamic

    def resource(self, api_version: str, kind: str) -> Any:
        """The API resource serving `kind` in `api_version`; None when the cluster lacks it."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        with api_call(f"looking up {kind} in {api_version}"):
            try:
                return self.dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                return None

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict | None:
        """The object as a dict, or None when it does not exist."""
        resource = self.resource(api_version, kind)
        if resource is None:
            raise InputError(f"the cluster does not serve {kind} in {api_version}")
        try:
            with api_call(f"reading {kind.lower()}/{name}"):
                obj = resource.get(name=name, namespace=namespace if resource.namespaced else None)
        except NotFound:
            return None
        return obj.to_dict()

    def close(self) -> None:
        """Close the connection pool."""
        self.api_client.close()
