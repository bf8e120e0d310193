"""How ``shipline plan`` shows a plan: its JSON contract and a table for people.

Also the glue that gives the planner the objects of each apply step (from the manifests).

Nothing here imports Prefect, the kubernetes client or the docker SDK: ``plan`` must start
fast and work without a cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from flows.pipeline import Pipeline
from flows.planner import ObjectRef, Plan
from flows.steps import ApplyStep
from tasks.errors import ManifestError

__all__ = ["objects_loader", "plan_json", "plan_table"]


def plan_json(plan: Plan) -> dict[str, Any]:
    """The plan as ``{"steps": [{"id", "kind", "line", "targets"}], "edges": [[from, to]]}``."""
    return {
        "steps": [
            {
                "id": node.id,
                "kind": node.step.kind,
                "line": node.step.line,
                "targets": list(node.targets),
            }
            for node in plan.steps
        ],
        "edges": [[source, target] for source, target in plan.edges],
    }


def plan_table(plan: Plan, *, title: str = "") -> Any:
    """A rich :class:`~rich.table.Table`: id, kind, line, targets, needs, one row a step."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title or None, title_justify="left")
    # fold, never "…": a cut id or image reference would be wrong, not just short.
    table.add_column("step", style="bold", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("targets", overflow="fold")
    table.add_column("needs", style="dim", overflow="fold")
    for node in plan.steps:
        targets = list(node.targets)
        if node.image_overrides:
            targets += [
                f"  image {container}={image}" for _, container, image in node.image_overrides
            ]
        # Text, not markup: ids like `build[server]` would read as style tags.
        table.add_row(
            Text(node.id),
            Text(node.step.kind),
            Text(str(node.step.line)),
            Text("\n".join(targets) or "-"),
            Text("\n".join(node.needs) or "-"),
        )
    return table


def objects_loader(
    pipeline: Pipeline, environ: Mapping[str, str] | None = None
) -> Callable[[ApplyStep], list[ObjectRef]]:
    """``objects_of`` for the planner: the objects each apply step's manifests hold.

    Reads the files with :func:`tasks.manifests.load_objects` (imported when first used),
    substituting the process environment plus the pipeline's variables as the run would;
    an object without ``metadata.namespace`` lands in the step's namespace. Raises
    :class:`~tasks.errors.ManifestError` for a manifest that cannot be read or parsed,
    or a step whose files hold no object at all.
    """
    env = {**(os.environ if environ is None else environ), **pipeline.variables}
    cache: dict[ApplyStep, list[ObjectRef]] = {}

    def objects_of(step: ApplyStep) -> list[ObjectRef]:
        if step not in cache:
            from tasks.manifests import load_objects

            loaded = load_objects(step.files, env, strict=False, only=step.substituted_names)
            if not loaded:
                shown = ", ".join(step.files[:3]) + (", …" if len(step.files) > 3 else "")
                raise ManifestError(
                    f"{pipeline.path} line {step.line}: no objects passed to apply: only "
                    f"empty documents or comments in {shown} (kubectl apply refuses this "
                    "too); add the manifests or remove the line"
                )
            cache[step] = [
                ObjectRef(
                    kind=obj.kind,
                    name=obj.name,
                    namespace=obj.namespace or step.scope.namespace,
                    source=str(obj.source),
                )
                for obj in loaded
            ]
        return cache[step]

    return objects_of
