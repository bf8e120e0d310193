"""Which files a pipeline line names, in the order the shell or kubectl would visit them.

Two tools expand file names in a deploy pipeline, with different rules:

* bash expands an unquoted glob (``for f in k8s/*.yaml``). It skips hidden files unless the
  pattern names the dot, keeps the pattern itself when nothing matches (no ``nullglob``),
  and sorts the whole result with ``strcoll`` under ``LC_COLLATE`` (bash's pathexp.c
  ``shell_glob_filename`` -> ``strvec_sort``; lib/sh/stringvec.c ``strvec_posixcmp``:
  strcoll first, then a byte comparison). ``sh`` on Debian is dash, which sorts with
  ``strcmp`` (dash's expand.c ``expsort``), so ``sh SCRIPT`` gets byte order.
* kubectl expands ``-f`` itself (cli-runtime's builder.go ``expandIfFilePattern``): an
  existing path is taken as is; otherwise Go's ``filepath.Glob`` (hidden files included,
  byte order per directory); a directory is walked (cli-runtime's visitor.go
  ``ExpandPathsToFileVisitors``): ``.json``, ``.yaml`` and ``.yml`` files in lexical order,
  sub-directories only with ``-R``.

These functions only read directories; they never change the process locale. Entry points
call :func:`use_environment_collation` once so ``LC_ALL``/``LC_COLLATE`` apply, as in bash.
"""

from __future__ import annotations

import fnmatch
import glob
import locale
import os
import re
from pathlib import Path

__all__ = [
    "KUBECTL_MANIFEST_EXTENSIONS",
    "expand_glob",
    "has_glob_characters",
    "kubectl_filename_matches",
    "kubectl_filename_paths",
    "unescape_pattern",
    "use_environment_collation",
]

KUBECTL_MANIFEST_EXTENSIONS = (".json", ".yaml", ".yml")

_BASH_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def use_environment_collation() -> None:
    """Adopt the environment's ``LC_COLLATE`` (as bash does at start) for glob ordering.

    An unknown locale name leaves the "C" collation, as bash falls back to it too.
    """
    try:
        locale.setlocale(locale.LC_COLLATE, "")
    except locale.Error:
        locale.setlocale(locale.LC_COLLATE, "C")


def has_glob_characters(pattern: str) -> bool:
    """Whether a bash pattern (backslash escapes) contains an unescaped ``*``, ``?`` or ``[``."""
    return bool(re.search(r"(?<!\\)(?:\\\\)*[*?[]", pattern))


def unescape_pattern(pattern: str) -> str:
    """Remove the backslash escapes of a bash pattern (bash's quote removal)."""
    return _BASH_ESCAPE.sub(r"\1", pattern)


def expand_glob(pattern: str, cwd: str | Path, *, byte_order: bool = False) -> list[str]:
    r"""Expand a bash glob ``pattern`` relative to ``cwd`` in the order bash would list it.

    ``pattern`` uses bash's escapes (``\\*`` is a literal star). Results are spelled as
    bash prints them (relative patterns give relative paths). Nothing matching gives
    ``[pattern]`` with escapes removed, as bash without ``nullglob``. ``byte_order`` sorts
    like dash (``sh``) instead of by the current collation.
    """
    if not has_glob_characters(pattern):
        return [unescape_pattern(pattern)]
    python_pattern = _to_python_glob(pattern)
    matches = glob.glob(python_pattern, root_dir=os.fspath(cwd))
    if not matches:
        return [unescape_pattern(pattern)]
    if byte_order:
        return sorted(matches, key=os.fsencode)
    # strvec_posixcmp: strcoll, then bytes; Python's str order is UTF-8 byte order.
    return sorted(matches, key=lambda name: (locale.strxfrm(name), name))


def kubectl_filename_paths(value: str, cwd: str | Path, *, recursive: bool) -> list[str]:
    """The files ``kubectl apply -f VALUE [-R]`` reads, in kubectl's order.

    Returns paths spelled from ``value`` (relative stays relative to ``cwd``). Raises
    :class:`FileNotFoundError` with kubectl's wording when the path does not exist and no
    file matches it as a pattern.
    """
    base = Path(cwd)
    found: list[str] = []
    matches = kubectl_filename_matches(value, cwd)
    for match in matches:
        found.extend(_walk_manifests(match, base, recursive=recursive))
    return found


def kubectl_filename_matches(value: str, cwd: str | Path) -> list[str]:
    """The paths ``-f VALUE`` names: itself when it exists, else what it matches as a glob.

    Raises :class:`FileNotFoundError` with kubectl's wording when there are none.
    """
    base = Path(cwd)
    if os.path.lexists(base / value):
        return [value]
    matches = _go_glob(value, base)
    if not matches:
        raise FileNotFoundError(f'the path "{value}" does not exist')
    return matches


def _to_python_glob(pattern: str) -> str:
    """Rewrite bash pattern syntax for Python's glob (escapes as ``[c]``, ``[^`` as ``[!``)."""
    out: list[str] = []
    index = 0
    in_bracket = False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(glob.escape(pattern[index + 1]) if not in_bracket else pattern[index + 1])
            index += 2
            continue
        if char == "[" and not in_bracket and "]" in pattern[index + 2 :]:
            in_bracket = True
            out.append("[")
            if pattern[index + 1 : index + 2] == "^":
                out.append("!")
                index += 1
            index += 1
            continue
        if char == "]" and in_bracket and out[-1] not in ("[", "!"):
            in_bracket = False
        out.append(char)
        index += 1
    return "".join(out)


def _walk_manifests(path: str, base: Path, *, recursive: bool) -> list[str]:
    # filepath.Walk uses Lstat: a symbolic link, even to a directory, is visited as a file.
    full = base / path
    if full.is_dir() and not full.is_symlink():
        return _walk_directory(path, base, recursive=recursive)
    return [path]


def _walk_directory(directory: str, base: Path, *, recursive: bool) -> list[str]:
    found: list[str] = []
    names = sorted(os.listdir(base / directory), key=os.fsencode)
    for name in names:
        child = os.path.join(directory, name)
        full = base / child
        if full.is_dir() and not full.is_symlink():
            if recursive:
                found.extend(_walk_directory(child, base, recursive=True))
            continue
        if os.path.splitext(name)[1] in KUBECTL_MANIFEST_EXTENSIONS:
            found.append(child)
    return found


def _go_glob(pattern: str, base: Path) -> list[str]:
    # Go's filepath.Glob: per directory, names sorted by bytes; '*' also matches a
    # leading dot; a backslash escapes the next character.
    directory, name = os.path.split(pattern)
    if not has_glob_characters(name):
        return [pattern] if os.path.lexists(base / pattern) else []
    if has_glob_characters(directory):
        parents = _go_glob(directory, base)
    else:
        parents = [directory] if os.path.isdir(base / (directory or ".")) else []
    regex = re.compile(fnmatch.translate(_to_python_glob(name)), re.DOTALL)
    matches: list[str] = []
    for parent in parents:
        folder = base / (parent or ".")
        if not folder.is_dir():
            continue
        for entry in sorted(os.listdir(folder), key=os.fsencode):
            if regex.match(entry):
                matches.append(os.path.join(parent, entry) if parent else entry)
    return matches
