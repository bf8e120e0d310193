"""Case 8: start-up of whole processes.

- `shipline run` of a one-line pipeline (`true`) against the stack's Prefect server vs
  `python -c 'import prefect'`;
- `shipline plan`, `shipline render`, `shipline --help`: wall time, and that they import
  no Prefect module (checked once each in a separate process that lists sys.modules);
- `shipline run` with Prefect's temporary server (PREFECT_API_URL empty, no stack
  server found: SHIPLINE_STACK_DIR points at an empty folder), for comparison.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cases.harness import (
    REPORT_ONLY,
    Row,
    Settings,
    at_most,
    namespace,
    ratio_at_most,
    run,
    shipline_run,
    write_pipeline,
)

# Runs the CLI in-process and reports, at exit, how many prefect modules were imported.
_COUNT_PREFECT = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('PREFECT_MODULES', sum(1 for m in sys.modules "
    "if m == 'prefect' or m.startswith('prefect.')), file=sys.stderr))\n"
    "from shipline.cli import main\n"
    "sys.argv = ['shipline', *sys.argv[1:]]\n"
    "main()\n"
)


def _prefect_modules(args: list[str], env: dict[str, str]) -> int:
    done = run([sys.executable, "-c", _COUNT_PREFECT, *args], env, check=False)
    for line in done.stderr.splitlines():
        if line.startswith("PREFECT_MODULES"):
            return int(line.split()[1])
    raise RuntimeError(f"shipline {' '.join(args)}: no module count:\n{done.stderr[-2000:]}")


def measure(settings: Settings, env: dict[str, str]) -> list[Row]:
    """Alternate the processes; seconds each."""
    rounds = settings.rounds
    with tempfile.TemporaryDirectory() as tmp, namespace("startup", env) as ns:
        folder = Path(tmp)
        pipeline = write_pipeline(folder, ["true"])
        manifest = folder / "cm.yaml"
        manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${NAME}\n")
        empty_stack = folder / "no-stack"
        empty_stack.mkdir()
        temporary = {**env, "PREFECT_API_URL": "", "SHIPLINE_STACK_DIR": str(empty_stack)}
        commands = {
            "plan": ["plan", str(pipeline), "--commit", "x"],
            "render": ["render", str(manifest)],
            "--help": ["--help"],
        }
        times: dict[str, list[float]] = {
            "run": [],
            "import": [],
            "temporary": [],
            **{name: [] for name in commands},
        }
        for _ in range(rounds):
            times["run"].append(shipline_run(pipeline, env, commit="x", namespace=ns).seconds)
            times["import"].append(run([sys.executable, "-c", "import prefect"], env).seconds)
            for name, args in commands.items():
                times[name].append(run(["shipline", *args], env).seconds)
        # The temporary server is slow to start and not the case's subject: fewer rounds.
        for _ in range(min(rounds, 2)):
            times["temporary"].append(
                shipline_run(pipeline, temporary, commit="x", namespace=ns, timeout=300).seconds
            )
        imported = {name: _prefect_modules(args, env) for name, args in commands.items()}
    rows = [
        Row(
            "8 start-up: shipline run `true` vs python -c 'import prefect'",
            "s",
            times["run"],
            times["import"],
            ratio_at_most(1.6),
            note="whole processes against the stack's Prefect server",
        )
    ]
    for name in commands:
        rows.append(
            Row(
                f"8 start-up: shipline {name}",
                "s",
                times[name],
                None,
                at_most(0.5, "s"),
                note=f"prefect modules imported: {imported[name]}",
                checks={"imports no prefect module": imported[name] == 0},
            )
        )
    rows.append(
        Row(
            "8 start-up: shipline run `true`, Prefect's temporary server",
            "s",
            times["temporary"],
            times["import"],
            REPORT_ONLY,
            note="PREFECT_API_URL empty, no stack server: Prefect starts a temporary one",
        )
    )
    return rows
