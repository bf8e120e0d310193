import logging
from pathlib import Path

import pytest

from tasks.errors import PipelineError, ShellStepError
from tasks.redact import MASK, RedactingFilter, Redactor
from tasks.shell import check_syntax, run_shell


def test_check_syntax_names_the_line():
    check_syntax("echo ok && true", where="p.yaml:3")
    with pytest.raises(PipelineError, match=r"p\.yaml:4: not valid shell"):
        check_syntax("echo 'unterminated", where="p.yaml:4")


def test_run_shell_streams_lines_and_masks(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    log = logging.getLogger("t.shell")
    with caplog.at_level(logging.INFO, logger="t.shell"):
        result = run_shell(
            'echo "a $TOKEN"; echo b >&2',
            cwd=tmp_path,
            env={"TOKEN": "s3cr3t", "PATH": "/usr/bin:/bin"},
            where="p.yaml:1",
            log=log,
            mask=Redactor(["s3cr3t"]),
        )
    assert result.exit_code == 0
    assert [r.getMessage() for r in caplog.records] in (
        [f"a {MASK}", "b"],
        ["b", f"a {MASK}"],
    )
    assert "s3cr3t" not in caplog.text


def test_run_shell_failure_carries_code_and_stderr_tail(tmp_path: Path):
    with pytest.raises(ShellStepError) as err:
        run_shell(
            "echo one >&2; echo $PASSWORD >&2; exit 3",
            cwd=tmp_path,
            env={"PASSWORD": "hunter2", "PATH": "/usr/bin:/bin"},
            where="p.yaml:7",
            mask=Redactor(["hunter2"]),
        )
    message = str(err.value)
    assert "p.yaml:7" in message and "exited with code 3" in message
    assert "one" in message and "hunter2" not in message and MASK in message


def test_redactor_masks_longest_first_and_ignores_empty():
    redact = Redactor(["abc", "abcdef", ""])
    assert redact("x abcdef y abc") == f"x {MASK} y {MASK}"
    assert not Redactor([""])
    assert Redactor()("text") == "text"


def test_redacting_filter_renders_args_masked():
    record = logging.LogRecord("n", logging.INFO, "f", 1, "token=%s", ("tok123",), None)
    assert RedactingFilter(Redactor(["tok123"])).filter(record)
    assert record.getMessage() == f"token={MASK}"
