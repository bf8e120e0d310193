"""Rollout verdicts on real-shaped objects, and differentially against kubectl 1.32.

Each file under testdata/rollout/ is one object as the API returns it, headed by comments
giving the expected verdict (``# expect:``, ``# message:``, optional ``# reason:`` and
``# revision:``). The differential tests serve the same object from a minimal fake API
server (discovery, get, list, watch: what ``kubectl rollout status`` reads) and compare
kubectl's own output with ``kubectl_rollout_status``.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import threading
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.rollout_status import Verdict, kubectl_rollout_status, rollout_verdict

KUBECTL = "/usr/bin/kubectl"
KUBECTL_WAIT = "2s"
TESTDATA = Path(__file__).parent / "testdata" / "rollout"
FIXTURES = sorted(TESTDATA.glob("*.yaml"))


def load_fixture(path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """The ``# key: value`` header lines and the object of one testdata file."""
    text = path.read_text()
    header = {}
    for line in text.splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        header[key] = value
    return header, yaml.safe_load(text)


def expected_verdict(header: dict[str, str]) -> Verdict:
    return Verdict(header["expect"], header["message"], header.get("reason", ""))


def revision_of(header: dict[str, str]) -> int | None:
    return int(header["revision"]) if "revision" in header else None


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_verdict_matches_fixture(path: Path) -> None:
    header, obj = load_fixture(path)
    assert rollout_verdict(obj, revision_of(header)) == expected_verdict(header)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_paused_rule_is_the_only_departure_from_kubectl(path: Path) -> None:
    header, obj = load_fixture(path)
    ours = rollout_verdict(obj, revision_of(header))
    kubectls = kubectl_rollout_status(obj, revision_of(header))
    if ours != kubectls:
        assert obj["spec"].get("paused") is True
        assert kubectls.state == "waiting"
        assert (ours.state, ours.reason) == ("failed", "Paused")
        assert kubectls.message in ours.message


def test_fixtures_cover_every_situation() -> None:
    stems = {path.stem for path in FIXTURES}
    states = {load_fixture(path)[0]["expect"] for path in FIXTURES}
    assert {"deployment-paused", "statefulset-ondelete", "daemonset-ondelete"} <= stems
    assert states == {"done", "waiting", "failed", "unknown"}


# Cases beyond the recorded objects: each edits a fixture and states the verdict.
Edit = Callable[[dict[str, Any]], None]
_DELETE = object()


