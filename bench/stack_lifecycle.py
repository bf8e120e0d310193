"""Time `shipline stack up` (warm, or cold with --cold) and `shipline stack down`.

    python bench/stack_lifecycle.py [--cold] [--rounds N] [--json FILE]

--cold first runs `shipline stack down --purge` (deletes the stack's data, images and the
cached Kubernetes build), so the first `up` installs, builds and creates everything.
Targets (issue 2): cold <= 15 min, warm <= 60 s, down <= 10 s.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time


def _timed(*args: str) -> float:
    started = time.monotonic()
    subprocess.run(["shipline", "stack", *args], check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"warm_up": [], "down": []}
    if args.cold:
        _timed("down", "--purge")
        results["cold_up"] = [_timed("up")]
    _timed("up")
    for _ in range(args.rounds):
        results["down"].append(_timed("down"))
        results["warm_up"].append(_timed("up"))
    targets = {"cold_up": 900.0, "warm_up": 60.0, "down": 10.0}
    report = {"machine": f"{platform.node()} {platform.machine()}", "cases": []}
    print(f"{'case':10} {'median':>8} {'min':>8} {'max':>8}  target")
    for name, values in results.items():
        median = statistics.median(values)
        met = median <= targets[name]
        print(
            f"{name:10} {median:8.1f} {min(values):8.1f} {max(values):8.1f}  "
            f"<= {targets[name]:.0f} s {'met' if met else 'MISSED'}"
        )
        report["cases"].append(
            {
                "name": name,
                "unit": "s",
                "shipline": {"median": median, "min": min(values), "max": max(values)},
                "baseline": None,
                "ratio": None,
                "target": f"<= {targets[name]:.0f} s",
                "met": met,
            }
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
