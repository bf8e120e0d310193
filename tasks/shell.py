"""Shell steps: a pipeline line shipline does not model runs verbatim in bash, in its place.

bash is the seam here: `bash -n` checks a line's syntax before anything runs, and bash
runs it as `bash -c LINE` would, with the pipeline's variables in its environment, as a
pipeline runner would. Output is streamed into the log line by line (secret values masked).

The line reaches bash on standard input, never in argv: Linux refuses any one argument
over 128 KiB (MAX_ARG_STRLEN), and a generated pipeline line can be longer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tasks.errors import PipelineError, ShellStepError

_log = logging.getLogger(__name__)
STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class ShellResult:
    """How a shell step ended."""

    command: str
    exit_code: int
    stdout_tail: str


# `bash -c LINE` without the argv limit: eval parses and runs the line as -c does (same
# $0, $-, $#, LINENO, exit status and messages, but a syntax error says "bash: eval: line
# N" where -c says "bash: -c: line N", and $_ starts empty). `$(<FILE)` reads the line
# without a command PATH could hide; it drops trailing newlines, which can matter (a
# final backslash-newline), so the line is sent with a "." that `%.` removes. The
# redirection, done after those expansions, gives the line's commands the /dev/null
# stdin they had. The line stays in a shell variable, never exported.
_RUN_FROM_STDIN = '__shipline_line=$(</dev/stdin); eval "${__shipline_line%.}" </dev/null'
_SENTINEL = b"."
_SHOWN_CHARS = 300


def _shown(command: str) -> str:
    """`command` for a message: a long line is cut, saying how long it is."""
    if len(command) <= _SHOWN_CHARS:
        return command
    return f"{command[:_SHOWN_CHARS]}… ({len(command)} characters)"


def _check_runnable(command: str, where: str) -> None:
    if "\0" in command:
        raise PipelineError(
            f"{where}: the line contains a NUL character, which bash cannot run; remove it"
        )


def check_syntax(command: str, *, where: str) -> None:
    """Raise PipelineError naming `where` (file:line) when bash cannot parse `command`."""
    _check_runnable(command, where)
    # /dev/stdin, not -c: same messages but for the "/dev/stdin: " prefix, and no argv limit.
    proc = subprocess.run(
        ["bash", "-n", "/dev/stdin"], input=os.fsencode(command), capture_output=True, timeout=30
    )
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        lines = stderr.strip().replace("/dev/stdin: ", "").splitlines()
        detail = "\n".join(_shown(line) for line in lines)
        raise PipelineError(f"{where}: not valid shell: {detail}; fix the quoting or syntax")


def _pump(stream: IO[str], sink: Callable[[str], None], tail: deque[str]) -> None:
    for raw in stream:
        line = raw.rstrip("\n")
        tail.append(line)
        sink(line)


def run_shell(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    where: str,
    log: logging.Logger | logging.LoggerAdapter = _log,
    mask: Callable[[str], str] = lambda text: text,
) -> ShellResult:
    """Run `command` as `bash -c` would, in `cwd`; raise ShellStepError when it exits non-zero.

    `where` names the pipeline line (file:line) in messages; `mask` hides secret values in
    everything logged or raised.
    """
    _check_runnable(command, where)
    proc = subprocess.Popen(
        ["bash", "-c", _RUN_FROM_STDIN],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    out_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    err_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    pumps = [
        threading.Thread(
            target=_pump, args=(proc.stdout, lambda s: log.info(mask(s)), out_tail), daemon=True
        ),
        threading.Thread(
            target=_pump, args=(proc.stderr, lambda s: log.warning(mask(s)), err_tail), daemon=True
        ),
    ]
    for pump in pumps:
        pump.start()
    assert proc.stdin is not None
    # bash reads the whole line before running any of it, so this write cannot wait on its
    # output; the bytes are those argv would have carried (os.fsencode).
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.buffer.write(os.fsencode(command) + _SENTINEL)
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()
    code = proc.wait()
    for pump in pumps:
        pump.join()
    if code != 0:
        # Masked before cut: a cut through a secret would leave the rest of it visible.
        stderr = "\n".join(_shown(mask(line)) for line in err_tail) or "(no output on stderr)"
        raise ShellStepError(
            mask(
                f"{where}: `{_shown(mask(command))}` exited with code {code}; last lines of "
                f"its stderr:\n{stderr}"
            )
        )
    return ShellResult(command=command, exit_code=code, stdout_tail=mask("\n".join(out_tail)))
