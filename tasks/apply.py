"""Apply manifest objects with `kubectl apply`'s client-side semantics.

Each object is applied the way kubectl 1.32 applies it
(https://github.com/kubernetes/kubectl/blob/release-1.32/pkg/cmd/apply/patcher.go):
created with the ``kubectl.kubernetes.io/last-applied-configuration`` annotation, or
patched with the three-way strategic merge patch between that annotation, the manifest
and the live object (`tasks.strategic_patch`), so fields absent from the manifest stay,
fields removed from it are removed, and kubectl and shipline can take turns on the same
objects. An empty patch means "unchanged": nothing is sent and metadata.generation stays.

Beyond kubectl: ``image_overrides`` apply a workload with its final images already set
(as `kubectl set image` would set them afterwards) while the annotation keeps the
manifest's own images, so the object ends exactly as apply-then-set-image leaves it, in
one change. Nothing is applied until every object is known to the cluster and passes a
server-side dry run.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tasks.errors import ApplyError, ManifestError, ShiplineError
from tasks.field_validation import aggregate, validation_errors
from tasks.kube import FIELD_MANAGER, Cluster, NotFound, Refused, api_call
from tasks.manifests import ManifestObject, apply_order
from tasks.strategic_patch import PatchSchema, patch_schema, three_way_patch
from tasks.workload_patch import with_images

__all__ = ["LAST_APPLIED", "ApplyResult", "apply_objects", "last_applied_configuration"]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_DRY_RUN_SUFFIX = " (server dry run)"
_STRATEGIC = "application/strategic-merge-patch+json"
_MERGE = "application/merge-patch+json"
# How long to wait for a CustomResourceDefinition applied in the same batch to be served.
_CRD_WAIT_SECONDS = 30.0
# Concurrent server-side dry runs: enough to hide the round trips, few for the server.
_DRY_RUN_WORKERS = 8
# Tries of one object whose live state keeps changing under the apply (kubectl: 5).
_CONFLICT_RETRIES = 5

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApplyResult:
    """What applying one object did, in kubectl's words."""

    target: str  # deployment.apps/server, service/web
    action: str  # created | configured | unchanged


@dataclass
class _Planned:
    """One object ready to apply: its API resource, final body and patch schema."""

    obj: ManifestObject
    target: str
    namespace: str | None
    resource: Any  # None until a CRD of the same batch is served
    modified: dict
    schema: PatchSchema | None = None


def _go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it: sorted keys, no spaces, HTML escaped, newline."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text + "\n"


def last_applied_configuration(body: Mapping[str, Any]) -> str:
    """The annotation value kubectl writes for ``body`` (GetModifiedConfiguration).

    The object without that annotation, ``metadata.annotations`` present (``{}`` when the
    manifest has none), encoded as Go does, ending in a newline.
    """
    config = copy.deepcopy(dict(body))
    metadata = config.setdefault("metadata", {})
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    metadata["annotations"] = annotations
    return _go_json(config)


def _target(obj: ManifestObject) -> str:
    group = obj.api_version.rpartition("/")[0]
    return f"{obj.kind.lower()}{'.' + group if group else ''}/{obj.name}"


def _crd_kinds(objects: Sequence[ManifestObject]) -> set[tuple[str, str]]:
    """(apiVersion, kind) pairs that CustomResourceDefinitions of this batch will serve."""
    served = set()
    for obj in objects:
        if obj.kind != "CustomResourceDefinition":
            continue
        spec = obj.body.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind")
        versions = [v.get("name") for v in spec.get("versions") or [] if isinstance(v, dict)]
        versions += [spec["version"]] if spec.get("version") else []
        served |= {(f"{spec.get('group')}/{v}", kind) for v in versions if v and kind}
    return served


