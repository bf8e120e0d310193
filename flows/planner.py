"""The DAG of a pipeline: which step waits for which, from what each step reads and writes.

Pure: the objects an apply step writes come from the ``objects_of`` callable (the manifest
loader in a run, a dict in tests). The rules (design.md "The DAG", issue 4 items 2 and 6):

* a build needs only the shell steps before it (and the builds of its ``depends_on``);
* an apply step whose objects include a workload that a later ``set image`` names (same
  namespace) is split: part 1 (everything that needs no new image) needs no build, so it
  runs while the image builds; part 2 (those workloads, applied with the final image as
  ``image_overrides``) needs part 1 and the builds of those images;
* set-image needs the builds of its images and every step that wrote its workloads before;
  restart needs the steps that wrote its workload; any change of a target needs the earlier
  changes of that target;
* a wait needs every step that changed its target, or every apply when none did;
* a shell step is a barrier: it needs every earlier step, every later step needs it.

Edges are kept short: a step before the latest barrier is reached through that barrier,
so a need on it becomes a need on the barrier (the same order, fewer edges).
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from flows.pipeline import Pipeline
from flows.steps import (
    ApplyStep,
    BuildStep,
    RestartStep,
    SetImageStep,
    ShellStep,
    Step,
    WaitStep,
)

__all__ = ["ObjectRef", "Plan", "PlannedStep", "plan_pipeline", "workload_target"]


@dataclass(frozen=True)
class ObjectRef:
    """One object an apply step writes, with its namespace resolved."""

    kind: str
    name: str
    namespace: str
    source: str = ""

    def target(self, run_namespace: str) -> str:
        """``deployment/server``, with ``@NAMESPACE`` when not the run's namespace."""
        return workload_target(self.kind, self.name, self.namespace, run_namespace)


@dataclass(frozen=True)
class PlannedStep:
    """A node of the DAG: the step, what it changes (``targets``) and what it waits for."""

    id: str
    step: Step
    targets: tuple[str, ...]
    needs: tuple[str, ...]
    objects: tuple[ObjectRef, ...] = ()
    image_overrides: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Plan:
    """The steps in a topological order (line order where free) and the edges between them."""

    steps: tuple[PlannedStep, ...]
    edges: tuple[tuple[str, str], ...]


def workload_target(kind: str, name: str, namespace: str, run_namespace: str) -> str:
    """The target string of an object: lower-case kind, name, ``@NAMESPACE`` if elsewhere."""
    target = f"{kind.lower()}/{name}"
    return target if namespace == run_namespace else f"{target}@{namespace}"


def plan_pipeline(pipeline: Pipeline, objects_of: Callable[[ApplyStep], list[ObjectRef]]) -> Plan:
    """Plan ``pipeline``: one node per step (two for a split apply) and their edges."""
    planner = _Planner(pipeline, objects_of)
    for index, step in enumerate(pipeline.steps):
        planner.add(index, step)
    return planner.plan()


