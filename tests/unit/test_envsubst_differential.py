"""tasks.envsubst against GNU envsubst (/usr/bin/envsubst), byte for byte, on generated input.

Each example runs the real binary with a controlled environment (``env=`` holds only the
generated variables), so set, set-empty and unset names are exactly what the test chose.
"""

from __future__ import annotations

import os
import subprocess

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tasks.envsubst import referenced_names, shell_format_names, substitute

ENVSUBST = "/usr/bin/envsubst"

# Names the templates use. Some get values, some get "", the rest stay unset; letters in
# the alphabet also glue onto them to form longer, unset names.
NAMES = ["A", "B", "_", "_x", "FOO", "FOO_BAR", "a1", "Z9", "LONG_" + "N" * 40]

_TOKENS = [
    b"$",
    b"$",
    b"${",
    b"{",
    b"}",
    b"\\",
    b":-",
    b"$$",
    b"\\$",
    b"0",
    b"1",
    b"9",
    b"a",
    b"Z",
    b"_",
    b" ",
    b"-",
    b"\n",
    b"\r\n",
    b"\r",
    b"\t",
    b"\x00",
    b"\xff",  # invalid UTF-8
    b"\xc3",  # a truncated UTF-8 sequence
    "é".encode(),
    "€".encode(),
    "名".encode(),
    "😀".encode(),
    *(name.encode() for name in NAMES),
]
_LONG_TOKENS = [b"x" * 9000, b"A" * 8500, b"${" + b"B" * 8200 + b"}"]

_short_templates = st.lists(st.sampled_from(_TOKENS), max_size=60).map(b"".join)
# Lines over 8 KiB (past any stdio buffer) in some examples; most stay short and dense.
templates = st.one_of(
    _short_templates,
    st.tuples(_short_templates, st.sampled_from(_LONG_TOKENS), _short_templates).map(b"".join),
)

# Values are any bytes but NUL (an environment cannot hold NUL), decoded the way Python
# decodes the process environment, so non-UTF-8 bytes must round-trip through fsencode.
values = st.one_of(
    st.just(""),
    st.binary(max_size=20).filter(lambda b: b"\x00" not in b).map(os.fsdecode),
    # Lone surrogates other than surrogateescape's cannot be in an environment.
    st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20
    ),
    st.sampled_from(["$A", "${B}", "\\$", "\r\n", "x" * 9000]),
)
environments = st.dictionaries(st.sampled_from(NAMES), values, max_size=len(NAMES))

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def run_envsubst(template: bytes, env: dict[str, str], *args: str) -> bytes:
    """Return what GNU envsubst prints for ``template`` on stdin with exactly ``env``."""
    return subprocess.run(
        [ENVSUBST, *args], input=template, env=env, capture_output=True, check=True
    ).stdout


@SETTINGS
@given(template=templates, env=environments)
@example(template=b"a $$ \\$A ${A:-y} $1 ${A ${ $ ${$A} $A$ ${A}x $Ab ${}}\n$", env={"A": "v"})
@example(template=b"${A}\r\n${_}\xff$_x$FOO_BAR${a1", env={"A": "", "_": "u", "FOO_BAR": "\udcff"})
@example(template=b"$", env={})
@example(template=b"${", env={})
def test_default_mode_matches_envsubst(template: bytes, env: dict[str, str]) -> None:
    assert substitute(template, env) == run_envsubst(template, env)


@SETTINGS
@given(
    template=templates,
    env=environments,
    listed=st.lists(st.sampled_from(NAMES), unique=True),
    style=st.sampled_from(["$", "${}", "mixed"]),
    separator=st.sampled_from([" ", ",", ", ", "\n"]),
)
@example(template=b"$A ${B} $FOO", env={"A": "1", "B": "2"}, listed=["B"], style="$", separator=" ")
@example(template=b"$A ${A}", env={"A": "1"}, listed=[], style="$", separator=" ")
def test_allowlist_mode_matches_envsubst_shell_format(
    template: bytes, env: dict[str, str], listed: list[str], style: str, separator: str
) -> None:
    def written(index: int, name: str) -> str:
        braced = style == "${}" or (style == "mixed" and index % 2 == 1)
        return f"${{{name}}}" if braced else f"${name}"

    shell_format = separator.join(written(i, name) for i, name in enumerate(listed))
    only = shell_format_names(shell_format)
    assert only == frozenset(listed)
    expected = run_envsubst(template, env, "--", shell_format)
    assert substitute(template, env, only=only) == expected
    # Strict mode changes nothing when every listed name is set.
    if only <= env.keys():
        assert substitute(template, env, only=only, strict=True) == expected


@SETTINGS
@given(shell_format=templates.filter(lambda b: b"\x00" not in b))
@example(shell_format=b"x ${A} $B:${C $D,$E ${$F}")
def test_variable_names_match_envsubst_variables(shell_format: bytes) -> None:
    # `envsubst -v FORMAT` prints each reference in order, repeats included.
    printed = run_envsubst(b"", {}, "-v", "--", os.fsdecode(shell_format)).decode("ascii")
    in_order = list(dict.fromkeys(printed.splitlines()))
    assert [name for name, _ in referenced_names(shell_format)] == in_order
    assert shell_format_names(os.fsdecode(shell_format)) == frozenset(in_order)
