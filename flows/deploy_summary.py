"""What a deploy run did, and its summary as markdown (pure: no Prefect, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DeployOutcome:
    """The results of a run's task runs, gathered as they complete."""

    plan_ids: list[str]
    commit: str = ""
    namespace: str = ""
    builds: list[tuple[str, Any, bool]] = field(default_factory=list)  # (id, result, cached)
    applied: list[str] = field(default_factory=list)  # kubectl-style lines
    changes: list[Any] = field(default_factory=list)  # WorkloadChange, in change order
    rollouts: list[Any] = field(default_factory=list)  # WaitResult
    shell: list[tuple[str, int]] = field(default_factory=list)
    failure: BaseException | None = None
    failed_step: str | None = None
    not_run: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)

    def record(self, planned: Any, result: Any, *, cached: bool) -> None:
        """Keep what a completed step returned."""
        kind = planned.step.kind
        if kind == "build":
            self.builds.append((planned.id, result, cached))
        elif kind == "apply":
            applied, changes = result
            self.applied.extend(f"{r.target} {r.action}" for r in applied)
            self.changes.extend(changes)
        elif kind in ("set-image", "restart"):
            self.changes.extend(result)
        elif kind == "wait":
            self.rollouts.append(result)
        elif kind == "shell":
            self.shell.append((planned.id, result))

    def fail(self, planned: Any, error: BaseException | None, state: Any) -> None:
        """Keep the first failure (later ones are consequences, logged by their tasks)."""
        if self.failure is None:
            self.failure = error or RuntimeError(
                f"{planned.id} ended {state.name}: {state.message or 'no message'}"
            )
            self.failed_step = planned.id

    def images(self) -> list[str]:
        """The images this run built or reused, by reference@digest."""
        return [f"{r.image}@{r.digest}" if r.digest else r.image for _, r, _ in self.builds]

    def as_dict(self) -> dict[str, Any]:
        """The flow's return value (what `shipline run` and the API show)."""
        return {
            "commit": self.commit,
            "namespace": self.namespace,
            "images": self.images(),
            "applied": self.applied,
            "rollouts": {r.target: round(r.seconds, 1) for r in self.rollouts},
            "changed": sorted({c.target for c in self.changes}),
        }


def summary_markdown(outcome: DeployOutcome) -> str:
    """The run's summary artifact: images, objects, rollouts, and what went wrong."""
    verdict = "failed" if outcome.failure else "succeeded"
    lines = [
        f"# Deploy of `{outcome.commit[:12]}` to `{outcome.namespace}`: {verdict}",
        "",
        "## Images",
        "",
        "| step | image | digest | build |",
        "|---|---|---|---|",
    ]
    for step_id, result, cached in outcome.builds:
        how = "cached" if cached else ("built" if result.built else "reused from registry")
        lines.append(f"| {step_id} | `{result.image}` | `{result.digest}` | {how} |")
    lines += ["", "## Objects applied", ""]
    lines += [f"- `{line}`" for line in outcome.applied] or ["- none"]
    lines += ["", "## Rollouts", "", "| workload | result | seconds |", "|---|---|---|"]
    for result in outcome.rollouts:
        verdict_text = "complete" if result.ok else result.message
        lines.append(f"| {result.target} | {verdict_text} | {result.seconds:.1f} |")
    if outcome.failure is not None:
        lines += ["", "## Failure", "", f"Step `{outcome.failed_step}`:", "", "```"]
        lines += [str(outcome.failure), "```"]
        if outcome.not_run:
            lines += ["", "Not run: " + ", ".join(f"`{i}`" for i in outcome.not_run)]
        if outcome.rolled_back:
            lines += ["", "## Rolled back", ""] + [f"- {m}" for m in outcome.rolled_back]
    return "\n".join(lines) + "\n"