class _Planner:
    """Walks the steps in line order, remembering who built, changed and fenced what."""

    def __init__(
        self, pipeline: Pipeline, objects_of: Callable[[ApplyStep], list[ObjectRef]]
    ) -> None:
        self.pipeline = pipeline
        self.objects_of = objects_of
        self.run_ns = pipeline.namespace
        self.nodes: list[PlannedStep] = []
        self.ids: set[str] = set()
        self.position: dict[str, int] = {}  # node id -> creation order
        self.barrier: str | None = None
        self.builds: dict[str, str] = {}  # image -> id of the latest build of it
        self.changes: dict[str, list[str]] = {}  # target -> ids of steps that changed it
        self.applies: list[str] = []
        # Step index of a later build -> ids of apply parts that carry its image.
        self.awaiting_build: dict[int, list[str]] = {}

    def add(self, index: int, step: Step) -> None:
        if isinstance(step, ShellStep):
            self._add_shell(step)
        elif isinstance(step, BuildStep):
            needs = [self.builds[image] for image in step.needs_images if image in self.builds]
            node = self._node("build", _image_label(step.image), step, (step.image,), needs)
            self.builds[step.image] = node.id
            for waiting in self.awaiting_build.pop(index, []):
                part = self.nodes[self.position[waiting]]
                self.nodes[self.position[waiting]] = replace(part, needs=(*part.needs, node.id))
        elif isinstance(step, ApplyStep):
            self._add_apply(index, step)
        elif isinstance(step, SetImageStep):
            targets = self._workload_targets(step.workload_kind, step.names, step.scope.namespace)
            needs = [self.builds[image] for _, image in step.images if image in self.builds]
            needs += self._changers(targets)
            self._changed(self._node("set-image", ",".join(step.names), step, targets, needs))
        elif isinstance(step, RestartStep):
            targets = self._workload_targets(step.workload_kind, step.names, step.scope.namespace)
            node = self._node(
                "restart", ",".join(step.names), step, targets, self._changers(targets)
            )
            self._changed(node)
        elif isinstance(step, WaitStep):
            targets = self._workload_targets(step.workload_kind, (step.name,), step.scope.namespace)
            needs = self._changers(targets) or list(self.applies)
            self._node("wait", step.name, step, targets, needs)

    def plan(self) -> Plan:
        ordered = _topological(self.nodes, self.position)
        edges = tuple((need, node.id) for node in ordered for need in node.needs)
        return Plan(tuple(ordered), edges)

    def _add_shell(self, step: ShellStep) -> None:
        # Everything since the last barrier, and that barrier: together, every earlier step.
        start = self.position[self.barrier] + 1 if self.barrier else 0
        earlier = [node.id for node in self.nodes[start:]]
        node = self._node("shell", str(step.entry), step, (), earlier)
        self.barrier = node.id

    def _add_apply(self, index: int, step: ApplyStep) -> None:
        objects = tuple(self.objects_of(step))
        overrides, later_builds = self._later_overrides(index, objects)
        rolled = {target for target, _, _ in overrides}
        first = tuple(o for o in objects if o.target(self.run_ns) not in rolled)
        second = tuple(o for o in objects if o.target(self.run_ns) in rolled)
        part1: PlannedStep | None = None
        if first or not second:
            targets = self._object_targets(first)
            part1 = self._node(
                "apply", _files_label(step.files), step, targets, self._changers(targets), first
            )
            self._changed(part1)
            self.applies.append(part1.id)
        if second:
            targets = self._object_targets(second)
            needs = [part1.id] if part1 else []
            # Earlier builds now; builds after the apply add themselves when planned.
            needs += [
                self.builds[image]
                for _, _, image in overrides
                if image in self.builds and image not in later_builds
            ]
            needs += self._changers(targets)
            label = ",".join(o.name for o in second)
            part2 = self._node("apply", label, step, targets, needs, second, overrides)
            for build_index in dict.fromkeys(later_builds.values()):
                self.awaiting_build.setdefault(build_index, []).append(part2.id)
            self._changed(part2)
            self.applies.append(part2.id)

    def _later_overrides(
        self, index: int, objects: Sequence[ObjectRef]
    ) -> tuple[tuple[tuple[str, str, str], ...], dict[str, int]]:
        """Later set-images of these objects up to a barrier, and the later builds they need.

        Returns (target, container, image) in line order, and for images a build after the
        apply produces (the latest such build before the set-image), that build's index.
        """
        written = {o.target(self.run_ns) for o in objects}
        overrides: list[tuple[str, str, str]] = []
        builds_seen: dict[str, int] = {}
        later_builds: dict[str, int] = {}
        for offset, later in enumerate(self.pipeline.steps[index + 1 :], start=index + 1):
            if isinstance(later, ShellStep):
                break  # a barrier between: the set-image may depend on what the shell did
            if isinstance(later, BuildStep):
                builds_seen[later.image] = offset
            if not isinstance(later, SetImageStep):
                continue
            targets = self._workload_targets(
                later.workload_kind, later.names, later.scope.namespace
            )
            for target in (t for t in targets if t in written):
                for container, image in later.images:
                    overrides.append((target, container, image))
                    if image in builds_seen:
                        later_builds[image] = builds_seen[image]
        return tuple(overrides), later_builds

    def _node(
        self,
        kind: str,
        label: str,
        step: Step,
        targets: Iterable[str],
        needs: Iterable[str],
        objects: tuple[ObjectRef, ...] = (),
        overrides: tuple[tuple[str, str, str], ...] = (),
    ) -> PlannedStep:
        node = PlannedStep(
            id=self._unique(f"{kind}[{label}]"),
            step=step,
            targets=tuple(dict.fromkeys(targets)),
            needs=self._fenced(needs),
            objects=objects,
            image_overrides=overrides,
        )
        self.position[node.id] = len(self.nodes)
        self.ids.add(node.id)
        self.nodes.append(node)
        return node

    def _fenced(self, needs: Iterable[str]) -> tuple[str, ...]:
        """Needs with every step before the latest barrier replaced by that barrier."""
        if self.barrier is None:
            return tuple(dict.fromkeys(needs))
        fence = self.position[self.barrier]
        fenced = [need if self.position[need] > fence else self.barrier for need in needs]
        return tuple(dict.fromkeys([self.barrier, *fenced]))

    def _unique(self, base: str) -> str:
        candidate, count = base, 1
        while candidate in self.ids:
            count += 1
            candidate = f"{base}-{count}"
        return candidate

    def _changers(self, targets: Iterable[str]) -> list[str]:
        return [changer for target in targets for changer in self.changes.get(target, [])]

    def _changed(self, node: PlannedStep) -> None:
        for target in node.targets:
            self.changes.setdefault(target, []).append(node.id)

    def _object_targets(self, objects: Iterable[ObjectRef]) -> tuple[str, ...]:
        return tuple(o.target(self.run_ns) for o in objects)

    def _workload_targets(self, kind: str, names: Iterable[str], namespace: str) -> tuple[str, ...]:
        return tuple(workload_target(kind, name, namespace, self.run_ns) for name in names)


def _topological(nodes: list[PlannedStep], position: dict[str, int]) -> list[PlannedStep]:
    """Kahn's algorithm taking the earliest-created ready node first (line order if free)."""
    waiting = {node.id: len(node.needs) for node in nodes}
    dependants: dict[str, list[str]] = {node.id: [] for node in nodes}
    for node in nodes:
        for need in node.needs:
            dependants[need].append(node.id)
    ready = [position[node.id] for node in nodes if not node.needs]
    heapq.heapify(ready)
    ordered: list[PlannedStep] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        ordered.append(node)
        for dependant in dependants[node.id]:
            waiting[dependant] -= 1
            if waiting[dependant] == 0:
                heapq.heappush(ready, position[dependant])
    if len(ordered) != len(nodes):  # pragma: no cover - needs only point backwards or at builds
        raise AssertionError("the plan has a cycle")
    return ordered


def _image_label(image: str) -> str:
    """``127.0.0.1:5000/team/pr12er-server:abc`` -> ``pr12er-server``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def _files_label(files: Sequence[str]) -> str:
    """``k8s`` for files of one folder, ``server`` for one file ``server.yaml``."""
    if not files:
        return "none"
    if len(files) == 1:
        return os.path.splitext(os.path.basename(files[0]))[0]
    common = os.path.commonpath(files)
    return os.path.basename(common) or common
