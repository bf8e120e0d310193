"""The one seam to the Kubernetes API.

Everything above this module works on plain dicts (the JSON form of objects). Calls go
through the kubernetes client's DynamicClient (discovery, apply, patch, watch), and every
failure is classified here, once, into shipline's error tree (`tasks.errors`):
connection problems, timeouts, 429 and 5xx are `TransientError` (retrying can help);
everything else keeps its meaning and says what to check.
"""

from __future__ import annotations

import os
import threading
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
    """The kubeconfig setting kubectl would use: `explicit`, else $KUBECONFIG, else ~/.kube/config.

    Like $KUBECONFIG (which callers pass as `explicit`), the result may list several files
    separated by `os.pathsep`; `Cluster.connect` merges them as kubectl does.
    """
    return explicit or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")


_KUBECONFIG_HINT = (
    "set KUBECONFIG to your kubeconfig file, or to several separated by "
    f'"{os.pathsep}" (for the local stack: `eval "$(shipline stack env)"`)'
)
_KUBECONFIG_SECTIONS = (("clusters", "cluster"), ("contexts", "context"), ("users", "user"))


def _a(value: Any) -> str:
    """`value`'s YAML type, for messages ("a string", "a list")."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    names = {str: "a string", list: "a list", dict: "a mapping"}
    return names.get(type(value), type(value).__name__)


def _kubeconfig_problem(data: Any) -> str | None:
    """What makes a parsed kubeconfig unusable, else None (the shape client-go accepts)."""
    if not isinstance(data, dict):
        return f"its top level is {_a(data)}, not a mapping with clusters, contexts and users"
    current = data.get("current-context")
    if current is not None and not isinstance(current, str):
        return f"current-context is {_a(current)}, not a context name"
    for section, body in _KUBECONFIG_SECTIONS:
        items = data.get(section)
        if items is None:
            continue
        if not isinstance(items, list):
            return f"{section} is {_a(items)}, not a list"
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                return f"{section}[{index}] is {_a(item)}, not a mapping with name and {body}"
            name = item.get("name")
            if not isinstance(name, str) or not name:
                return f"{section}[{index}] has no name"
            if item.get(body) is not None and not isinstance(item[body], dict):
                return f"{section}[{index}] ({name}): {body} is {_a(item[body])}, not a mapping"
    return None


def _read_kubeconfig(path: str) -> dict[str, Any] | None:
    """One kubeconfig file as a mapping (None when empty); InputError says what is wrong."""
    import yaml

    if Path(path).is_dir():
        raise InputError(f"kubeconfig {path} is a directory, not a file; {_KUBECONFIG_HINT}")
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"kubeconfig {path} cannot be read ({exc}); {_KUBECONFIG_HINT}") from exc
    except yaml.YAMLError as exc:
        # Only the problem and its place: pyyaml's snippet of the line could show a token.
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise InputError(
            f"kubeconfig {path} is not valid YAML{at}: {problem}; fix the file or "
            f"{_KUBECONFIG_HINT}"
        ) from exc
    if data is None:
        return None  # kubectl reads an empty file as an empty config
    problem = _kubeconfig_problem(data)
    if problem:
        raise InputError(
            f"kubeconfig {path} is not a kubeconfig: {problem}; fix the file or {_KUBECONFIG_HINT}"
        )
    return data


@dataclass
class Cluster:
    """A connection to one cluster: the DynamicClient plus the context's namespace."""

    api_client: Any
    namespace: str = "default"
    _dynamic: Any = field(default=None, repr=False)
    _openapi: dict | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Cluster:
        """Load the kubeconfig (errors name the file and what is wrong with it).

        `kubeconfig` may list files as $KUBECONFIG does; they merge by kubectl's rules
        (client-go's loader.go): missing files are skipped, the first definition of a
        cluster, context or user wins, and so does the first current-context set.
        """
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        setting = kubeconfig_path(kubeconfig)
        entries = [os.path.expanduser(p) for p in setting.split(os.pathsep) if p]
        existing = [p for p in dict.fromkeys(entries) if os.path.exists(p)]
        if not existing:
            if not kubeconfig and not os.environ.get("KUBECONFIG"):
                what = f"KUBECONFIG is not set and {setting} does not exist"
            elif len(entries) == 1:
                what = f"kubeconfig {setting} does not exist"
            else:
                what = f"none of the kubeconfig files in {setting} exists"
            raise InputError(f"{what}; {_KUBECONFIG_HINT}")
        documents = {path: _read_kubeconfig(path) for path in existing}
        files = [path for path, data in documents.items() if data]
        if not files:
            raise InputError(f"kubeconfig {setting} is empty; {_KUBECONFIG_HINT}")
        # The client's merger lets the last current-context win; kubectl takes the first.
        chosen = context or next(
            (d["current-context"] for d in documents.values() if d and d.get("current-context")),
            None,
        )
        if not chosen:
            raise InputError(
                f"kubeconfig {setting} sets no current-context; choose one with "
                "`kubectl config use-context NAME`"
            )
        contexts = [
            item
            for data in documents.values()
            for item in (data or {}).get("contexts") or []
            if item["name"] == chosen
        ]
        if not contexts:
            raise InputError(
                f'context "{chosen}" is not defined in kubeconfig {setting}; check the '
                "context name (`kubectl config get-contexts`) or the kubeconfig"
            )
        try:
            api_client = config.new_client_from_config(
                config_file=os.pathsep.join(files), context=chosen
            )
        except ConfigException as exc:
            raise InputError(
                f"kubeconfig {setting} cannot be used: {exc}; check its current-context, "
                "clusters and users"
            ) from exc
        except Exception as exc:  # a malformed value deeper down (a bad certificate, ...)
            raise InputError(
                f"kubeconfig {setting} cannot be used ({type(exc).__name__}: {exc}); check "
                f'the cluster and user of context "{chosen}"'
            ) from exc
        namespace = (contexts[0].get("context") or {}).get("namespace") or "default"
        return cls(api_client=api_client, namespace=str(namespace))

    @property
    def dynamic(self) -> Any:
        """The DynamicClient (lazy discovery, cached per server in the temp folder)."""
        with self._lock:  # tasks share one Cluster from several threads
            if self._dynamic is None:
                from kubernetes.dynamic import DynamicClient

                host = self.api_client.configuration.host
                with api_call(f"discovering the resources of the API server {host}"):
                    self._dynamic = DynamicClient(self.api_client)
            return self._dynamic

    def openapi(self) -> dict:
        """The server's OpenAPI v2 document, read once: it is megabytes of JSON."""
        with self._lock:
            if self._openapi is None:
                self._openapi = self._read_openapi()
            return self._openapi

    def forget_openapi(self) -> None:
        """Read the document again next time (a CustomResourceDefinition was added)."""
        with self._lock:
            self._openapi = None

    def _read_openapi(self) -> dict:
        import json

        client = self.api_client
        with api_call(f"reading the OpenAPI schema of the API server {client.configuration.host}"):
            request = client.param_serialize(
                "GET",
                "/openapi/v2",
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            response = client.call_api(*request)
            response.read()
            if not 200 <= response.status <= 299:
                client.response_deserialize(response, {})  # raises the classified ApiException
            return json.loads(response.data)

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
