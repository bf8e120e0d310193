r"""A tiny lexer for the bash lines of a deploy pipeline, keeping what ``shlex`` loses.

``shlex`` removes quotes, so after it ``"$IMAGE"`` and ``'$IMAGE'`` look alike, and it has
no idea of ``$NAME``. shipline must expand variables exactly where bash would (double quotes
expand, single quotes do not) and must notice every shell feature it does not model, so that
such a line runs verbatim in bash instead of being misread. This module turns a line into
:class:`Word` and :class:`Operator` tokens and expands words the way bash does for the simple
cases (:mod:`flows.shell_expansion`: parameters, field splitting, globs, quote removal).

It mirrors the token rules of bash's parser (``parse.y``, ``subst.c``) for: blanks, newlines,
comments, ``\\`` escapes and line continuations, single and double quotes, ``$NAME`` and
``${NAME}``, ``~`` at the start of a word, and the operators ``&& || ; | & < > ( )`` with
their multi-character forms. Everything else that bash would expand (``$(...)``, backquotes,
``${NAME:-x}``, ``$1``, ``$'...'``, brace expansion) is recorded in :attr:`Word.unsupported`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "GLOB_CHARACTERS",
    "Literal",
    "Operator",
    "Parameter",
    "ShellSyntaxError",
    "Token",
    "Word",
    "double_quoted_parts",
    "tokenize",
]

# Longest first: the lexer takes the longest operator that matches (bash's read_token).
_OPERATORS = (
    "<<<",
    "&&",
    "||",
    ";;",
    ">>",
    "<<",
    "<&",
    ">&",
    "&>",
    "|&",
    "<>",
    ">|",
    "&",
    "|",
    ";",
    "<",
    ">",
    "(",
    ")",
)
_METACHARACTERS = frozenset(" \t\n|&;<>()")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPECIAL_PARAMETERS = frozenset("0123456789@*#?$!-")
# Inside double quotes a backslash only escapes these (bash manual, "Double Quotes").
_DQUOTE_ESCAPABLE = frozenset('$`"\\\n')
GLOB_CHARACTERS = frozenset("*?[")


class ShellSyntaxError(ValueError):
    """The line is not valid shell (an unclosed quote, ``${``, ``$(`` or backquote)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Literal:
    """Literal text of a word; ``quoted`` when it came from quotes or a backslash."""

    text: str
    quoted: bool


@dataclass(frozen=True)
class Parameter:
    """A ``$NAME`` or ``${NAME}`` reference; ``quoted`` when inside double quotes."""

    name: str
    quoted: bool


Part = Literal | Parameter


@dataclass(frozen=True)
class Word:
    """One shell word: its parts, where it sits in the line, and what shipline cannot model."""

    parts: tuple[Part, ...]
    start: int
    end: int
    unsupported: tuple[str, ...] = ()

    def literal(self) -> str | None:
        """The word after quote removal when it has no expansion at all, else ``None``."""
        if self.unsupported or any(isinstance(p, Parameter) for p in self.parts):
            return None
        if any(not p.quoted and GLOB_CHARACTERS & set(p.text) for p in self.parts):
            return None
        return "".join(p.text for p in self.parts)

    def parameter_only(self) -> str | None:
        """The name when the word is exactly one ``$NAME`` (``"$f"``, ``${f}``), else ``None``."""
        if self.unsupported or len(self.parts) != 1:
            return None
        part = self.parts[0]
        return part.name if isinstance(part, Parameter) else None

    def parameters(self) -> frozenset[str]:
        """Names of the parameters the word references."""
        return frozenset(p.name for p in self.parts if isinstance(p, Parameter))


@dataclass(frozen=True)
class Operator:
    """A control or redirection operator (``&&``, ``|``, ``<``, ...) or a newline."""

    op: str
    start: int
    end: int


Token = Word | Operator


def tokenize(line: str) -> list[Token]:
    """Split a line of bash into words and operators, as bash's parser would.

    Raises :class:`ShellSyntaxError` (with the offset) for an unclosed quote, ``${``,
    ``$(`` or backquote: bash refuses such a line too.
    """
    return _Lexer(line).run()


def double_quoted_parts(text: str) -> tuple[list[Part], list[str]]:
    """Read all of ``text`` as the inside of double quotes: its parts and unsupported forms."""
    return _Lexer(text).double_quoted_body(0, closing=None)


class _Lexer:
    """A cursor over one line; each ``_read_*`` method consumes one construct."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def run(self, *, until_close_paren: bool = False) -> list[Token]:
        tokens: list[Token] = []
        depth = 0
        while True:
            self._skip_blanks()
            if self.pos >= len(self.text):
                if until_close_paren:
                    raise ShellSyntaxError("unclosed $( ... )", self.pos)
                return tokens
            char = self.text[self.pos]
            if char == "#":
                # Words are read whole, so a '#' seen here starts a word: a comment.
                self._skip_comment()
                continue
            if char == "\n":
                tokens.append(Operator("\n", self.pos, self.pos + 1))
                self.pos += 1
                continue
            if char in _METACHARACTERS:
                operator = self._read_operator()
                if until_close_paren and operator.op == "(":
                    depth += 1
                elif until_close_paren and operator.op == ")":
                    if depth == 0:
                        return tokens
                    depth -= 1
                tokens.append(operator)
                continue
            tokens.append(self._read_word())

    def _skip_blanks(self) -> None:
        while self.pos < len(self.text):
            if self.text[self.pos] in " \t":
                self.pos += 1
            elif self.text.startswith("\\\n", self.pos):
                self.pos += 2
            else:
                return

    def _skip_comment(self) -> None:
        newline = self.text.find("\n", self.pos)
        self.pos = len(self.text) if newline < 0 else newline

    def _read_operator(self) -> Operator:
        start = self.pos
        for op in _OPERATORS:
            if self.text.startswith(op, start):
                self.pos = start + len(op)
                return Operator(op, start, self.pos)
        raise AssertionError(f"no operator at {start}")  # pragma: no cover

    def _read_word(self) -> Word:
        start = self.pos
        parts: list[Part] = []
        unsupported: list[str] = []
        if self.text[self.pos] == "~":
            self._read_tilde(parts, unsupported)
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in _METACHARACTERS:
                break
            if char == "\\":
                self._read_backslash(parts)
            elif char == "'":
                parts.append(Literal(self._read_single_quoted(), True))
            elif char == '"':
                self.pos += 1
                body, problems = self.double_quoted_body(self.pos - 1, closing='"')
                parts.extend(body)
                unsupported.extend(problems)
            elif char == "$":
                self._read_dollar(parts, unsupported, quoted=False)
            elif char == "`":
                self._skip_backquoted()
                unsupported.append("command substitution `...`")
            else:
                parts.append(Literal(char, False))
                self.pos += 1
        merged = tuple(_merge_literals(parts))
        unquoted = "".join(p.text for p in merged if isinstance(p, Literal) and not p.quoted)
        if _looks_like_brace_expansion(unquoted):
            unsupported.append("brace expansion {a,b}")
        return Word(merged, start, self.pos, tuple(unsupported))

    def _read_tilde(self, parts: list[Part], unsupported: list[str]) -> None:
        # Tilde expansion: a bare '~' or '~/' at the start of a word is $HOME.
        end = self.pos + 1
        if end >= len(self.text) or self.text[end] == "/" or self.text[end] in _METACHARACTERS:
            parts.append(Parameter("HOME", True))
            self.pos = end
        else:
            unsupported.append("tilde expansion ~user")

    def _read_backslash(self, parts: list[Part]) -> None:
        nxt = self.pos + 1
        if nxt >= len(self.text):
            parts.append(Literal("\\", False))
            self.pos = nxt
        elif self.text[nxt] == "\n":
            self.pos = nxt + 1  # line continuation
        else:
            parts.append(Literal(self.text[nxt], True))
            self.pos = nxt + 1

    def _read_single_quoted(self) -> str:
        start = self.pos
        end = self.text.find("'", start + 1)
        if end < 0:
            raise ShellSyntaxError("unclosed single quote (')", start)
        self.pos = end + 1
        return self.text[start + 1 : end]

    def double_quoted_body(
        self, start: int, *, closing: str | None
    ) -> tuple[list[Part], list[str]]:
        """Read up to the closing quote (or the end when ``closing`` is None)."""
        parts: list[Part] = []
        unsupported: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if closing is not None and char == closing:
                self.pos += 1
                if not parts:
                    parts.append(Literal("", True))
                return parts, unsupported
            if char == "\\" and self.pos + 1 < len(self.text):
                nxt = self.text[self.pos + 1]
                if nxt == "\n":
                    pass
                elif nxt in _DQUOTE_ESCAPABLE:
                    parts.append(Literal(nxt, True))
                else:
                    parts.append(Literal("\\" + nxt, True))
                self.pos += 2
            elif char == "$":
                self._read_dollar(parts, unsupported, quoted=True)
            elif char == "`":
                self._skip_backquoted()
                unsupported.append("command substitution `...`")
            else:
                parts.append(Literal(char, True))
                self.pos += 1
        if closing is not None:
            raise ShellSyntaxError('unclosed double quote (")', start)
        return parts, unsupported

    def _read_dollar(self, parts: list[Part], unsupported: list[str], *, quoted: bool) -> None:
        start = self.pos
        nxt = self.text[start + 1 : start + 2]
        if nxt == "{":
            self._read_braced_parameter(parts, unsupported, quoted=quoted)
        elif nxt == "(":
            self.pos = start + 2
            self._nested(until_close_paren=True)
            unsupported.append("command substitution $(...)")
        elif nxt == "'" and not quoted:
            self.pos = start + 1
            self._skip_ansi_c_quoted()
            unsupported.append("ANSI-C quoting $'...'")
        elif nxt and _NAME.match(nxt):
            name = _NAME.match(self.text, start + 1)
            assert name is not None
            parts.append(Parameter(name.group(), quoted))
            self.pos = name.end()
        elif nxt and nxt in _SPECIAL_PARAMETERS:
            unsupported.append(f"special parameter ${nxt}")
            self.pos = start + 2
        else:
            # A '$' followed by nothing expandable is kept as it is (bash does the same).
            parts.append(Literal("$", quoted))
            self.pos = start + 1

    def _read_braced_parameter(
        self, parts: list[Part], unsupported: list[str], *, quoted: bool
    ) -> None:
        start = self.pos
        close = self._matching_brace(start + 2)
        inner = self.text[start + 2 : close]
        self.pos = close + 1
        if _NAME.fullmatch(inner):
            parts.append(Parameter(inner, quoted))
        else:
            unsupported.append(f"parameter expansion ${{{inner}}}")

    def _matching_brace(self, pos: int) -> int:
        depth = 0
        while pos < len(self.text):
            char = self.text[pos]
            if char == "\\":
                pos += 2
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                if depth == 0:
                    return pos
                depth -= 1
            pos += 1
        raise ShellSyntaxError("unclosed ${ (missing })", self.pos)

    def _nested(self, *, until_close_paren: bool) -> None:
        inner = _Lexer(self.text)
        inner.pos = self.pos
        try:
            inner.run(until_close_paren=until_close_paren)
        except ShellSyntaxError as exc:
            if exc.message.startswith("unclosed $("):
                raise ShellSyntaxError(exc.message, self.pos - 2) from None
            raise
        self.pos = inner.pos

    def _skip_backquoted(self) -> None:
        start = self.pos
        pos = start + 1
        while pos < len(self.text):
            if self.text[pos] == "\\":
                pos += 2
                continue
            if self.text[pos] == "`":
                self.pos = pos + 1
                return
            pos += 1
        raise ShellSyntaxError("unclosed backquote (`)", start)

    def _skip_ansi_c_quoted(self) -> None:
        start = self.pos
        pos = start + 1
        while pos < len(self.text):
            if self.text[pos] == "\\":
                pos += 2
                continue
            if self.text[pos] == "'":
                self.pos = pos + 1
                return
            pos += 1
        raise ShellSyntaxError("unclosed $'...' quote", start - 1)


def _merge_literals(parts: list[Part]) -> Iterator[Part]:
    pending: Literal | None = None
    for part in parts:
        if isinstance(part, Literal) and pending is not None and pending.quoted == part.quoted:
            pending = Literal(pending.text + part.text, part.quoted)
            continue
        if pending is not None:
            yield pending
            pending = None
        if isinstance(part, Literal):
            pending = part
        else:
            yield part
    if pending is not None:
        yield pending


def _looks_like_brace_expansion(unquoted: str) -> bool:
    # bash expands {a,b} and {1..3}; a lone '{' or '{}' stays literal (braces.c).
    return bool(re.search(r"\{[^{}]*(,|\.\.)[^{}]*\}", unquoted))
