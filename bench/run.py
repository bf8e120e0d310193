"""shipline side by side with the plain shell pipeline, on the local stack.

    python bench/run.py [--quick] [--json FILE] [--rounds N] [--case N ...]

Each case alternates shipline and its baseline (the docker CLI, the bash loop with
envsubst | kubectl apply, kubectl set image / rollout restart / rollout status) over
several rounds in this one run, in its own fresh namespace, and cleans up. The table
gives median, min and max per side and the ratio shipline / baseline (below 1: shipline
is faster or smaller). --quick runs every case once with small sizes (a few minutes) to
check that the cases work; the full run (15–30 minutes) is what counts.

Needs the stack: `shipline stack up`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases.harness import Row, Settings, stack_env

CASES = {
    1: "full_deploy",
    2: "apply_many",
    3: "cached_build",
    4: "missing_image",
    5: "task_overhead",
    6: "webhook_load",
    7: "peak_memory",
    8: "startup",
}


def _machine() -> str:
    cpus = len(__import__("os").sched_getaffinity(0))
    return f"{platform.node()} {platform.machine()} {cpus} CPUs, Python {platform.python_version()}"


def _cell(values: list[float] | None, unit: str) -> tuple[str, str, str]:
    if not values:
        return ("-", "-", "-")
    digits = 3 if unit == "s" else 1
    return tuple(f"{v:.{digits}f}" for v in (statistics.median(values), min(values), max(values)))


def print_table(rows: list[Row]) -> None:
    """The results as a rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="shipline vs the shell pipeline (ratio = shipline / baseline)")
    for column in ("case", "unit", "shipline med", "min", "max", "baseline med", "min", "max"):
        table.add_column(column, justify="left" if column == "case" else "right")
    table.add_column("ratio", justify="right")
    table.add_column("target")
    table.add_column("met")
    for row in rows:
        ratio = f"{row.ratio:.3f}" if row.ratio is not None else "-"
        verdict = "[green]yes[/green]" if row.met else "[red]NO[/red]"
        table.add_row(
            row.name,
            row.unit,
            *_cell(row.shipline, row.unit),
            *_cell(row.baseline, row.unit),
            ratio,
            row.target.text,
            verdict,
        )
    Console(width=200).print(table)
    for row in rows:
        if row.note:
            print(f"  {row.name}: {row.note}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="every case once, small sizes")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per case (full run)")
    parser.add_argument(
        "--case", type=int, action="append", choices=sorted(CASES), help="only these cases"
    )
    args = parser.parse_args()
    settings = Settings(quick=args.quick, rounds=1 if args.quick else args.rounds)
    env = stack_env()
    rows: list[Row] = []
    failed: list[str] = []
    for number in args.case or sorted(CASES):
        module = importlib.import_module(f"cases.{CASES[number]}")
        started = time.monotonic()
        print(f"case {number} ({CASES[number]}) ...", file=sys.stderr, flush=True)
        try:
            found = module.measure(settings, env)
        except Exception:
            # One broken case must not hide the others' numbers: report it as missed.
            traceback.print_exc()
            failed.append(CASES[number])
            continue
        rows += found
        print(
            f"case {number} done in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True
        )
    print_table(rows)
    if args.json:
        report = {
            "machine": _machine(),
            "quick": settings.quick,
            "cases": [row.as_json() for row in rows],
            "failed_cases": failed,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
