r"""GNU ``envsubst`` substitution, byte for byte, plus a strict mode.

Mirrors ``subst_from_stdin`` and ``find_variables`` in gettext's
``gettext-runtime/src/envsubst.c``
(https://git.savannah.gnu.org/gitweb/?p=gettext.git;a=blob;f=gettext-runtime/src/envsubst.c):
only ``$NAME`` and ``${NAME}`` are references, NAME being ASCII ``[A-Za-z_][A-Za-z0-9_]*``;
an unset name becomes empty; everything else (``$$``, ``\$``, ``${X:-y}``, ``$1``, ``${``
without its closing brace, a lone ``$``) is copied verbatim. The work is done on bytes so
CRLF, NUL and invalid UTF-8 pass through untouched, as they do through envsubst's
``getc``/``putchar`` loop.

Pure: stdlib only, no I/O.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from tasks.errors import InputError, SubstitutionError

__all__ = [
    "parse_allowlist",
    "referenced_names",
    "shell_format_names",
    "substitute",
]

_NAME = rb"[A-Za-z_][A-Za-z0-9_]*"

# One pass finds every reference. envsubst reads greedily: after ``$`` (and an optional
# ``{``) it takes the longest run of name characters; ``${NAME`` without ``}`` is not a
# reference. A failed ``${`` match cannot hide a later reference because names never
# contain ``$``, so resuming the scan one byte later gives envsubst's output.
_REFERENCE = re.compile(rb"\$(?:\{(" + _NAME + rb")\}|(" + _NAME + rb"))")

# An ``--only`` entry: ``FOO``, ``$FOO`` or ``${FOO}``.
_ALLOWLIST_ENTRY = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$?([A-Za-z_][A-Za-z0-9_]*)")
_ALLOWLIST_SEPARATORS = re.compile(r"[\s,]+")


def substitute(
    template: bytes,
    env: Mapping[str, str],
    *,
    only: frozenset[str] | None = None,
    strict: bool = False,
    source: str = "<stdin>",
) -> bytes:
    """Replace ``$NAME`` / ``${NAME}`` in ``template`` with values from ``env``, like envsubst.

    ``only``, when given, is the allowlist (envsubst's SHELL-FORMAT argument): references
    to other names stay verbatim. Values are encoded with ``os.fsencode`` so environment
    bytes that are not UTF-8 come back out unchanged.

    With ``strict``, a referenced name absent from ``env`` (an empty value counts as set)
    raises ``SubstitutionError`` listing every such name with ``source`` and the line of its
    first use; in allowlist mode only listed names are checked.
    """
    encoded: dict[bytes, bytes] = {}
    unset: set[str] = set()

    def replace(match: re.Match[bytes]) -> bytes:
        raw_name = match[1] or match[2]
        value = encoded.get(raw_name)
        if value is not None:
            return value
        name = raw_name.decode("ascii")
        if only is not None and name not in only:
            return match[0]
        text = env.get(name)
        if text is None:
            unset.add(name)
            value = b""
        else:
            value = os.fsencode(text)
        encoded[raw_name] = value
        return value

    result = _REFERENCE.sub(replace, template)
    if strict and unset:
        missing = [(name, line) for name, line in referenced_names(template, only) if name in unset]
        raise SubstitutionError(_unset_message(source, missing))
    return result


def referenced_names(template: bytes, only: frozenset[str] | None = None) -> list[tuple[str, int]]:
    """Return each name ``template`` references, once, with the 1-based line of its first use.

    Names come in order of first use; with ``only``, names outside the allowlist are left out.
    """
    first_lines: dict[str, int] = {}
    line = 1
    scanned = 0
    for match in _REFERENCE.finditer(template):
        line += template.count(b"\n", scanned, match.start())
        scanned = match.start()
        name = (match[1] or match[2]).decode("ascii")
        if (only is None or name in only) and name not in first_lines:
            first_lines[name] = line
    return list(first_lines.items())


def shell_format_names(shell_format: str) -> frozenset[str]:
    """Return the names envsubst would substitute given ``shell_format`` as its argument.

    This is envsubst's own reading of SHELL-FORMAT (``find_variables``): any text, of which
    only the ``$NAME`` and ``${NAME}`` references count, e.g. ``'${IMAGE}:$TAG'``. Use it
    for ``envsubst '...'`` in a pipeline line; ``parse_allowlist`` is the stricter ``--only``.
    """
    return frozenset(name for name, _ in referenced_names(os.fsencode(shell_format)))


def parse_allowlist(spec: str) -> frozenset[str]:
    """Parse an ``--only`` list: names separated by spaces and/or commas.

    Each entry is ``FOO``, ``$FOO`` or ``${FOO}``. Anything else, or an empty list, raises
    ``InputError`` naming the entry, because a malformed list would silently substitute
    less than the user meant (e.g. a list in double quotes that the shell expanded).
    """
    entries = [entry for entry in _ALLOWLIST_SEPARATORS.split(spec) if entry]
    if not entries:
        raise InputError(
            "the list of names to substitute is empty; give names like FOO, $FOO or ${FOO} "
            "and quote the list in single quotes so the shell does not expand it"
        )
    names: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        match = _ALLOWLIST_ENTRY.fullmatch(entry)
        if match is None:
            raise InputError(
                f"entry {position} of the list of names to substitute, {entry!r}, is not a "
                "variable name; write FOO, $FOO or ${FOO} (letters, digits, '_', not starting "
                "with a digit), separated by spaces or commas, in single quotes so the shell "
                "does not expand it"
            )
        names.add(match[1] or match[2])
    return frozenset(names)


def _unset_message(source: str, missing: list[tuple[str, int]]) -> str:
    """One line per unset name, so the user can fix all of them at once."""
    return "\n".join(
        f"{source}:{line}: variable {name} is not set (strict mode); "
        f"export it (or, for `shipline run`, pass --var {name}=...)"
        for name, line in missing
    )