def _plan(
    cluster: Cluster,
    objects: Sequence[ManifestObject],
    namespace: str,
    image_overrides: Mapping[tuple[str, str], Mapping[str, str]],
    openapi: dict,
    *,
    explicit_namespace: bool = False,
    kinds_coming: bool = False,
) -> list[_Planned]:
    """Resolve every object's resource, namespace and final body; raise all problems at once.

    Each manifest is also checked against the cluster's OpenAPI schema as kubectl's
    `--validate=strict` checks it (unknown fields, wrong types, missing required ones).
    """
    from_crds = _crd_kinds(objects)
    planned: list[_Planned] = []
    problems: list[str] = []
    for obj in objects:
        if explicit_namespace and obj.namespace and obj.namespace != namespace:
            problems.append(
                f"{obj.where}: the namespace from the provided object {obj.namespace!r} does "
                f"not match the namespace {namespace!r} of the line's -n; pass "
                f"--namespace={obj.namespace} or drop the object's metadata.namespace "
                "(kubectl refuses it the same way)"
            )
            continue
        invalid = validation_errors(openapi, obj.api_version, obj.kind, obj.body)
        if invalid:
            problems.append(
                f"{obj.where}: {_target(obj)}: error validating data: {aggregate(invalid)}; "
                "fix the field (`kubectl explain` shows what the kind has)"
            )
            continue
        resource = cluster.resource(obj.api_version, obj.kind)
        if resource is None and kinds_coming:
            continue  # an earlier step's CustomResourceDefinition may serve it: checked then
        if resource is None and (obj.api_version, obj.kind) not in from_crds:
            problems.append(
                f"{obj.where}: the cluster does not serve kind {obj.kind} in apiVersion "
                f"{obj.api_version}; check the kind and apiVersion (`kubectl api-resources` "
                "lists what the cluster serves) or apply the CustomResourceDefinition first"
            )
            continue
        body = copy.deepcopy(obj.body)
        # kubectl gives namespaced objects the namespace of the command when they have none
        # (and writes it into the last-applied annotation); cluster-scoped ones get none.
        namespaced = resource.namespaced if resource is not None else True
        object_namespace = (obj.namespace or namespace) if namespaced else None
        if object_namespace:
            body["metadata"]["namespace"] = object_namespace
        annotation = last_applied_configuration(body)
        overrides = image_overrides.get((obj.kind, obj.name))
        if overrides:
            try:
                body, _ = with_images(body, overrides, where=f"{obj.where} {_target(obj)}")
            except ShiplineError as exc:
                problems.append(str(exc))
                continue
        metadata = body["metadata"]
        metadata["annotations"] = {**(metadata.get("annotations") or {}), LAST_APPLIED: annotation}
        planned.append(_Planned(obj, _target(obj), object_namespace, resource, body))
    if problems:
        raise ManifestError("nothing was applied:\n" + "\n".join(problems))
    return planned


def _schema_for(plan: _Planned, openapi: dict) -> PatchSchema | None:
    group, _, version = plan.obj.api_version.rpartition("/")
    return patch_schema(openapi, group, version, plan.obj.kind)


@dataclass(frozen=True)
class _Change:
    """What applying one object takes, worked out from the live object at one moment."""

    action: str  # created | configured | unchanged
    patch: dict | None = None  # for configured
    content_type: str = _STRATEGIC
    resource_version: str | None = None  # of the live object the patch was made against
    unannotated: bool = False  # the live object has no last-applied annotation


def _prepare_one(cluster: Cluster, plan: _Planned, openapi: dict) -> _Change:
    """Read the live object and make kubectl's three-way patch against it."""
    with api_call(f"reading {plan.target}"):
        try:
            live = cluster.dynamic.get(plan.resource, name=plan.obj.name, namespace=plan.namespace)
            current = live.to_dict()
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise
            current = None
    if current is None:
        return _Change("created")
    metadata = current.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    original = json.loads(annotations[LAST_APPLIED]) if annotations.get(LAST_APPLIED) else None
    schema = _schema_for(plan, openapi)
    patch = three_way_patch(original, plan.modified, current, schema)
    if not patch:
        return _Change("unchanged")
    return _Change(
        "configured",
        patch=patch,
        content_type=_STRATEGIC if schema is not None else _MERGE,
        resource_version=metadata.get("resourceVersion"),
        unannotated=original is None,
    )


