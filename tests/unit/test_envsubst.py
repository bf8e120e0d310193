"""Tables for tasks.envsubst: GNU envsubst edge cases, the allowlist, strict mode."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tasks.envsubst import parse_allowlist, referenced_names, shell_format_names, substitute
from tasks.errors import InputError, SubstitutionError

ENV = {"A": "v", "EMPTY": "", "IMAGE": "registry/app:abc", "_x1": "u"}

# (template, expected) with ENV; UNSET is never set.
SUBSTITUTION_CASES = [
    (b"", b""),
    (b"plain text", b"plain text"),
    (b"$A", b"v"),
    (b"${A}", b"v"),
    (b"$A$A", b"vv"),
    (b"x$A-y", b"xv-y"),
    (b"$Ab", b""),  # the longest run of name characters is the name: Ab, unset
    (b"${A}b", b"vb"),
    (b"$_x1!", b"u!"),
    (b"$UNSET|", b"|"),
    (b"${UNSET}|", b"|"),
    (b"$EMPTY|", b"|"),
    (b"$$", b"$$"),
    (b"$$A", b"$v"),
    (b"\\$A", b"\\v"),  # no escaping: the backslash stays, the reference is replaced
    (b"${A:-y}", b"${A:-y}"),
    (b"${UNSET:-default}", b"${UNSET:-default}"),
    (b"$1", b"$1"),
    (b"$1A", b"$1A"),
    (b"${1}", b"${1}"),
    (b"${A", b"${A"),
    (b"${A x}", b"${A x}"),
    (b"${", b"${"),
    (b"${}", b"${}"),
    (b"${$A}", b"${v}"),
    (b"${{A}}", b"${{A}}"),
    (b"$", b"$"),
    (b"end $", b"end $"),
    (b"$A$", b"v$"),
    (b"$ A", b"$ A"),
    (b"$-A", b"$-A"),
    (b"$\xc3\xa9A", b"$\xc3\xa9A"),  # names are ASCII only
    (b"$A\xc3\xa9", b"v\xc3\xa9"),
    (b"a: $A\r\nb: ${A}\r\n", b"a: v\r\nb: v\r\n"),
    (b"\xff\xfe$A\x00$A", b"\xff\xfev\x00v"),
    (b"image: $IMAGE\n", b"image: registry/app:abc\n"),
    (b"$IMAGE_TAG", b""),  # a longer name is another name
    (b"'$A' \"$A\" `$A`", b"'v' \"v\" `v`"),
]


@pytest.mark.parametrize(("template", "expected"), SUBSTITUTION_CASES)
def test_substitute_matches_envsubst_table(template: bytes, expected: bytes) -> None:
    assert substitute(template, ENV) == expected


def test_substitute_long_line_and_long_name() -> None:
    long_name = "N" * 9000
    template = b"x" * 10_000 + b"$A" + b"$" + long_name.encode() + b"\n"
    assert substitute(template, {"A": "v", long_name: "w"}) == b"x" * 10_000 + b"vw\n"


def test_substitute_values_round_trip_non_utf8_environment_bytes() -> None:
    raw = b"caf\xe9 \xff\r\n$B"
    value = os.fsdecode(raw)
    assert substitute(b"[$V]", {"V": value}) == b"[" + raw + b"]"


def test_substituted_values_are_not_rescanned() -> None:
    assert substitute(b"$A", {"A": "$B", "B": "no"}) == b"$B"


ALLOWLIST_CASES = [
    (b"$A ${IMAGE}", frozenset({"A"}), b"v ${IMAGE}"),
    (b"$A ${IMAGE}", frozenset({"IMAGE"}), b"$A registry/app:abc"),
    (b"$A $UNSET ${UNSET}", frozenset({"UNSET"}), b"$A  "),
    (b"$A ${A}", frozenset(), b"$A ${A}"),
    (b"$Ab", frozenset({"A"}), b"$Ab"),
    (b"${A:-x}", frozenset({"A"}), b"${A:-x}"),
]


@pytest.mark.parametrize(("template", "only", "expected"), ALLOWLIST_CASES)
def test_substitute_allowlist_keeps_other_names_verbatim(
    template: bytes, only: frozenset[str], expected: bytes
) -> None:
    assert substitute(template, ENV, only=only) == expected


def test_strict_accepts_set_and_empty_names() -> None:
    assert substitute(b"$A|$EMPTY|${IMAGE}", ENV, strict=True) == b"v||registry/app:abc"


def test_strict_names_source_line_and_variable() -> None:
    template = b"a: 1\r\nb: $A\n\nuser: ${GRAFANA_USER}\n"
    with pytest.raises(SubstitutionError) as caught:
        substitute(template, ENV, strict=True, source="k8s/agent.yaml")
    assert str(caught.value) == (
        "k8s/agent.yaml:4: variable GRAFANA_USER is not set (strict mode); "
        "export it (or, for `shipline run`, pass --var GRAFANA_USER=...)"
    )
    assert isinstance(caught.value, InputError)


def test_strict_reports_every_unset_name_once_at_its_first_line() -> None:
    template = b"$ZED\n$A $ALPHA\n${ZED} $BETA\n$ALPHA\n"
    with pytest.raises(SubstitutionError) as caught:
        substitute(template, ENV, strict=True, source="m.yaml")
    lines = str(caught.value).splitlines()
    assert [line.split(": variable ")[0] for line in lines] == ["m.yaml:1", "m.yaml:2", "m.yaml:3"]
    assert [line.split()[2] for line in lines] == ["ZED", "ALPHA", "BETA"]


def test_strict_default_source_is_stdin() -> None:
    with pytest.raises(SubstitutionError, match=r"^<stdin>:1: variable X is not set"):
        substitute(b"$X", {}, strict=True)


def test_strict_ignores_references_envsubst_does_not_replace() -> None:
    template = b"$$ ${X:-y} $1 ${Y \\$"
    assert substitute(template, {}, strict=True) == template


def test_strict_with_allowlist_only_checks_listed_names() -> None:
    template = b"$NOT_LISTED\n$LISTED\n"
    assert substitute(template, {"LISTED": "1"}, only=frozenset({"LISTED"}), strict=True) == (
        b"$NOT_LISTED\n1\n"
    )
    with pytest.raises(SubstitutionError) as caught:
        substitute(template, {}, only=frozenset({"LISTED"}), strict=True, source="f")
    assert str(caught.value).splitlines() == [
        "f:2: variable LISTED is not set (strict mode); "
        "export it (or, for `shipline run`, pass --var LISTED=...)"
    ]


def test_strict_message_never_contains_values() -> None:
    with pytest.raises(SubstitutionError) as caught:
        substitute(b"$PASSWORD $MISSING", {"PASSWORD": "hunter2"}, strict=True)
    assert "hunter2" not in str(caught.value)


REFERENCED_CASES = [
    (b"", None, []),
    (b"$A ${B}\n$A\r\n$C", None, [("A", 1), ("B", 1), ("C", 3)]),
    (b"$$ $1 ${X:-y} ${Y", None, []),
    (b"\n\n${B} $A", frozenset({"A"}), [("A", 3)]),
]


@pytest.mark.parametrize(("template", "only", "expected"), REFERENCED_CASES)
def test_referenced_names(
    template: bytes, only: frozenset[str] | None, expected: list[tuple[str, int]]
) -> None:
    assert referenced_names(template, only) == expected


ALLOWLIST_SPECS = [
    ("FOO", {"FOO"}),
    ("$FOO", {"FOO"}),
    ("${FOO}", {"FOO"}),
    ("FOO BAR", {"FOO", "BAR"}),
    ("FOO,BAR", {"FOO", "BAR"}),
    (" $FOO , ${BAR}\tBAZ,,_q1 ", {"FOO", "BAR", "BAZ", "_q1"}),
    ("FOO FOO", {"FOO"}),
]


@pytest.mark.parametrize(("spec", "expected"), ALLOWLIST_SPECS)
def test_parse_allowlist(spec: str, expected: set[str]) -> None:
    assert parse_allowlist(spec) == frozenset(expected)


@pytest.mark.parametrize(
    ("spec", "bad_entry"),
    [
        ("FOO 1BAR", "1BAR"),
        ("x-y", "x-y"),
        ("${FOO", "${FOO"),
        ("$FOO}", "$FOO}"),
        ("${FOO:-x}", "${FOO:-x}"),
        ("FOO;BAR", "FOO;BAR"),
        ("$", "$"),
        ("registry/app:abc", "registry/app:abc"),
        ("CAFÉ", "CAFÉ"),
    ],
)
def test_parse_allowlist_rejects_and_names_the_entry(spec: str, bad_entry: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_allowlist(spec)
    assert repr(bad_entry) in str(caught.value)


@pytest.mark.parametrize("spec", ["", "  ", " , ,"])
def test_parse_allowlist_rejects_an_empty_list(spec: str) -> None:
    with pytest.raises(InputError, match="empty"):
        parse_allowlist(spec)


@pytest.mark.parametrize(
    ("shell_format", "expected"),
    [
        ("${IMAGE}:$TAG", {"IMAGE", "TAG"}),
        ("x ${A} $B:${C $D,$E ${$F}", {"A", "B", "D", "E", "F"}),
        ("$1 $$ ${X:-y}", set()),
        ("", set()),
    ],
)
def test_shell_format_names(shell_format: str, expected: set[str]) -> None:
    assert shell_format_names(shell_format) == frozenset(expected)


def test_module_is_pure() -> None:
    code = (
        "import sys, tasks.envsubst; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'prefect', 'kubernetes', 'docker', 'httpx', 'yaml'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