def _set(path: str, value: Any) -> Edit:
    def edit(obj: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        for key in parents:
            obj = obj.setdefault(key, {})
        if value is _DELETE:
            obj.pop(leaf, None)
        else:
            obj[leaf] = value

    return edit


def _revision_annotation(value: Any) -> Edit:
    # Its key has dots, so it cannot go through _set's dotted path.
    def edit(obj: dict[str, Any]) -> None:
        annotations = obj["metadata"]["annotations"]
        if value is _DELETE:
            del annotations["deployment.kubernetes.io/revision"]
        else:
            annotations["deployment.kubernetes.io/revision"] = value

    return edit


EDGE_CASES = [
    # (id, fixture, edits, revision, expected verdict)
    (
        "revision-matches",
        "deployment-complete",
        [],
        3,
        Verdict("done", 'deployment "server" successfully rolled out'),
    ),
    (
        "revision-annotation-absent",
        "deployment-complete",
        [_revision_annotation(_DELETE)],
        3,
        Verdict(
            "failed",
            "desired revision (3) is different from the running revision (0)",
            "RevisionMismatch",
        ),
    ),
    (
        "revision-annotation-not-a-number",
        "deployment-complete",
        [_revision_annotation("3a")],
        3,
        Verdict(
            "failed",
            'cannot get the revision of deployment "server": '
            'strconv.ParseInt: parsing "3a": invalid syntax',
            "InvalidRevision",
        ),
    ),
    (
        "revision-annotation-out-of-range",
        "deployment-complete",
        [_revision_annotation("9223372036854775808")],
        3,
        Verdict(
            "failed",
            'cannot get the revision of deployment "server": '
            'strconv.ParseInt: parsing "9223372036854775808": value out of range',
            "InvalidRevision",
        ),
    ),
    (
        "revision-ignored-when-zero",
        "deployment-revision-mismatch",
        [],
        0,
        Verdict("done", 'deployment "server" successfully rolled out'),
    ),
    (
        "deadline-checked-only-once-observed",
        "deployment-deadline-exceeded",
        [_set("metadata.generation", 4)],
        None,
        Verdict("waiting", "Waiting for deployment spec update to be observed..."),
    ),
    (
        "deployment-without-status",
        "deployment-complete",
        [_set("status", _DELETE), _set("metadata.generation", 1)],
        None,
        Verdict("waiting", "Waiting for deployment spec update to be observed..."),
    ),
    (
        "paused-with-stale-generation",
        "deployment-paused",
        [_set("metadata.generation", 5)],
        None,
        Verdict(
            "failed",
            'deployment "server" is paused (spec.paused: true), so its rollout cannot finish '
            "and kubectl rollout status would wait forever (Waiting for deployment spec update "
            "to be observed...); resume it with 'kubectl rollout resume deployment/server "
            "-n prod', or remove spec.paused from its manifest",
            "Paused",
        ),
    ),
    (
        "paused-and-past-deadline-reports-deadline",
        "deployment-deadline-exceeded",
        [_set("spec.paused", True)],
        None,
        Verdict(
            "failed",
            'deployment "server" exceeded its progress deadline',
            "ProgressDeadlineExceeded",
        ),
    ),
    (
        "statefulset-never-observed",
        "statefulset-complete",
        [_set("status.observedGeneration", _DELETE)],
        None,
        Verdict("waiting", "Waiting for statefulset spec update to be observed..."),
    ),
    (
        "statefulset-without-generations",
        "statefulset-complete",
        [_set("metadata.generation", _DELETE), _set("status.observedGeneration", _DELETE)],
        None,
        Verdict("waiting", "Waiting for statefulset spec update to be observed..."),
    ),
    (
        "statefulset-revision-ignored",
        "statefulset-updating",
        [],
        7,
        Verdict("waiting", "Waiting for 1 pods to be ready..."),
    ),
    (
        "statefulset-partition-above-replicas",
        "statefulset-partitioned",
        [_set("spec.updateStrategy.rollingUpdate.partition", 5)],
        None,
        Verdict("done", "partitioned roll out complete: 0 new pods have been updated..."),
    ),
    (
        "daemonset-stale-generation",
        "daemonset-complete",
        [_set("metadata.generation", 3)],
        None,
        Verdict("waiting", "Waiting for daemon set spec update to be observed..."),
    ),
]


def _edited(stem: str, edits: list[Edit]) -> tuple[dict[str, str], dict[str, Any]]:
    header, obj = load_fixture(TESTDATA / f"{stem}.yaml")
    for edit in edits:
        edit(obj)
    return header, obj


@pytest.mark.parametrize(
    ("stem", "edits", "revision", "expected"),
    [case[1:] for case in EDGE_CASES],
    ids=[case[0] for case in EDGE_CASES],
)
def test_edge_cases(stem: str, edits: list[Edit], revision: int | None, expected: Verdict) -> None:
    _, obj = _edited(stem, edits)
    assert rollout_verdict(obj, revision) == expected


@pytest.mark.parametrize(
    ("api_version", "kind", "state", "message"),
    [
        ("extensions/v1beta1", "Deployment", "done", 'deployment "server" successfully rolled out'),
        ("apps/v1beta2", "Deployment", "done", 'deployment "server" successfully rolled out'),
        ("extensions/v1beta1", "DaemonSet", "done", 'daemon set "server" successfully rolled out'),
        (
            "extensions/v1beta1",
            "StatefulSet",
            "unknown",
            "no status viewer has been implemented for StatefulSet.extensions",
        ),
        (
            "example.com/v1",
            "Deployment",
            "unknown",
            "no status viewer has been implemented for Deployment.example.com",
        ),
        (
            "batch/v1",
            "CronJob",
            "unknown",
            "no status viewer has been implemented for CronJob.batch",
        ),
    ],
)
def test_dispatch_on_group_and_kind(api_version: str, kind: str, state: str, message: str) -> None:
    obj = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "server", "generation": 1},
        "spec": {"replicas": 1, "updateStrategy": {"type": "RollingUpdate"}},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 1,
        },
    }
    verdict = rollout_verdict(obj)
    assert (verdict.state, verdict.message) == (state, message)


@pytest.mark.parametrize("missing", ["kind", "apiVersion"])
def test_object_without_type_is_unknown_and_says_which_field(missing: str) -> None:
    _, obj = load_fixture(TESTDATA / "deployment-complete.yaml")
    del obj[missing]
    verdict = rollout_verdict(obj)
    assert (verdict.state, verdict.reason) == ("unknown", "UnknownKind")
    assert f'object "server" has no {missing}' in verdict.message


def test_paused_message_without_namespace_omits_the_flag() -> None:
    _, obj = load_fixture(TESTDATA / "deployment-paused.yaml")
    del obj["metadata"]["namespace"]
    verdict = rollout_verdict(obj)
    assert verdict.message.endswith(
        "resume it with 'kubectl rollout resume deployment/server', "
        "or remove spec.paused from its manifest"
    )


# --- differential: the same objects through the real kubectl ---------------------------


