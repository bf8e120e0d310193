"""`shipline render` against the shell loop it replaces: `for f; do envsubst < "$f"; done`.

Both run as subprocesses with the same controlled environment; no cluster, no Prefect.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The console script installed next to the interpreter running the tests.
SHIPLINE = str(Path(sys.executable).with_name("shipline"))
LOOP = 'for f in "$@"; do /usr/bin/envsubst "${FORMAT[@]}" < "$f"; done'

# Variables as the process environment holds them: one value is not UTF-8.
VARIABLES = {
    "IMAGE": "registry.local/app:0123abc",
    "EMPTY": "",
    "LATIN1": os.fsdecode(b"caf\xe9"),
    "MULTI": "a\r\nb",
}

MANIFESTS = {
    "10-namespace.yaml": b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n",
    "20-deploy.yaml": (
        b"kind: Deployment\r\nimage: $IMAGE\r\nempty: '$EMPTY'\r\n"
        b"keep: $$ \\$IMAGE ${IMAGE:-x} $1 ${IMAGE\r\n"
    ),
    "30-binary.yaml": b"\xff\xfe bytes $LATIN1 \xc3\x28 ${MULTI}\x00tail $",
    "40-no-newline.yaml": b"x" * 9000 + b"$IMAGE",
    "50-empty.yaml": b"",
}


def run_env(**extra: str) -> dict[str, str]:
    """The controlled environment: PATH for the console script, the variables, ``extra``."""
    return {"PATH": os.environ["PATH"], **VARIABLES, **extra}


def shipline(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([SHIPLINE, *map(str, args)], env=env, capture_output=True)


def shell_loop(files: list[Path], env: dict[str, str], shell_format: str | None = None) -> bytes:
    script = ("FORMAT=(--)" if shell_format is None else 'FORMAT=(-- "$SF")') + "; " + LOOP
    if shell_format is not None:
        env = {**env, "SF": shell_format}
    return subprocess.run(
        ["/bin/bash", "-c", script, "loop", *map(str, files)],
        env=env,
        capture_output=True,
        check=True,
    ).stdout


@pytest.fixture
def manifests(tmp_path: Path) -> list[Path]:
    paths = []
    for name, content in MANIFESTS.items():
        path = tmp_path / name
        path.write_bytes(content)
        paths.append(path)
    return paths


def test_console_script_is_installed() -> None:
    assert Path(SHIPLINE).is_file(), f"{SHIPLINE} missing: run pip install -e '/work/main[test]'"


def test_render_equals_the_envsubst_loop(manifests: list[Path]) -> None:
    env = run_env()
    result = shipline("render", *manifests, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == shell_loop(manifests, env)
    assert b"registry.local/app:0123abc\r\n" in result.stdout
    assert b"caf\xe9" in result.stdout
    assert result.stderr == b""


def test_render_keeps_the_order_given(manifests: list[Path]) -> None:
    env = run_env(NS="team")
    reordered = manifests[::-1] + manifests[:1]
    result = shipline("render", *reordered, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == shell_loop(reordered, env)


@pytest.mark.parametrize("only", ["IMAGE", "$IMAGE,${MULTI}", "NS EMPTY", "UNSET, LATIN1"])
def test_render_only_equals_envsubst_shell_format(manifests: list[Path], only: str) -> None:
    env = run_env(NS="team")
    shell_format = " ".join(
        "${" + entry.strip("${}") + "}" for entry in only.replace(",", " ").split()
    )
    result = shipline("render", "--only", only, *manifests, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == shell_loop(manifests, env, shell_format)


def test_render_strict_passes_when_everything_is_set(manifests: list[Path]) -> None:
    env = run_env(NS="team")
    result = shipline("render", "--strict", *manifests, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == shell_loop(manifests, env)


def test_render_strict_fails_with_every_unset_name_and_prints_nothing(
    manifests: list[Path], tmp_path: Path
) -> None:
    agent = tmp_path / "60-agent.yaml"
    agent.write_bytes(b"a: 1\nuser: ${GRAFANA_USER}\r\npass: $GRAFANA_PASS $GRAFANA_USER\n")
    result = shipline("render", "--strict", *manifests, agent, env=run_env())
    assert result.returncode == 2
    assert result.stdout == b""
    stderr = result.stderr.decode()
    assert f"{manifests[0]}:4: variable NS is not set (strict mode)" in stderr
    assert f"{agent}:2: variable GRAFANA_USER is not set (strict mode)" in stderr
    assert f"{agent}:3: variable GRAFANA_PASS is not set (strict mode)" in stderr
    assert stderr.count("GRAFANA_USER is not set") == 1
    assert "Traceback" not in stderr


def test_render_strict_with_only_checks_listed_names(manifests: list[Path]) -> None:
    result = shipline("render", "--strict", "--only", "IMAGE", *manifests, env=run_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == shell_loop(manifests, run_env(), "$IMAGE")


def test_render_missing_file_exits_2_and_prints_nothing(
    manifests: list[Path], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.yaml"
    result = shipline("render", manifests[0], missing, env=run_env(NS="team"))
    assert result.returncode == 2
    assert result.stdout == b""
    assert str(missing) in result.stderr.decode()
    assert "No such file" in result.stderr.decode()


def test_render_directory_exits_2(tmp_path: Path) -> None:
    result = shipline("render", tmp_path, env=run_env())
    assert result.returncode == 2
    assert str(tmp_path) in result.stderr.decode()


def test_render_bad_only_list_exits_2_naming_the_entry(manifests: list[Path]) -> None:
    result = shipline("render", "--only", "IMAGE,registry/app", *manifests, env=run_env())
    assert result.returncode == 2
    assert result.stdout == b""
    assert "--only" in result.stderr.decode()
    assert "'registry/app'" in result.stderr.decode()


def test_render_does_not_import_prefect_or_clients(manifests: list[Path]) -> None:
    code = (
        "import sys\n"
        "from shipline import cli\n"
        "sys.argv = ['shipline', 'render', *sys.argv[1:]]\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "heavy = {'prefect', 'kubernetes', 'docker', 'httpx'}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "print(loaded, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, manifests)],
        env=run_env(NS="team"),
        capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().strip() == "[]"
