"""Keep secret values out of logs, artifacts, events and error messages.

Which values are secret is said, never guessed: variables the user marks (`--secret
NAME`, a list in prefect.yaml), values of Prefect Secret blocks, registry passwords and
kube tokens. Every text shipline emits passes through one `Redactor`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "***"


class Redactor:
    """Replace every known secret value in a text with `***`."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        """Also mask `values` (empty strings are ignored: they would match everywhere)."""
        self._values.update(value for value in values if value)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(self._values, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        """The text with every secret value replaced by `***`."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def __bool__(self) -> bool:
        return bool(self._values)


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
