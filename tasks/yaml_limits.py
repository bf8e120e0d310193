"""YAML loaders that refuse what go-yaml (kubectl, okteto) refuses before PyYAML chokes on it.

PyYAML composes recursively (a few Python frames per nesting level) and a constructed
document shares aliased values, so whatever later walks it (YAML -> JSON, ``str()``) copies
each alias in full. Three inputs therefore crash or exhaust memory instead of failing:

- nesting thousands of levels deep: ``RecursionError``. go-yaml stops at 10,000 levels
  (``exceeded max depth of 10000``); Python's stack cannot go that far, so
  :data:`MAX_DEPTH` is far lower, and still far above real manifests (CRD schemas).
- an alias bomb ("billion laughs"): go-yaml refuses it with ``document contains excessive
  aliasing``; :class:`LimitedSafeLoader` applies the same rule while composing, on sizes
  memoised per anchor, so nothing is ever expanded.
- an alias inside its own anchor's value: go-yaml's ``anchor 'a' value contains itself``.

Both checks read the parser's events as the composer takes them, so they stop a document
before its node graph is built. :class:`UniqueKeySafeLoader` also refuses duplicate
mapping keys, which PyYAML resolves silently (the last wins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["MAX_DEPTH", "LimitedSafeLoader", "UniqueKeySafeLoader", "YamlLimitError"]

# Collections nested in collections. Composing costs 2 frames a level and YAML -> JSON 2
# more; 200 keeps both well inside Python's default limit of 1000 frames.
MAX_DEPTH = 200

# go-yaml's rule (yaml.v2 and v3 decode.go, allowedAliasRatio and decoder.unmarshal):
# fail once more than 100 of over 1000 decoded nodes came from aliases and their share
# exceeds 99% (documents up to 400,000 nodes), falling linearly to 10% at 4,000,000.
_ALIAS_RATIO_LOW = 400_000
_ALIAS_RATIO_HIGH = 4_000_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlLimitError(Exception):
    """A YAML document breaks a limit; ``line`` and ``document`` are 1-based.

    ``reason`` says what and what to do; callers prefix their file and raise their own
    error class.
    """

    def __init__(self, reason: str, *, line: int, document: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.document = document


def _unprintable(stream: Any, exc: yaml.reader.ReaderError) -> YamlLimitError:
    """A character YAML forbids (a control character such as NUL or ESC), by line and column."""
    text = stream if isinstance(stream, str) else ""
    before = text[: exc.position]
    line = before.count("\n") + 1
    column = exc.position - (before.rfind("\n") + 1) + 1
    lines = before.splitlines()
    starts = [row for row in lines if row.startswith("---")]
    first = next((row for row in text.splitlines() if row.strip() and row[0] != "#"), "")
    document = max(1, len(starts) + (0 if first.startswith("---") else 1))
    return YamlLimitError(
        f"the control character U+{exc.character:04X} at column {column} is not allowed "
        "in YAML (go-yaml refuses it too); remove it, or write it as an escape such as "
        '"\\x1b" inside double quotes',
        line=line,
        document=document,
    )


def _allowed_alias_ratio(decoded: int) -> float:
    if decoded <= _ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= _ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - _ALIAS_RATIO_LOW) / (_ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW)


def _excessive(aliased: int, decoded: int) -> bool:
    return aliased > 100 and decoded > 1000 and aliased / decoded > _allowed_alias_ratio(decoded)


@dataclass
class _Open:
    """A collection whose end event has not come yet."""

    anchor: str | None
    line: int
    size: int = 1  # nodes it expands to, itself included (go-yaml's decode count)


@dataclass
class _DocumentCount:
    """go-yaml's counters for one document, and each closed anchor's expanded size."""

    number: int
    decoded: int = 1  # the document node
    aliased: int = 0
    open: list[_Open] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)


class LimitedSafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting and excessive aliasing while composing.

    Raises :class:`YamlLimitError`. Counting follows go-yaml node for node, except that
    go-yaml skips a ``<<`` merge key (and a merge's list node): one node per merge.
    """

    def __init__(self, stream: Any) -> None:
        try:
            super().__init__(stream)
        except yaml.reader.ReaderError as exc:
            # The reader checks every character up front; its position is an offset.
            raise _unprintable(stream, exc) from None
        self._count = _DocumentCount(number=0)

    def get_event(self) -> Any:
        """The parser's next event, after checking it against the limits."""
        event = super().get_event()
        self._check(event)
        return event

    def _check(self, event: Any) -> None:
        count = self._count
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, yaml.DocumentStartEvent):
            self._count = _DocumentCount(number=count.number + 1)
        elif isinstance(event, yaml.ScalarEvent):
            self._decode(1, 0, line)
            self._close(event.anchor, 1)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(count.open) >= MAX_DEPTH:
                raise YamlLimitError(
                    f"YAML nested more than {MAX_DEPTH} levels deep; shipline reads no "
                    "deeper (Python's stack would overflow): look for unclosed brackets or "
                    "generated output that ran away",
                    line=line,
                    document=count.number,
                )
            self._decode(1, 0, line)
            count.open.append(_Open(event.anchor, line))
        elif isinstance(event, yaml.CollectionEndEvent) and count.open:
            node = count.open.pop()
            self._close(node.anchor, node.size)
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event.anchor, line)

    def _alias(self, anchor: str, line: int) -> None:
        count = self._count
        inside = next((node for node in count.open if node.anchor == anchor), None)
        if inside is not None:
            raise YamlLimitError(
                f"the alias *{anchor} is inside the value of its own anchor &{anchor} "
                f"(line {inside.line}), so it would repeat forever; kubectl and okteto "
                f"(go-yaml) refuse it too (\"anchor '{anchor}' value contains itself\"): "
                "point the alias at another anchor",
                line=line,
                document=count.number,
            )
        size = count.sizes.get(anchor)
        if size is None:  # an undefined alias: the composer says so
            return
        # The alias node itself, then its anchor's whole value, copied.
        self._decode(1, 0, line)
        self._decode(size, size, line, anchor=anchor)
        self._close(None, 1 + size)

    def _decode(self, nodes: int, aliased: int, line: int, *, anchor: str | None = None) -> None:
        count = self._count
        count.decoded += nodes
        count.aliased += aliased
        # Inside one alias's expansion the alias share only grows and the allowance only
        # shrinks, so checking at its end is checking at every node of it, as go-yaml does.
        if _excessive(count.aliased, count.decoded):
            what = f"the alias *{anchor} here" if anchor else "here"
            raise YamlLimitError(
                f"excessive aliasing: up to {what}, the document already expands to "
                f"{count.decoded:,} nodes, {count.aliased:,} of them copies made by "
                'aliases (a "billion laughs" document); kubectl and okteto (go-yaml) '
                'refuse it too ("document contains excessive aliasing"): write the '
                "repeated values out instead of aliasing aliases",
                line=line,
                document=count.number,
            )

    def _close(self, anchor: str | None, size: int) -> None:
        count = self._count
        if count.open:
            count.open[-1].size += size
        if anchor is not None:
            count.sizes[anchor] = size


