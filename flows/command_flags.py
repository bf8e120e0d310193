"""How shipline reads the flags of okteto, docker and kubectl lines: pflag's rules.

All three tools parse flags with spf13/pflag (flag.go ``parseArgs``, ``parseLongArg``,
``parseSingleShortArg``): ``--name=value``, ``--name value``, ``-n value``, ``-nvalue``,
``-n=value``, flags anywhere among the arguments, ``--`` ending them. Also the shared
signals of command recognition: :class:`NotModelled` (run the line in bash instead) and
:class:`BadLine` (the tool itself would refuse the line).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from flows.steps import KubeScope

__all__ = [
    "BadLine",
    "Flag",
    "LineContext",
    "NotModelled",
    "absolute",
    "boolean_flag",
    "last_value",
    "parse_duration",
    "scan_flags",
]

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0}
_DURATION_UNITS |= {"m": 60.0, "h": 3600.0}
_DURATION_NUMBER = re.compile(r"\d*\.?\d*")


class NotModelled(Exception):
    """The command uses a feature shipline does not model; it runs verbatim in bash."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadLine(ValueError):
    """The command's own tool would refuse it; the message says why and what to fix."""


@dataclass(frozen=True)
class LineContext:
    """What a command needs to know about where it runs."""

    entry: int
    line: int
    command: str
    cwd: str
    registry: str
    scope_for: Callable[[str | None, str | None, str | None], KubeScope]
    environ: Mapping[str, str]
    # A shell line ran before this one: a manifest missing now may be created by it.
    files_may_appear: bool = False


@dataclass(frozen=True)
class Flag:
    """A flag a command accepts: long name, optional one-letter shorthand, boolean or not."""

    name: str
    short: str | None = None
    boolean: bool = False


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``90s``, ``5m``, ``1h2m3s``, ``1.5h``, ``0``).

    Mirrors Go's ``time.ParseDuration`` (time/format.go), which kubectl's ``--timeout``
    uses; raises :class:`ValueError` with Go's wording otherwise (``90`` lacks a unit).
    """
    invalid = ValueError(f'time: invalid duration "{text}"')
    body = text[1:] if text[:1] in "+-" else text
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    if not body:
        raise invalid
    position, total = 0, 0.0
    while position < len(body):
        number = _DURATION_NUMBER.match(body, position)
        if number is None or number.group() in ("", "."):
            raise invalid
        unit_end = number.end()
        while unit_end < len(body) and body[unit_end] != "." and not body[unit_end].isdigit():
            unit_end += 1
        unit = body[number.end() : unit_end]
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += float(number.group()) * _DURATION_UNITS[unit]
        position = unit_end
    return sign * total


def scan_flags(
    args: Sequence[str], flags: Sequence[Flag], tool: str
) -> tuple[dict[str, list[str]], list[str]]:
    """Split ``args`` into flag values (by long name, in order) and positional arguments.

    An unknown flag raises :class:`NotModelled`; a value flag at the end, :class:`BadLine`.
    """
    by_name = {flag.name: flag for flag in flags}
    by_short = {flag.short: flag for flag in flags if flag.short}
    values: dict[str, list[str]] = {}
    positionals: list[str] = []
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            positionals.extend(rest)
            break
        if len(arg) < 2 or not arg.startswith("-"):
            positionals.append(arg)
            continue
        if arg.startswith("--"):
            name, has_value, inline = arg[2:].partition("=")
            flag = by_name.get(name.replace("_", "-"))
            if flag is None:
                raise NotModelled(f"{tool} flag --{name} is not modelled")
            value = inline if has_value else _flag_value(flag, rest, arg, tool)
        else:
            flag = by_short.get(arg[1])
            if flag is None:
                raise NotModelled(f"{tool} flag {arg[:2]} is not modelled")
            if len(arg) > 2 and arg[2] == "=":
                value = arg[3:]
            elif flag.boolean:
                if len(arg) > 2:
                    raise NotModelled(f"combined {tool} flags {arg} are not modelled")
                value = "true"
            elif len(arg) > 2:
                value = arg[2:]
            else:
                value = _flag_value(flag, rest, arg, tool)
        values.setdefault(flag.name, []).append(value)
    return values, positionals


def _flag_value(flag: Flag, rest: list[str], arg: str, tool: str) -> str:
    if flag.boolean:
        return "true"
    if not rest:
        raise BadLine(f"{tool}: flag needs an argument: {arg}")
    return rest.pop(0)


def last_value(values: dict[str, list[str]], name: str) -> str | None:
    """The last value given for a flag (pflag keeps the last), or ``None``."""
    given = values.get(name)
    return given[-1] if given else None


def boolean_flag(values: dict[str, list[str]], name: str, tool: str) -> bool:
    """A boolean flag's value with Go's ``strconv.ParseBool`` spellings; absent is false."""
    value = last_value(values, name)
    if value is None:
        return False
    if value.lower() in ("true", "t", "1"):
        return True
    if value.lower() in ("false", "f", "0"):
        return False
    raise BadLine(f'{tool}: invalid argument "{value}" for "--{name}" flag')


def absolute(cwd: str, path: str) -> str:
    """``path`` resolved against ``cwd``, normalised."""
    return os.path.normpath(os.path.join(cwd, path))
