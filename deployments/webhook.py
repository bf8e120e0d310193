"""The HTTP receiver for GitHub webhooks: POST /github, GET /healthz (a Starlette app).

Checks run in this order, each before the next looks at more of the request: body size
(413), the ``X-Hub-Signature-256`` HMAC of the raw body in constant time (401), the
content type (415), JSON (400). Only then is the event read (deployments.github_events)
and a flow run requested (deployments.run_requests). Neither the secret nor the
signature is ever logged or echoed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deployments.github_events import Deploy, Ignore, Pong, decide
from deployments.run_requests import ArrivalStamps, RunRequester
from tasks.errors import ShiplineError, TransientError, TriggerError

__all__ = ["MAX_BODY", "WebhookSettings", "create_app", "signature"]

MAX_BODY = 1024 * 1024
SIGNATURE_HEADER = "X-Hub-Signature-256"

Logger = logging.Logger | logging.LoggerAdapter


@dataclass(frozen=True)
class WebhookSettings:
    """What the receiver accepts; ``secret`` is kept out of repr so it is never printed."""

    secret: bytes = field(repr=False)
    branch: str = "main"
    repository: str | None = None
    max_body: int = MAX_BODY


def signature(secret: bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class _Refused(Exception):
    """A delivery answered with an error status before reaching the event logic."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(
    settings: WebhookSettings,
    requester: RunRequester,
    *,
    stamps: ArrivalStamps | None = None,
    log: Logger = logging.getLogger(__name__),  # noqa: B008
) -> Starlette:
    """The receiver's ASGI app, creating runs through ``requester``."""
    stamps = stamps or ArrivalStamps()
    if not settings.secret:
        raise ValueError("the webhook secret is empty")

    async def github(request: Request) -> Response:
        stamp = stamps.next()  # arrival order: taken before anything is awaited
        delivery = request.headers.get("X-GitHub-Delivery", "-")
        try:
            payload = await _verified_json(request, settings)
        except _Refused as exc:
            log.warning("delivery %s refused (%d): %s", delivery, exc.status, exc)
            return _error(exc.status, str(exc))
        event = request.headers.get("X-GitHub-Event", "")
        try:
            if not event:
                raise TriggerError("missing X-GitHub-Event header: is the sender GitHub?")
            decision = decide(
                event, payload, branch=settings.branch, repository=settings.repository
            )
        except TriggerError as exc:
            log.warning("delivery %s (%s) refused (400): %s", delivery, event, exc)
            return _error(400, str(exc))
        if isinstance(decision, Pong):
            log.info("delivery %s: ping", delivery)
            return JSONResponse({"message": "pong"})
        if not isinstance(decision, Deploy):
            log.info("delivery %s (%s) ignored: %s", delivery, event, decision.reason)
            # A 204 has no body; the header shows the reason in GitHub's delivery view.
            return Response(status_code=204, headers={"X-Shipline-Ignored": _ascii(decision)})
        return await _request_run(decision, stamp, delivery, event)

    async def _request_run(decision: Deploy, stamp: int, delivery: str, event: str) -> Response:
        try:
            run = await requester.request_run(decision, stamp)
        except TransientError as exc:
            log.error("delivery %s (%s) not processed (503): %s", delivery, event, exc)
            return _error(503, str(exc), headers={"Retry-After": "30"})
        except ShiplineError as exc:
            log.error("delivery %s (%s) not processed (502): %s", delivery, event, exc)
            return _error(502, str(exc))
        verb = "created" if run.created else "already exists (same commit)"
        log.info(
            "delivery %s (%s): flow run %s of %s for %s@%s %s (stamp %d)",
            delivery,
            event,
            run.flow_run_id,
            requester.deployment_name,
            decision.repository,
            run.commit,
            verb,
            run.stamp,
        )
        return JSONResponse(
            {
                "flow_run_id": run.flow_run_id,
                "commit": run.commit,
                "deployment": requester.deployment_name,
                "created": run.created,
            },
            status_code=202,
        )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await requester.aclose()

    return Starlette(
        routes=[
            Route("/github", github, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


async def _verified_json(request: Request, settings: WebhookSettings) -> Any:
    """The parsed body, once its size, signature and content type are checked."""
    body = await _read_body(request, settings.max_body)
    given = request.headers.get(SIGNATURE_HEADER)
    if given is None:
        raise _Refused(
            401, f"missing {SIGNATURE_HEADER}: set the webhook's secret in GitHub's settings"
        )
    expected = signature(settings.secret, body)
    # Headers arrive as latin-1; compare bytes so any header value is comparable.
    if not hmac.compare_digest(expected.encode(), given.encode("latin-1")):
        raise _Refused(
            401,
            f"{SIGNATURE_HEADER} does not match the body: the webhook's secret in GitHub "
            "differs from this receiver's",
        )
    media_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise _Refused(
            415,
            f"content type {media_type or 'none'!r} is not application/json: set the "
            "webhook's content type to application/json in GitHub",
        )
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Refused(400, f"the body is not valid JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise _Refused(400, f"the body is JSON {type(payload).__name__}, not an object")
    return payload


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused once it is known to exceed ``limit`` bytes."""
    too_large = _Refused(413, f"the body exceeds {limit} bytes")
    declared = request.headers.get("Content-Length")
    if declared is not None:
        if not declared.isdigit():
            raise _Refused(400, f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _ascii(decision: Ignore) -> str:
    return decision.reason.encode("ascii", "replace").decode()[:200]