class UniqueKeySafeLoader(LimitedSafeLoader):
    """:class:`LimitedSafeLoader` that also refuses a key repeated in one mapping.

    go-yaml's v3 and strict decoding refuse it; PyYAML keeps the last value silently.
    Keys brought in by a ``<<`` merge may repeat: overriding them is what merging is for.
    """

    def construct_document(self, node: yaml.Node) -> Any:
        """The document's value, after checking every mapping for repeated keys."""
        # Before constructing: construction flattens merges into the mappings' pairs.
        self._check_unique_keys(node)
        return super().construct_document(node)

    def _check_unique_keys(self, root: yaml.Node) -> None:
        seen: set[int] = set()
        pending = [root]
        while pending:  # not recursive: the depth check allows more than Python's stack
            node = pending.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.SequenceNode):
                pending.extend(node.value)
            elif isinstance(node, yaml.MappingNode):
                self._check_mapping(node)
                for key_node, value_node in node.value:
                    pending.extend((key_node, value_node))

    def _check_mapping(self, node: yaml.MappingNode) -> None:
        first: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            # The constructed key, as the mapping would hold it: `1` and `01` are one int.
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first.setdefault(key, key_node)
            except TypeError:  # unhashable: construction reports it
                continue
            if earlier is not key_node:
                raise YamlLimitError(
                    f'mapping key "{key_node.value}" already defined at line '
                    f"{earlier.start_mark.line + 1}; keep one of them (merge their values "
                    "into it), as the last one would silently replace the first",
                    line=key_node.start_mark.line + 1,
                    document=self._count.number,
                )
