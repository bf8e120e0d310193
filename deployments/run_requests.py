"""Create flow runs of a deployment through the Prefect API, once per commit.

The idempotency key is ``<flow>/<deployment>:<commit>``: Prefect answers a repeated key
with the run it already has, so a redelivered webhook, or a push and a merged-PR event
for one merge, start one run (and that run keeps the stamp of the first arrival).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx

from deployments.github_events import Deploy
from tasks.errors import InputError, ShiplineError, TransientError, TriggerError

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun

__all__ = ["ArrivalStamps", "RequestedRun", "RunRequester", "check_deployment_name"]

DEFAULT_DEPLOYMENT = "deploy/deploy-on-merge"
# GitHub gives up on a delivery after 10 s; answer 503 before that (it can be redelivered).
DEFAULT_TIMEOUT = 8.0
_NAME_PART = r"[^/\s](?:[^/]*[^/\s])?"  # Prefect names may hold spaces, not at the ends
_DEPLOYMENT_NAME = re.compile(f"{_NAME_PART}/{_NAME_PART}")

Logger = logging.Logger | logging.LoggerAdapter


def check_deployment_name(name: str) -> str:
    """Return ``name`` when it has Prefect's FLOW/DEPLOYMENT form, else raise InputError."""
    if not _DEPLOYMENT_NAME.fullmatch(name):
        raise InputError(
            f"deployment {name!r}: expected FLOW/DEPLOYMENT, e.g. {DEFAULT_DEPLOYMENT!r} "
            "(`prefect deployment ls` lists them)"
        )
    return name


class ArrivalStamps:
    """Arrival order of deliveries: nanoseconds since the epoch, strictly increasing.

    Wall-clock time so stamps stay comparable across restarts of the receiver; bumped to
    previous + 1 when the clock repeats or steps back, so within one process a later
    arrival always has a larger stamp.
    """

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        """The stamp of a delivery arriving now."""
        with self._lock:
            self._last = max(self._last + 1, self._clock())
            return self._last


@dataclass(frozen=True)
class RequestedRun:
    """The flow run for a commit; ``created`` is False when it already existed."""

    flow_run_id: str
    commit: str
    stamp: int
    created: bool


