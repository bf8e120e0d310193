"""Lines kubectl itself refuses: shipline refuses them too, with kubectl's own words.

Differential: each line runs through the real kubectl (/usr/bin/kubectl) pointed at a port
nothing listens on; these refusals happen before kubectl talks to any server.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from flows.pipeline import PipelineOptions, parse_pipeline
from tasks.errors import PipelineError

KUBECTL = "/usr/bin/kubectl"
# A closed local port: kubectl never gets an answer, so only its own checks speak.
OFFLINE = ["--server=http://127.0.0.1:1", "--request-timeout=2s"]

REFUSED = [
    "kubectl set image deploy/a c=x:1 deploy/b",
    "kubectl set image deploy a/b c=x:1",
    "kubectl set image deploy/ c=x:1",
    "kubectl rollout status deploy/a --timeout=90",
    "kubectl rollout status deploy/a --timeout=soon",
    "kubectl rollout status deploy/a --timeout=1x",
    "kubectl apply",
    "kubectl apply -f a.yaml b.yaml",
    "kubectl apply -f missing.yaml",
    "kubectl apply -f empty/",
    "kubectl apply -f empty/ -f notes/",
    "kubectl apply -f empty/ -f a.yaml",
    "kubectl apply -f 'emp*'",
]


def kubectl_error(line: str, cwd: Path) -> str:
    argv = shlex.split(line)
    completed = subprocess.run(
        [KUBECTL, *OFFLINE, *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=30
    )
    assert completed.returncode != 0, completed.stdout
    first = completed.stderr.strip().splitlines()[0]
    return re.sub(r"^(error|Error): ", "", first)


@pytest.mark.parametrize("line", REFUSED)
def test_refused_with_kubectls_message(line: str, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("kind: ConfigMap\n")
    (tmp_path / "b.yaml").write_text("kind: ConfigMap\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "README.txt").write_text("not a manifest\n")
    expected = kubectl_error(line, tmp_path)
    # kubectl's long hint after "resource/name form" is left out; the rest must match.
    expected = expected.split(" (e.g.")[0]
    with pytest.raises(PipelineError) as caught:
        parse_pipeline(
            f"deploy:\n  - {line}\n",
            path=tmp_path / "pipeline.yaml",
            options=PipelineOptions(commit="c"),
        )
    message = str(caught.value)
    assert "pipeline.yaml line 2: kubectl " in message
    assert expected in message


@pytest.mark.parametrize(
    "value", ["90", "soon", "1x", "1..5s", "5.", "ms", ".s", "1 s", "-", "", "1.5h", "0", "+2m"]
)
def test_timeout_durations_parse_like_kubectl(value: str, tmp_path: Path) -> None:
    from flows.command_flags import parse_duration

    completed = subprocess.run(
        [KUBECTL, *OFFLINE, "rollout", "status", "deploy/a", f"--timeout={value}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    flag_error = re.search(r'for "--timeout" flag: (.*)', completed.stderr)
    if flag_error:
        with pytest.raises(ValueError) as caught:
            parse_duration(value)
        assert str(caught.value) == flag_error.group(1)
    else:
        # kubectl accepted the flag and went on to call the (closed) server.
        assert "connection refused" in completed.stderr
        assert parse_duration(value) >= 0
