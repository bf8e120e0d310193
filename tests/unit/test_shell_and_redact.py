import logging
from pathlib import Path

import pytest

from tasks.errors import InputError, PipelineError, ShellStepError
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


# --- long lines: the line goes to bash on stdin, not in argv (MAX_ARG_STRLEN is 128 KiB) ---

BIG = 200 * 1024


def test_a_200_kb_echo_line_runs_and_is_masked(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    payload = "x" * BIG
    command = f"echo {payload} s3cr3t"
    check_syntax(command, where="p.yaml:9")
    log = logging.getLogger("t.shell.big")
    with caplog.at_level(logging.INFO, logger="t.shell.big"):
        result = run_shell(
            command,
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin"},
            where="p.yaml:9",
            log=log,
            mask=Redactor(["s3cr3t"]),
        )
    assert result.exit_code == 0
    assert [r.getMessage() for r in caplog.records] == [f"{payload} {MASK}"]


def test_a_failing_200_kb_line_names_the_line_and_cuts_the_command(tmp_path: Path):
    command = f": {'y' * BIG}; echo bad >&2; exit 4"
    with pytest.raises(ShellStepError) as err:
        run_shell(command, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, where="p.yaml:5")
    message = str(err.value)
    assert message.startswith("p.yaml:5: `: yyy") and "exited with code 4" in message
    assert f"({len(command)} characters)" in message and len(message) < 1000
    assert "bad" in message


def test_a_200_kb_line_with_a_syntax_error(tmp_path: Path):
    with pytest.raises(PipelineError) as err:
        check_syntax(f"echo {'z' * BIG} )", where="p.yaml:2")
    message = str(err.value)
    assert message.startswith("p.yaml:2: not valid shell: line 1: syntax error")
    assert len(message) < 2000


def test_a_nul_character_is_a_pipeline_error(tmp_path: Path):
    with pytest.raises(PipelineError, match=r"p\.yaml:3: the line contains a NUL"):
        check_syntax("echo a\0b", where="p.yaml:3")
    with pytest.raises(PipelineError, match=r"p\.yaml:3: the line contains a NUL"):
        run_shell("echo a\0b", cwd=tmp_path, env={}, where="p.yaml:3")


PROBE = r"""echo "0=$0 flags=$- line=$LINENO dir=$PWD v=$V"
f() { echo "f line=$LINENO $(caller)"; }; f
cat; read -r x; echo "read=$? stdin=$(readlink /proc/$$/fd/0)"
printf '%s\n' "${BASH_SOURCE[*]}|${FUNCNAME[*]}|$#|$SHLVL"
cat <<X
heredoc at $LINENO
X
nosuch-command-xyz
trap 'echo "trap $?"' EXIT
exit 7"""


@pytest.mark.parametrize(
    "command",
    [
        PROBE,
        "true",
        "false",
        "exit 3",
        "set -e; false; echo not reached",
        "echo 'a  b' \"$V\" $((1 + 2))",
        "kill -TERM $$",
        "echo out; echo err >&2",
        "for i in 1 2; do echo $i; done\necho second line $LINENO",
        "echo a \\\n",  # a final backslash-newline: no trailing newline may be lost
        "cat <<X\nno terminator\n\n",
        'printf \'%s|\' "$#" "$*"',
    ],
)
def test_behaves_as_bash_dash_c(tmp_path: Path, caplog: pytest.LogCaptureFixture, command: str):
    """Same output, exit status, $0, $-, LINENO, working folder and /dev/null stdin."""
    import subprocess

    env = {"PATH": "/usr/bin:/bin", "V": "value"}
    expected = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    log = logging.getLogger("t.shell.same")
    with caplog.at_level(logging.INFO, logger="t.shell.same"):
        try:
            code = run_shell(command, cwd=tmp_path, env=env, where="p.yaml:1", log=log).exit_code
        except ShellStepError as exc:
            code = int(str(exc).split("exited with code ")[1].split(";")[0])
    out = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    err = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert code == expected.returncode
    assert out == expected.stdout.splitlines()
    assert err == expected.stderr.splitlines()


def test_a_syntax_error_at_run_time_exits_2_after_the_lines_before_it(tmp_path: Path):
    # As with bash -c; only bash's prefix differs ("bash: eval: line 2" for "bash: -c: ...").
    long_word = "w" * BIG
    with pytest.raises(ShellStepError) as err:
        run_shell(f"echo first\necho {long_word} )", cwd=tmp_path, env={}, where="p.yaml:6")
    message = str(err.value)
    assert "exited with code 2" in message and "line 2: syntax error" in message
    assert len(message) < 2000  # the long line bash echoes back is cut too


@pytest.mark.parametrize("name", ["A B", "1X", "s3cr3t-value", "", "É"])
def test_a_secret_name_that_is_no_variable_name_is_refused(name: str) -> None:
    # `--secret VALUE` by mistake must not pass as "no value for the secret variable".
    from flows.deploy import _redactor

    with pytest.raises(InputError, match="expected the name of a variable"):
        _redactor({}, [name])