class FakeApiServer:
    """Serves objects to kubectl: discovery, get, list by name, and a silent watch."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, obj: dict[str, Any], namespace: str) -> str:
        """Serve ``obj`` in ``namespace``; return kubectl's TYPE/NAME for it."""
        group, _, version = obj["apiVersion"].rpartition("/")
        plural = obj["kind"].lower() + "s"
        served = copy.deepcopy(obj)
        served["metadata"]["namespace"] = namespace
        self.objects[(group, version, plural, namespace, obj["metadata"]["name"])] = served
        # Each plural is served in one group only, so TYPE/NAME is unambiguous.
        return f"{plural}/{obj['metadata']['name']}"

    def _resources(self, group: str, version: str) -> list[dict[str, Any]]:
        kinds = {
            (key[2], obj["kind"])
            for key, obj in self.objects.items()
            if key[:2] == (group, version)
        }
        return [
            {"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind}
            | {"verbs": ["get", "list", "watch"]}
            for plural, kind in sorted(kinds)
        ]

    def _route(self, path: str, query: dict[str, list[str]]) -> dict[str, Any] | None:
        groups = sorted({(g, v) for g, v, *_ in self.objects if g})
        if path == "/version":
            # The gcloud kubectl dispatcher picks its kubectl by server version: pin 1.32.
            return {"major": "1", "minor": "32", "gitVersion": "v1.32.0"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                        "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
                    }
                    for g, v in groups
                ],
            }
        parts = path.strip("/").split("/")
        group, version, rest = (
            ("", parts[1], parts[2:]) if parts[0] == "api" else (*parts[1:3], parts[3:])
        )
        if not rest:
            group_version = f"{group}/{version}" if group else version
            return {
                "kind": "APIResourceList",
                "groupVersion": group_version,
                "resources": self._resources(group, version),
            }
        namespace, plural, name = rest[1], rest[2], rest[3] if len(rest) > 3 else None
        if name is not None:
            return self.objects.get((group, version, plural, namespace, name))
        wanted = query.get("fieldSelector", [""])[0].removeprefix("metadata.name=")
        items = [
            obj
            for (g, v, p, ns, n), obj in self.objects.items()
            if (g, v, p, ns) == (group, version, plural, namespace) and n == wanted
        ]
        kind = items[0]["kind"] if items else "Unknown"
        return {
            "kind": f"{kind}List",
            "apiVersion": f"{group}/{version}" if group else version,
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlparse(self.path)
                query = urllib.parse.parse_qs(url.query)
                if query.get("watch") == ["true"]:
                    # Nothing changes: hold the watch open until kubectl gives up.
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    fake.stopping.wait(10)
                    return
                body = fake._route(url.path, query)
                code = 200 if body is not None else 404
                if body is None:
                    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
                    body |= {"reason": "NotFound", "code": 404, "message": f"{url.path} not found"}
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def __enter__(self) -> FakeApiServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def kubectl_verdict(
    server: FakeApiServer, obj: dict[str, Any], namespace: str, revision: int | None, home: Path
) -> tuple[str, str]:
    """Run ``kubectl rollout status`` on ``obj``; return ("done"|"waiting"|"error", text).

    A --timeout tells waiting (prints, then times out) from done (prints, exits 0).
    """
    resource = server.add(obj, namespace)
    command = [KUBECTL, f"--server={server.url}", f"--cache-dir={home / 'cache'}"]
    command += ["rollout", "status", resource, "-n", namespace, f"--timeout={KUBECTL_WAIT}"]
    if revision is not None:
        command.append(f"--revision={revision}")
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "KUBECONFIG": os.devnull}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    if result.returncode == 0:
        return "done", result.stdout.strip()
    if "timed out waiting for the condition" in result.stderr:
        return "waiting", result.stdout.strip()
    assert result.stdout == "", result.stdout
    return "error", result.stderr.strip().removeprefix("error: ")


def _as_kubectl_outcome(verdict: Verdict) -> tuple[str, str]:
    state = "error" if verdict.state in ("failed", "unknown") else verdict.state
    return state, verdict.message


# Every object kubectl judges, by a case id that doubles as its namespace (a DNS label).
KUBECTL_CASES: dict[str, tuple[dict[str, Any], int | None]] = {
    path.stem: (load_fixture(path)[1], revision_of(load_fixture(path)[0])) for path in FIXTURES
} | {f"edge-{case[0]}": (_edited(case[1], case[2])[1], case[3]) for case in EDGE_CASES}


@pytest.fixture(scope="module")
def kubectl_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """Kubectl's outcome for every case, run concurrently (each waiting case takes the
    whole --timeout, and a generous timeout keeps "done" from flaking on a busy machine).
    """
    with FakeApiServer() as server, ThreadPoolExecutor(max_workers=16) as pool:
        futures = {
            case_id: pool.submit(
                kubectl_verdict, server, obj, case_id, revision, tmp_path_factory.mktemp(case_id)
            )
            for case_id, (obj, revision) in KUBECTL_CASES.items()
        }
        return {case_id: future.result() for case_id, future in futures.items()}


@pytest.mark.parametrize("case_id", sorted(KUBECTL_CASES))
def test_matches_kubectl(case_id: str, kubectl_outcomes: dict[str, tuple[str, str]]) -> None:
    obj, revision = KUBECTL_CASES[case_id]
    assert kubectl_outcomes[case_id] == _as_kubectl_outcome(kubectl_rollout_status(obj, revision))
