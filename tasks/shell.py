"""Shell steps: a pipeline line shipline does not model runs verbatim in bash, in its place.

bash is the seam here: `bash -n` checks a line's syntax before anything runs, and
`bash -c` runs it with the pipeline's variables in its environment, as a pipeline runner
would. Output is streamed into the log line by line (secret values masked).
"""

from __future__ import annotations

import logging
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


def check_syntax(command: str, *, where: str) -> None:
    """Raise PipelineError naming `where` (file:line) when bash cannot parse `command`."""
    proc = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        detail = proc.stderr.strip().replace("bash: -c: ", "")
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
    """Run `command` with `bash -c` in `cwd`; raise ShellStepError when it exits non-zero.

    `where` names the pipeline line (file:line) in messages; `mask` hides secret values in
    everything logged or raised.
    """
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
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
    code = proc.wait()
    for pump in pumps:
        pump.join()
    if code != 0:
        stderr = "\n".join(err_tail) or "(no output on stderr)"
        raise ShellStepError(
            mask(
                f"{where}: `{command}` exited with code {code}; last lines of its stderr:\n{stderr}"
            )
        )
    return ShellResult(command=command, exit_code=code, stdout_tail=mask("\n".join(out_tail)))