def _send(
    cluster: Cluster, plan: _Planned, change: _Change, *, dry_run: bool, conditional: bool
) -> None:
    """Create or patch as `change` says.

    `conditional` puts the resourceVersion the patch was made against into it, so the
    server refuses it with 409 Conflict when the object changed since it was read.
    """
    options: dict[str, Any] = {"field_manager": FIELD_MANAGER}
    if dry_run:
        options["dry_run"] = "All"
    if change.action == "created":
        with api_call(f"creating {plan.target}"):
            cluster.dynamic.create(
                plan.resource, body=plan.modified, namespace=plan.namespace, **options
            )
    elif change.action == "configured":
        assert change.patch is not None
        patch = change.patch
        if conditional and change.resource_version:
            metadata = {**patch.get("metadata", {}), "resourceVersion": change.resource_version}
            patch = {**patch, "metadata": metadata}
        with api_call(f"applying {plan.target}"):
            cluster.dynamic.patch(
                plan.resource,
                body=patch,
                name=plan.obj.name,
                namespace=plan.namespace,
                content_type=change.content_type,
                **options,
            )


_MISSING_NAMESPACE = re.compile(r'namespaces "([^"]+)" not found')


def _hints(problems: list[str]) -> list[str]:
    """What to do, once, for refusals that share a cause (every object of a new namespace)."""
    missing = sorted({m for problem in problems for m in _MISSING_NAMESPACE.findall(problem)})
    return [
        f"namespace {name} does not exist: create it (`kubectl create namespace {name}`) "
        "or apply a Namespace manifest before these objects"
        for name in missing
    ]


def _dry_run_one(cluster: Cluster, plan: _Planned, openapi: dict) -> _Change:
    """Check one object with a server-side dry run; the change to make for real."""
    change = _prepare_one(cluster, plan, openapi)
    _send(cluster, plan, change, dry_run=True, conditional=False)
    return change


def _apply_one(
    cluster: Cluster, plan: _Planned, openapi: dict, checked: _Change | None, log: Any
) -> str:
    """Apply one object for real; the action word kubectl would print.

    The change the dry run worked out is sent as it is, on condition that the object is
    still the version it was made against (this saves reading every object twice). When
    it is not (409: anything changed it since, its status included; 404: it was deleted;
    409 on create: someone created it), the object is read again and the patch made
    anew and sent as kubectl sends it, retrying a conflict as kubectl's apply does.
    """
    if checked is not None:
        try:
            return _send_logged(cluster, plan, checked, log, conditional=True)
        except (Refused, NotFound) as exc:
            if isinstance(exc, Refused) and exc.status != 409:
                raise
    for attempt in range(_CONFLICT_RETRIES):
        change = _prepare_one(cluster, plan, openapi)
        try:
            return _send_logged(cluster, plan, change, log, conditional=False)
        except Refused as exc:
            if exc.status != 409 or attempt == _CONFLICT_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _send_logged(
    cluster: Cluster, plan: _Planned, change: _Change, log: Any, *, conditional: bool
) -> str:
    if change.unannotated:
        log.warning(
            "%s has no %s annotation (it was not created by kubectl apply); it will be "
            "patched automatically",
            plan.target,
            LAST_APPLIED,
        )
    _send(cluster, plan, change, dry_run=False, conditional=conditional)
    return change.action


def _refused(plan: _Planned, exc: ShiplineError, *, dry_run: bool) -> str:
    stage = "the server-side dry run refused" if dry_run else "the cluster refused"
    return f"{plan.obj.where}: {stage} {plan.target}: {exc}"


def _wait_served(cluster: Cluster, plan: _Planned) -> Any:
    """The resource of a kind whose CustomResourceDefinition was just applied."""
    deadline = time.monotonic() + _CRD_WAIT_SECONDS
    while True:
        with api_call("refreshing the API server's resource list"):
            cluster.dynamic.resources.invalidate_cache()
        cluster.forget_openapi()  # the new kind's schema comes with it
        resource = cluster.resource(plan.obj.api_version, plan.obj.kind)
        if resource is not None:
            return resource
        if time.monotonic() > deadline:
            raise ApplyError(
                f"{plan.obj.where}: kind {plan.obj.kind} in {plan.obj.api_version} is still "
                f"not served {_CRD_WAIT_SECONDS:.0f} s after its CustomResourceDefinition "
                "was applied; check the CRD's status conditions (`kubectl get crd -o yaml`)"
            )
        time.sleep(1.0)