class RunRequester:
    """Creates flow runs of one deployment on one Prefect server.

    One Prefect client serves every delivery (a client per delivery cost the event loop
    more than the request itself). At most ``max_in_flight`` creations run at once: more
    only queue inside the Prefect server, which then answers everything late. Deliveries
    of a commit already requested, or being requested, share that one request.
    """

    def __init__(
        self,
        api_url: str,
        deployment_name: str = DEFAULT_DEPLOYMENT,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_in_flight: int = 2,
        remembered: int = 10_000,
        log: Logger = logging.getLogger(__name__),  # noqa: B008
    ) -> None:
        self.api_url = api_url
        self.deployment_name = check_deployment_name(deployment_name)
        self._timeout = timeout
        self._log = log
        self._deployment_id: UUID | None = None
        self._max_in_flight = max_in_flight
        self._gate: asyncio.Semaphore | None = None
        self._client_cm: PrefectClient | None = None
        self._client_ready: PrefectClient | None = None
        # commit -> the request for it (pending or done); oldest forgotten first.
        self._requests: OrderedDict[str, asyncio.Future[RequestedRun]] = OrderedDict()
        self._remembered = remembered

    async def request_run(self, deploy: Deploy, stamp: int) -> RequestedRun:
        """Create (or find) the run deploying ``deploy.commit``; do not wait for it.

        Raises TransientError when the Prefect API cannot be reached in time or the
        deployment is missing (both answered 503: the delivery can be redelivered), and
        TriggerError when the API refuses the run (its parameters, say).
        """
        known = self._requests.get(deploy.commit)
        if known is not None:
            run = await asyncio.shield(known)
            return replace(run, created=False)
        request = asyncio.get_running_loop().create_future()
        self._remember(deploy.commit, request)
        try:
            run = await self._request(deploy, stamp)
        except BaseException as exc:
            # Not remembered: a redelivery tries again.
            self._requests.pop(deploy.commit, None)
            request.set_exception(exc)
            request.exception()  # retrieved: others may never await it
            raise
        request.set_result(run)
        return run

    def _remember(self, commit: str, request: asyncio.Future[RequestedRun]) -> None:
        self._requests[commit] = request
        while len(self._requests) > self._remembered:
            self._requests.popitem(last=False)

    async def _request(self, deploy: Deploy, stamp: int) -> RequestedRun:
        parameters = {
            "commit": deploy.commit,
            "branch": deploy.branch,
            "repository": deploy.repository,
            "stamp": stamp,
        }
        if self._gate is None:
            self._gate = asyncio.Semaphore(self._max_in_flight)
        try:
            async with asyncio.timeout(self._timeout), self._gate:
                client = await self._client()
                try:
                    run = await self._create(client, parameters)
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code != 404:
                        raise
                    # The deployment was deleted (and maybe made again) since its id was
                    # cached: look it up again.
                    self._deployment_id = None
                    run = await self._create(client, parameters)
        except ShiplineError:
            raise
        except httpx.HTTPStatusError as exc:
            raise self._refused(exc) from exc
        except Exception as exc:
            raise self._unavailable(exc) from exc
        created = (run.parameters or {}).get("stamp") == stamp
        return RequestedRun(
            flow_run_id=str(run.id), commit=deploy.commit, stamp=stamp, created=created
        )

    async def _create(self, client: PrefectClient, parameters: dict[str, Any]) -> FlowRun:
        return await client.create_flow_run_from_deployment(
            await self._resolve(client),
            parameters=parameters,
            idempotency_key=f"{self.deployment_name}:{parameters['commit']}",
        )

    async def check(self) -> UUID:
        """Resolve the deployment now (at startup); raises like ``request_run``."""
        try:
            async with asyncio.timeout(self._timeout):
                return await self._resolve(await self._client())
        except ShiplineError:
            raise
        except httpx.HTTPStatusError as exc:
            raise self._refused(exc) from exc
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def _client(self) -> PrefectClient:
        """The shared client, opened on first use (in the receiver's event loop)."""
        if self._client_ready is None:
            from prefect.client.orchestration import PrefectClient
            from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY

            client = PrefectClient(
                self.api_url,
                api_key=PREFECT_API_KEY.value(),
                auth_string=PREFECT_API_AUTH_STRING.value(),
            )
            self._client_ready = await client.__aenter__()
            self._client_cm = client
        return self._client_ready

    async def aclose(self) -> None:
        """Close the shared client; the next request opens a new one."""
        client, self._client_cm, self._client_ready = self._client_cm, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def _resolve(self, client: PrefectClient) -> UUID:
        """The deployment's id, looked up once and cached."""
        if self._deployment_id is None:
            from prefect.exceptions import ObjectNotFound

            try:
                deployment = await client.read_deployment_by_name(self.deployment_name)
            except ObjectNotFound as exc:
                raise TransientError(
                    f"deployment {self.deployment_name!r} does not exist on the Prefect "
                    f"server at {self.api_url}: create it (`shipline serve` or "
                    "`prefect deploy --all`) or pass --deployment FLOW/DEPLOYMENT"
                ) from exc
            self._deployment_id = deployment.id
            self._log.info("deployment %s has id %s", self.deployment_name, deployment.id)
        return self._deployment_id

    def _refused(self, exc: httpx.HTTPStatusError) -> ShiplineError:
        status = exc.response.status_code
        if status >= 500:
            return self._unavailable(exc)
        return TriggerError(
            f"the Prefect API at {self.api_url} refused the flow run of deployment "
            f"{self.deployment_name!r} ({status}: {exc.response.text[:300]}); check that "
            "the deployment's parameters accept commit, branch, repository and stamp"
        )

    def _unavailable(self, exc: BaseException) -> TransientError:
        if isinstance(exc, TimeoutError):
            detail = f"no answer within {self._timeout:g}s"
        else:
            detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
        return TransientError(
            f"the Prefect API at {self.api_url} is unavailable ({detail}); check that the "
            "server is up (`prefect server start`, or `shipline stack status`), then "
            "redeliver the webhook from GitHub"
        )
