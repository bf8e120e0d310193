"""Errors leave with secrets masked: the message, its JSON and repr forms, the chain."""

from __future__ import annotations

import json

import pytest

from tasks.errors import ManifestError, TransientError
from tasks.kube import Refused
from tasks.redact import Redactor, masked_errors

SECRET = 'Hunter2 "quoted" \\ pw'


def test_message_forms_are_masked_and_the_class_kept() -> None:
    redactor = Redactor([SECRET])
    for text in (SECRET, json.dumps(SECRET), repr(SECRET)):
        masked = redactor.error(ManifestError(f"refused value {text} in labels"))
        assert type(masked) is ManifestError
        assert "Hunter2" not in str(masked)
        assert "***" in str(masked)


def test_attributes_and_retry_class_survive() -> None:
    redactor = Redactor([SECRET])
    masked = redactor.error(Refused(f"bad {SECRET}", 422))
    assert isinstance(masked, Refused) and masked.status == 422
    assert redactor.error(TransientError(f"x {SECRET}")).retryable


def test_a_chain_that_holds_the_secret_is_cut() -> None:
    redactor = Redactor([SECRET])
    with pytest.raises(ManifestError) as caught, masked_errors(redactor):
        try:
            raise ValueError(f"server said {SECRET}")
        except ValueError as exc:
            raise ManifestError("the manifest was refused") from exc
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_an_error_without_secrets_is_left_alone() -> None:
    redactor = Redactor([SECRET])
    original = ManifestError("nothing secret here")
    assert redactor.error(original) is original
    assert Redactor().error(original) is original


def test_an_exception_with_its_own_str_becomes_a_masked_shipline_error() -> None:
    class Odd(Exception):
        def __str__(self) -> str:
            return f"odd {SECRET}"

    masked = Redactor([SECRET]).error(Odd())
    assert str(masked) == "Odd: odd ***"
