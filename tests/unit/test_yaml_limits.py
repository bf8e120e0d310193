"""tasks.yaml_limits: go-yaml's aliasing rule, the depth limit and unique keys.

The aliasing cases sit on both sides of go-yaml's threshold; each verdict was checked
against kubectl 1.32 (`kubectl apply --dry-run=client -f`), which refuses the second of
each pair with "yaml: document contains excessive aliasing".
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tasks.yaml_limits import MAX_DEPTH, LimitedSafeLoader, UniqueKeySafeLoader, YamlLimitError

HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t\ndata:\n"


def load_all(text: str, loader: type[LimitedSafeLoader] = LimitedSafeLoader) -> list[Any]:
    instance = loader(text)
    try:
        documents = []
        while instance.check_node():
            documents.append(instance.construct_document(instance.get_node()))
        return documents
    finally:
        instance.dispose()


def flat(items: int, aliases: int) -> str:
    """One anchored list of ``items`` scalars, then a list of ``aliases`` aliases of it."""
    return f"{HEAD}  a: &a [{', '.join(['x'] * items)}]\n  b: [{', '.join(['*a'] * aliases)}]\n"


def nested(inner: int, aliases: int) -> str:
    """100 scalars, ``inner`` aliases of them, ``aliases`` aliases of that."""
    return (
        f"{HEAD}  a: &a [{', '.join(['x'] * 100)}]\n"
        f"  b: &b [{', '.join(['*a'] * inner)}]\n"
        f"  c: [{', '.join(['*b'] * aliases)}]\n"
    )


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        (flat(150, 316), False),
        (flat(150, 317), True),
        (flat(1000, 111), False),
        (flat(1000, 112), True),
        (nested(5, 28), False),
        (nested(5, 29), True),
    ],
    ids=["flat-below", "flat-at", "big-below", "big-at", "nested-below", "nested-at"],
)
def test_aliasing_verdicts_match_kubectl(text: str, refused: bool) -> None:
    if refused:
        with pytest.raises(YamlLimitError, match="excessive aliasing") as caught:
            load_all(text)
        assert (caught.value.line, caught.value.document) == (7 if "c:" not in text else 8, 1)
    else:
        assert load_all(text)[0]["metadata"]["name"] == "t"


def test_many_small_aliases_are_fine() -> None:
    # Each alias node counts as decoded but not aliased: a small anchor never tips the ratio.
    assert len(load_all(flat(9, 5000))[0]["data"]["b"]) == 5000


def test_counters_restart_with_each_document() -> None:
    below = flat(150, 316)
    assert len(load_all(f"{below}---\n{below}")) == 2


def test_nesting_limit() -> None:
    assert load_all("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(YamlLimitError, match=f"nested more than {MAX_DEPTH} levels") as caught:
        load_all("---\nok: 1\n---\nx:\n  y: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert (caught.value.line, caught.value.document) == (5, 2)


def test_an_undefined_alias_is_left_to_the_composer() -> None:
    with pytest.raises(yaml.composer.ComposerError, match="found undefined alias"):
        load_all("a: *nope\n")


def test_unique_keys_compare_constructed_keys_and_allow_merges() -> None:
    with pytest.raises(YamlLimitError, match='key "01" already defined at line 1') as caught:
        load_all("1: a\n01: b\n", UniqueKeySafeLoader)
    assert caught.value.line == 2
    merged = load_all("a: &a {k: 1, j: 2}\nb: {<<: *a, k: 3}\n", UniqueKeySafeLoader)
    assert merged[0]["b"] == {"k": 3, "j": 2}
    assert load_all("a: 1\na: 2\n") == [{"a": 2}]  # LimitedSafeLoader: the last wins


@pytest.mark.parametrize(
    ("text", "line", "column", "document", "code"),
    [
        ("a: 1\nb: \x1b[31m\n", 2, 4, 1, "U+001B"),
        ("---\na: 1\n---\nb: '\x00'\n", 4, 5, 2, "U+0000"),
        ("# c\na: 1\n---\n\nb: \x07\n", 5, 4, 2, "U+0007"),
    ],
)
def test_a_control_character_is_refused_by_line_column_and_document(
    text: str, line: int, column: int, document: int, code: str
) -> None:
    with pytest.raises(YamlLimitError) as caught:
        LimitedSafeLoader(text)
    error = caught.value
    assert (error.line, error.document) == (line, document)
    assert f"{code} at column {column}" in error.reason
