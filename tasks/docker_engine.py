"""The one seam to the docker engine: the low-level client and its errors, classified.

The client comes from the environment as the docker CLI's does (DOCKER_HOST,
DOCKER_TLS_VERIFY, DOCKER_CERT_PATH; else the local socket). Failures are classified
here, once: an engine that cannot be reached, a timeout or a 5xx is a `TransientError`
(retrying can help); a request the engine refuses keeps its meaning. The engine reports
build and push failures as text inside its JSON stream; `classify_stream_error` reads
that text, since it is all the engine gives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tasks.errors import InputError, ShiplineError, TransientError
from tasks.registry import RegistryAuthError

__all__ = [
    "classify",
    "classify_stream_error",
    "connect",
    "engine_call",
    "strip_ansi",
]

_UNREACHABLE_HINT = (
    "check that the docker engine runs and DOCKER_HOST points at it (for the local stack: "
    "`shipline stack status`)"
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
# Texts the engine relays from a registry that mean: credentials missing or refused.
_AUTH_WORDS = ("unauthorized", "authentication required", "denied", "no basic auth")
# Texts that mean: the network or the registry hiccupped; the same push may succeed later.
_TRANSIENT_WORDS = (
    "connection refused",
    "connection reset",
    "i/o timeout",
    "timeout",
    "tls handshake",
    "no such host",
    "broken pipe",
    "unexpected eof",
    "503 service unavailable",
    "502 bad gateway",
    "500 internal server error",
    "504 gateway",
    "too many requests",
    "received unexpected http status: 5",
)


def strip_ansi(text: str) -> str:
    """`text` without terminal colour and cursor sequences."""
    return _ANSI.sub("", text)


def classify(exc: BaseException, action: str) -> ShiplineError:
    """Turn a docker SDK or transport exception into shipline's tree."""
    import docker.errors
    import requests.exceptions

    if isinstance(exc, ShiplineError):
        return exc
    if isinstance(exc, docker.errors.APIError):
        status = exc.status_code or 0
        detail = exc.explanation or str(exc)
        if status == 0 or status == 429 or status >= 500:
            return classify_stream_error(detail, action, default_transient=True)
        if status in (401, 403):
            return RegistryAuthError(f"{action}: the engine refused ({status}): {detail}")
        if status == 400:
            return InputError(f"{action}: the engine refused the request: {detail}")
        return ShiplineError(f"{action}: the engine answered {status}: {detail}")
    transport = (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        ConnectionError,
        TimeoutError,
        OSError,
    )
    if isinstance(exc, transport) or (
        # docker.from_env wraps an unreachable socket in a bare DockerException.
        isinstance(exc, docker.errors.DockerException) and isinstance(exc.__context__, transport)
    ):
        return TransientError(
            f"{action}: cannot reach the docker engine ({exc}); {_UNREACHABLE_HINT}"
        )
    if isinstance(exc, docker.errors.DockerException):
        return ShiplineError(f"{action}: {exc}")
    return ShiplineError(f"{action}: {type(exc).__name__}: {exc}")


def classify_stream_error(
    message: str, action: str, *, default_transient: bool = False
) -> ShiplineError:
    """Classify an error the engine reported as text (push, pull, a 5xx body)."""
    lowered = message.lower()
    if any(word in lowered for word in _AUTH_WORDS):
        return RegistryAuthError(
            f"{action}: the registry refused the credentials ({message}); log in with "
            "`docker login <registry>` or check the `auths` of the docker config "
            "($DOCKER_CONFIG/config.json or ~/.docker/config.json)"
        )
    if default_transient or any(word in lowered for word in _TRANSIENT_WORDS):
        return TransientError(f"{action}: {message}; retrying may help")
    return ShiplineError(f"{action}: {message}")


def connect(timeout: float = 600.0) -> Any:
    """A `docker.APIClient` configured from the environment; TransientError when unreachable."""
    import docker
    from docker.utils import kwargs_from_env

    with engine_call("connecting to the docker engine"):
        # version="auto" pings the engine, so an unreachable one fails here, not mid-build.
        return docker.APIClient(version="auto", timeout=timeout, **kwargs_from_env())


@contextmanager
def engine_call(action: str) -> Iterator[None]:
    """Run engine calls, re-raising their failures classified (see `classify`)."""
    try:
        yield
    except ShiplineError:
        raise
    except Exception as exc:
        raise classify(exc, action) from exc
