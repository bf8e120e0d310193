"""`shipline webhook`: receive GitHub webhooks and start deploy runs through Prefect."""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Annotated

import typer

from tasks.errors import InputError, TransientError

if TYPE_CHECKING:
    from deployments.run_requests import RunRequester

SECRET_ENV = "SHIPLINE_WEBHOOK_SECRET"
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")

__all__ = ["webhook"]

log = logging.getLogger("shipline.webhook")


def webhook(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8787,
    branch: Annotated[
        str, typer.Option("--branch", help="Base branch whose merges and pushes deploy.")
    ] = "main",
    repository: Annotated[
        str | None,
        typer.Option("--repository", help="Accept only OWNER/NAME (default: any repository)."),
    ] = None,
    deployment: Annotated[
        str,
        typer.Option("--deployment", help="The Prefect deployment to run, FLOW/DEPLOYMENT."),
    ] = "deploy/deploy-on-merge",
    secret_block: Annotated[
        str | None,
        typer.Option(
            "--secret-block",
            help=f"Prefect Secret block holding the webhook secret (when ${SECRET_ENV} is unset).",
        ),
    ] = None,
) -> None:
    """Receive GitHub webhooks: a merged pull request or a push to BRANCH starts a deploy.

    POST /github verifies X-Hub-Signature-256 with the shared secret, then creates a flow
    run of DEPLOYMENT (parameters commit, branch, repository, stamp) on $PREFECT_API_URL
    and answers 202 without waiting; one run per commit however often GitHub delivers.
    GET /healthz answers 200.
    """
    import asyncio

    import uvicorn
    from prefect.settings import PREFECT_API_URL

    from deployments.run_requests import RunRequester
    from deployments.webhook import WebhookSettings, create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prefect API call
    if repository is not None and not _REPOSITORY.fullmatch(repository):
        raise InputError(f"--repository {repository!r}: expected OWNER/NAME")
    api_url = PREFECT_API_URL.value()
    if not api_url:
        raise InputError(
            "PREFECT_API_URL is not set: point it at the Prefect server that runs the "
            'deployments (for the local stack: eval "$(shipline stack env)")'
        )
    settings = WebhookSettings(secret=_secret(secret_block), branch=branch, repository=repository)
    requester = RunRequester(api_url, deployment, log=log)
    try:
        deployment_id = asyncio.run(_check(requester))
        log.info("runs go to deployment %s (%s) on %s", deployment, deployment_id, api_url)
    except TransientError as exc:
        # Start anyway: the server or the deployment may come up later; each delivery
        # meanwhile gets a 503 with this message and can be redelivered.
        log.warning("%s", exc)
    scope = repository or "any repository"
    log.info("deploying merges and pushes to %r of %s", branch, scope)
    app = create_app(settings, requester, log=log)
    # One line per delivery comes from the receiver itself; no access log on top.
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


async def _check(requester: RunRequester) -> object:
    """Resolve the deployment; the client it opened belongs to this loop, so close it."""
    try:
        return await requester.check()
    finally:
        await requester.aclose()


def _secret(secret_block: str | None) -> bytes:
    """The shared secret: $SHIPLINE_WEBHOOK_SECRET, else the Prefect Secret block."""
    value = os.environ.get(SECRET_ENV)
    if value:
        log.info("webhook secret from $%s", SECRET_ENV)
        return value.encode()
    if secret_block is None:
        raise InputError(
            f"no webhook secret: set ${SECRET_ENV} or pass --secret-block NAME (a Prefect "
            "Secret block); use the same value as the webhook's secret in GitHub"
        )
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(secret_block)
    except ValueError as exc:
        raise InputError(
            f"--secret-block {secret_block!r}: no such Secret block on the Prefect server "
            f"({exc}); create it in the UI (Blocks) or with Secret(value=...).save(name)"
        ) from exc
    except Exception as exc:
        raise TransientError(
            f"--secret-block {secret_block!r}: cannot read it from the Prefect server "
            f"({type(exc).__name__}); check PREFECT_API_URL and that the server is up"
        ) from exc
    value = block.get()
    if not isinstance(value, str) or not value:
        raise InputError(f"--secret-block {secret_block!r}: the secret is empty or not a string")
    log.info("webhook secret from Prefect Secret block %r", secret_block)
    return value.encode()
