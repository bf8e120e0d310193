"""Case 6: `shipline webhook` under load on 127.0.0.1 (no baseline: the shell has none).

2000 deliveries (--quick: 200) with 16 in flight, shuffled: 50 % merged pull requests of
distinct commits, 10 % repeats of one of those, 10 % forged (signed with another
secret), 30 % events to ignore (opened or unmerged pull requests, other branches, tags,
issues). The receiver runs as its own process against a deployment made for the case
with no work pool, so the runs it creates are never executed; the deployment and its
runs are deleted afterwards. Latency is per delivery from the client (send to answer);
p99 per class is taken in each round, and the table shows those p99s across rounds.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from cases.harness import REPO, Row, Settings, at_least, at_most

GITHUB = REPO / "tests" / "unit" / "testdata" / "github"
IGNORED = (
    "pull_request-opened",
    "pull_request-closed-unmerged",
    "pull_request-merged-other-base",
    "push-other-branch",
    "push-tag",
    "issues-opened",
)
CONCURRENCY = 16


@dataclass
class Delivery:
    """One POST: its intended class, headers and body."""

    kind: str  # merge, repeat, forged, ignored
    event: str
    body: bytes
    commit: str | None = None


def _sample(name: str) -> tuple[str, dict]:
    return name.split("-", 1)[0], json.loads((GITHUB / f"{name}.json").read_text())


def _merge(commit: str) -> tuple[str, bytes]:
    event, payload = _sample("pull_request-merged")
    payload["pull_request"]["merge_commit_sha"] = commit
    return event, json.dumps(payload).encode()


def plan_deliveries(total: int, rng: random.Random) -> list[Delivery]:
    """The mix of the issue, shuffled; repeats resend a merge of the same batch."""
    merges = [Delivery("merge", *_merge(c), commit=c) for c in _commits(total // 2)]
    out = list(merges)
    out += [
        Delivery("repeat", m.event, m.body, m.commit) for m in rng.choices(merges, k=total // 10)
    ]
    out += [Delivery("forged", *_merge(secrets.token_hex(20))) for _ in range(total // 10)]
    ignored = [_sample(name) for name in IGNORED]
    while len(out) < total:
        event, payload = ignored[len(out) % len(ignored)]
        out.append(Delivery("ignored", event, json.dumps(payload).encode()))
    rng.shuffle(out)
    return out


def _commits(count: int) -> list[str]:
    return [secrets.token_hex(20) for _ in range(count)]


def _signature(secret: bytes, body: bytes) -> str:
    import hashlib
    import hmac

    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


async def _deliver_all(
    url: str, secret: bytes, deliveries: list[Delivery]
) -> tuple[float, list[tuple[str, float, int, bool | None]]]:
    """Send with bounded concurrency; (wall seconds, (class, ms, status, created))."""
    import httpx

    results: list[tuple[str, float, int, bool | None]] = []
    gate = asyncio.Semaphore(CONCURRENCY)
    forged_secret = b"not-" + secret
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(d: Delivery) -> None:
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": d.event,
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": _signature(
                    forged_secret if d.kind == "forged" else secret, d.body
                ),
            }
            async with gate:
                started = time.perf_counter()
                response = await client.post(url, content=d.body, headers=headers)
                ms = (time.perf_counter() - started) * 1000
            created = response.json().get("created") if response.status_code == 202 else None
            kind = d.kind
            if kind in ("merge", "repeat"):
                kind = "create" if created else "repeat"
            results.append((kind, ms, response.status_code, created))

        started = time.perf_counter()
        await asyncio.gather(*(one(d) for d in deliveries))
        return time.perf_counter() - started, results


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(base: str, proc: subprocess.Popen, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"shipline webhook exited {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"shipline webhook did not answer /healthz:\n{log.read_text()}")


async def _delete_runs(api_url: str, run_ids: list) -> None:
    from prefect.client.orchestration import PrefectClient

    gate = asyncio.Semaphore(CONCURRENCY)
    async with PrefectClient(api_url) as client:

        async def delete(run_id) -> None:
            async with gate:
                await client.delete_flow_run(run_id)

        await asyncio.gather(*(delete(r) for r in run_ids))


def _runs_of(api_url: str, deployment_id) -> list:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    found: list = []
    with SyncPrefectClient(api_url) as client:
        while True:
            page = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                limit=200,
                offset=len(found),
            )
            found += page
            if len(page) < 200:
                return found


def measure(settings: Settings, env: dict[str, str]) -> list[Row]:
    """Serve `shipline webhook`, send the mix, check counts, clean up."""
    from prefect.client.orchestration import SyncPrefectClient

    total = 200 if settings.quick else 2000
    rounds = 1 if settings.quick else 4
    api_url = env["PREFECT_API_URL"]
    name = f"bench-webhook-{uuid.uuid4().hex[:8]}"
    with SyncPrefectClient(api_url) as client:
        deployment_id = client.create_deployment(client.create_flow_from_name("deploy"), name=name)
    secret = secrets.token_hex(16).encode()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(7)
    p99: dict[str, list[float]] = {"forged": [], "ignored": [], "create": [], "repeat": []}
    rates: list[float] = []
    statuses: dict[str, set[int]] = {}
    distinct: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "webhook.log"
        with log.open("w") as sink:
            proc = subprocess.Popen(
                ["shipline", "webhook", "--port", str(port), "--deployment", f"deploy/{name}"],
                env={**env, "SHIPLINE_WEBHOOK_SECRET": secret.decode()},
                stdout=sink,
                stderr=sink,
            )
        try:
            _wait_healthy(base, proc, log)
            for _ in range(rounds):
                batch = plan_deliveries(total // rounds, rng)
                distinct |= {d.commit for d in batch if d.kind == "merge" and d.commit}
                wall, results = asyncio.run(_deliver_all(f"{base}/github", secret, batch))
                rates.append(len(batch) / wall)
                for kind in p99:
                    values = [ms for k, ms, _s, _c in results if k == kind]
                    if values:
                        p99[kind].append(_p99(values))
                for kind, _ms, status, _c in results:
                    statuses.setdefault(kind, set()).add(status)
        finally:
            proc.terminate()
            proc.wait(10)
        runs = _runs_of(api_url, deployment_id)
        asyncio.run(_delete_runs(api_url, [r.id for r in runs]))
        with SyncPrefectClient(api_url) as client:
            client.delete_deployment(deployment_id)
    forged_accepted = sum(1 for s in statuses.get("forged", set()) if s != 401)
    checks = {
        f"runs created ({len(runs)}) == distinct commits ({len(distinct)})": len(runs)
        == len(distinct),
        f"forged accepted {forged_accepted} == 0": forged_accepted == 0,
        "only 202/204/401 answers": all(
            s in (202, 204, 401) for found in statuses.values() for s in found
        ),
    }
    detail = f"{total} deliveries, {CONCURRENCY} in flight, {rounds} round(s)"
    rows = [
        Row("6 webhook p99: forged (401)", "ms", p99["forged"], None, at_most(20, "ms")),
        Row("6 webhook p99: ignored (204)", "ms", p99["ignored"], None, at_most(20, "ms")),
        Row("6 webhook p99: creates a run (202)", "ms", p99["create"], None, at_most(250, "ms")),
        Row(
            "6 webhook p99: repeat, run exists (202)",
            "ms",
            p99["repeat"],
            None,
            at_most(250, "ms"),
        ),
        Row(
            "6 webhook throughput",
            "per_s",
            rates,
            None,
            at_least(100, "per_s"),
            note=f"{detail}; "
            + "; ".join(f"{k}: {'ok' if v else 'FAILED'}" for k, v in checks.items()),
            checks=checks,
        ),
    ]
    rows[0].note = detail
    return rows


if __name__ == "__main__":  # pragma: no cover - manual use
    print(os.environ.get("PREFECT_API_URL"))