def apply_objects(
    cluster: Cluster,
    objects: Sequence[ManifestObject],
    *,
    namespace: str,
    image_overrides: Mapping[tuple[str, str], Mapping[str, str]] = {},
    dry_run: bool = False,
    explicit_namespace: bool = False,
    namespaces_coming: frozenset[str] = frozenset(),
    kinds_coming: bool = False,
    log: logging.Logger | logging.LoggerAdapter = _log,
) -> list[ApplyResult]:
    """Apply ``objects`` like ``kubectl apply -n NAMESPACE``, all or nothing up front.

    Every object is first checked (kind served, image overrides match a container) and
    dry-run on the server; any failure raises one error listing every object at fault
    and nothing is applied. Then objects are applied in `apply_order`, one kubectl-style
    line logged per object. With ``dry_run`` only the server-side dry run happens and
    the lines end in `` (server dry run)``.

    ``image_overrides`` maps (kind, name) to {container name or ``*``: image}.
    ``explicit_namespace`` says NAMESPACE came from the line's own ``-n``: an object of
    another namespace is refused, as kubectl refuses it. ``namespaces_coming`` and
    ``kinds_coming`` tell a dry run of a step ahead of its turn what earlier steps will
    create (Namespaces; CustomResourceDefinitions): objects that need them are checked
    when applied, not refused now.
    """
    openapi = cluster.openapi()
    planned = _plan(
        cluster,
        objects,
        namespace,
        image_overrides,
        openapi,
        explicit_namespace=explicit_namespace,
        kinds_coming=kinds_coming,
    )
    creating_namespaces = {p.obj.name for p in planned if p.obj.kind == "Namespace"}
    creating_namespaces |= namespaces_coming

    def check(plan: _Planned) -> _Change | ShiplineError | None:
        if plan.resource is None or (
            plan.namespace in creating_namespaces and not _namespace_exists(cluster, plan)
        ):
            # Its kind or namespace comes with this batch: the server can check it only
            # once those exist, so it is checked when applied.
            log.debug("%s: checked when applied (its kind or namespace is new)", plan.target)
            return None
        try:
            return _dry_run_one(cluster, plan, openapi)
        except ShiplineError as exc:
            return exc

    # A dry run changes nothing, so the objects are checked concurrently; the real apply
    # below keeps kubectl's one-at-a-time order.
    with ThreadPoolExecutor(max_workers=_DRY_RUN_WORKERS) as pool:
        checked = list(pool.map(check, planned))
    for outcome in checked:
        if isinstance(outcome, ShiplineError) and outcome.retryable:
            raise outcome
    problems = [
        _refused(plan, outcome, dry_run=True)
        for plan, outcome in zip(planned, checked, strict=True)
        if isinstance(outcome, ShiplineError)
    ]
    if problems:
        # The server refused the manifests themselves: bad input, nothing changed.
        raise ManifestError("nothing was applied:\n" + "\n".join(problems + _hints(problems)))
    changes = {id(plan.obj): change for plan, change in zip(planned, checked, strict=True)}

    results: list[ApplyResult] = []
    if dry_run:
        for plan in planned:
            change = changes[id(plan.obj)]
            action = change.action if isinstance(change, _Change) else "created"
            log.info("%s %s%s", plan.target, action, _DRY_RUN_SUFFIX)
            results.append(ApplyResult(plan.target, action))
        return results

    order = {id(p.obj): p for p in planned}
    failures: list[str] = []
    for obj in apply_order([p.obj for p in planned]):
        plan = order[id(obj)]
        change = changes[id(obj)]
        try:
            if plan.resource is None:
                plan.resource = _wait_served(cluster, plan)
            action = _apply_one(
                cluster, plan, openapi, change if isinstance(change, _Change) else None, log
            )
        except ShiplineError as exc:
            if exc.retryable:
                raise
            # kubectl goes on with the other objects and reports every failure at the end.
            failures.append(_refused(plan, exc, dry_run=False))
            continue
        log.info("%s %s", plan.target, action)
        results.append(ApplyResult(plan.target, action))
    if failures:
        applied = ", ".join(f"{r.target} {r.action}" for r in results) or "nothing"
        raise ApplyError("\n".join(failures) + f"\n(applied: {applied})")
    return results


def _namespace_exists(cluster: Cluster, plan: _Planned) -> bool:
    try:
        return cluster.get("v1", "Namespace", plan.namespace or "", None) is not None
    except NotFound:
        return False
