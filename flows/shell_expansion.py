"""Expand shell words the way bash does for the cases shipline models.

Parameter expansion (unset -> empty), field splitting of unquoted expansions on the default
``IFS``, pathname expansion of unquoted glob characters, quote removal: bash's order of
expansions (bash manual, "Shell Expansions"), for words that :mod:`flows.shell_words`
found free of anything else (command substitution and the like make a line a shell step).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from flows.shell_words import (
    GLOB_CHARACTERS,
    Literal,
    Parameter,
    ShellSyntaxError,
    Word,
    double_quoted_parts,
)

__all__ = ["expand_text", "expand_word", "expand_words"]

_IFS_WHITESPACE = " \t\n"


def expand_word(
    word: Word,
    env: Mapping[str, str],
    glob: Callable[[str], list[str]] | None = None,
) -> list[str]:
    """Expand one word into fields like bash: parameters, field splitting, globs, quotes.

    Unset parameters expand to the empty string. Unquoted expansions are split on blanks
    and newlines (the default ``IFS``); an unquoted word that expands to nothing vanishes.
    ``glob`` receives a pattern in which quoted characters are escaped with a backslash
    (bash's own convention, see ``quote_string_for_globbing`` in bash's pathexp.c) and
    returns the matches, or the pattern itself without escapes when nothing matches.
    """
    fields: list[list[tuple[str, bool]]] = []
    current: list[tuple[str, bool]] = []
    started = False
    for part in word.parts:
        if isinstance(part, Literal):
            current.append((part.text, part.quoted))
            started = started or part.quoted or bool(part.text)
            continue
        value = env.get(part.name, "")
        if part.quoted:
            current.append((value, True))
            started = True
            continue
        pieces = re.split(f"[{_IFS_WHITESPACE}]+", value)
        for index, piece in enumerate(pieces):
            if index > 0 and started:
                fields.append(current)
                current, started = [], False
            if piece:
                current.append((piece, False))
                started = True
    if started:
        fields.append(current)
    return [value for chunks in fields for value in _glob_field(chunks, glob)]


def expand_words(
    words: Sequence[Word],
    env: Mapping[str, str],
    glob: Callable[[str], list[str]] | None = None,
) -> list[str]:
    """Expand several words into the argument vector bash would build from them."""
    return [field for word in words for field in expand_word(word, env, glob)]


def expand_text(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$NAME`` and ``${NAME}`` in ``text`` as inside double quotes (no splitting).

    Used for values that are not shell lines but are expanded like them (the ``build``
    section of an Okteto manifest). Raises :class:`ShellSyntaxError` for unsupported forms.
    """
    parts, unsupported = double_quoted_parts(text)
    if unsupported:
        raise ShellSyntaxError(f"{unsupported[0]} is not supported here", 0)
    return "".join(env.get(p.name, "") if isinstance(p, Parameter) else p.text for p in parts)


def _glob_field(
    chunks: list[tuple[str, bool]], glob: Callable[[str], list[str]] | None
) -> list[str]:
    value = "".join(text for text, _ in chunks)
    has_glob = any(not quoted and GLOB_CHARACTERS & set(text) for text, quoted in chunks)
    if glob is None or not has_glob:
        return [value]
    pattern = "".join(text if not quoted else _escape_glob(text) for text, quoted in chunks)
    return glob(pattern)


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
