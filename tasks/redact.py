"""Keep secret values out of logs, artifacts, events and error messages.

Which values are secret is said, never guessed: variables the user marks (`--secret
NAME`, a list in prefect.yaml), values of Prefect Secret blocks, registry passwords and
kube tokens. Every text shipline emits passes through one `Redactor`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

MASK = "***"
_SHORTEST_LINE = 4  # a line of a multi-line secret shorter than this is no secret alone


class Redactor:
    """Replace every known secret value in a text with `***`."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        """Also mask `values` (empty strings are ignored: they would match everywhere).

        Each value is also masked as JSON and Python quote it (the API server echoes a
        refused value in JSON, a repr() escapes quotes and backslashes), as output decoded
        with replacement characters shows it, and line by line.
        """
        for value in values:
            if value:
                forms = [value, _json_form(value), _repr_form(value), _decoded_form(value)]
                # Output is logged line by line: a multi-line value (a key, a file) is
                # masked per line too.
                forms += [line for line in value.splitlines() if len(line) >= _SHORTEST_LINE]
                self._values.update(form for form in forms if form)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(self._values, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        """The text with every secret value replaced by `***`."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def within(self, data: Any) -> Any:
        """``data`` (JSON-like: dicts, lists, strings) with every string masked."""
        if isinstance(data, str):
            return self(data)
        if isinstance(data, dict):
            return {self.within(key): self.within(value) for key, value in data.items()}
        if isinstance(data, (list, tuple)):
            return [self.within(item) for item in data]
        return data

    def __bool__(self) -> bool:
        return bool(self._values)

    def error(self, exc: BaseException) -> BaseException:
        """`exc` with its message masked, cut from its chain (which may hold the values).

        The same class and attributes where its message is its args; otherwise a
        ShiplineError carrying the class name and the masked text.
        """
        from tasks.errors import ShiplineError

        text = str(exc)
        if not self or (self(text) == text and not _chain_leaks(exc, self)):
            return exc
        if type(exc).__str__ is BaseException.__str__:
            # Not copy.copy: that calls __init__ with args alone, which some classes refuse.
            masked = type(exc).__new__(type(exc))
            masked.__dict__.update(exc.__dict__)
            masked.args = tuple(self(a) if isinstance(a, str) else a for a in exc.args)
        else:
            masked = ShiplineError(f"{type(exc).__name__}: {self(text)}")
        masked.__cause__ = None
        masked.__context__ = None
        masked.__suppress_context__ = True
        masked.__traceback__ = exc.__traceback__
        return masked


@contextlib.contextmanager
def masked_errors(redactor: Redactor) -> Iterator[None]:
    """Re-raise an exception of the block with the secrets in its message masked."""
    try:
        yield
    except Exception as exc:
        clean = redactor.error(exc)
        if clean is exc:
            raise
        raise clean from None


def _decoded_form(value: str) -> str:
    """``value`` as output decoded with replacement shows it (bytes that are not UTF-8)."""
    return os.fsencode(value).decode("utf-8", errors="replace")


def _json_form(value: str) -> str:
    return json.dumps(value)[1:-1]


def _repr_form(value: str) -> str:
    return repr(value)[1:-1]


def _chain_leaks(exc: BaseException, redactor: Redactor) -> bool:
    """Whether an exception this one came from says a secret value."""
    seen = 0
    link = exc.__cause__ or exc.__context__
    while link is not None and seen < 20:
        text = str(link)
        if redactor(text) != text:
            return True
        link, seen = link.__cause__ or link.__context__, seen + 1
    return False


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's final message."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, masked, so handlers never see the raw values."""
        if self.redactor:
            message = record.getMessage()
            masked = self.redactor(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True
