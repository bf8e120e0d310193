"""The README opens with the two commands, and CI runs the README's test command."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _commands(readme: str) -> list[str]:
    """The indented command lines of the README's opening (before the first heading)."""
    opening = readme.split("\n## ", 1)[0]
    return [line.strip() for line in opening.splitlines() if line.startswith("    ")]


def test_readme_opens_with_main_job_and_test_command() -> None:
    commands = _commands((ROOT / "README.md").read_text())
    assert len(commands) == 2, commands
    main_job, tests = commands
    assert main_job.startswith("python3 -m pip install -e . && shipline ")
    assert "python3 -m pytest" in tests


def test_ci_runs_the_readme_test_command() -> None:
    tests = _commands((ROOT / "README.md").read_text())[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert tests in ci_lines
