"""tasks.globbing against the real tools: bash's glob order and kubectl's -f file walk.

bash runs with the same locale as the test (C.UTF-8: code point order, `?` one character;
in the plain C locale bash matches bytes, which shipline does not model); kubectl runs
against a closed local port so its per-file validation errors list the files it read, in
its order, without any server.
"""

from __future__ import annotations

import locale
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.globbing import expand_glob, has_glob_characters, kubectl_filename_paths

KUBECTL = "/usr/bin/kubectl"
NAMES = [
    "b.yaml",
    "a.yaml",
    "B.yaml",
    "_x.yaml",
    "10.yaml",
    "9.yaml",
    ".hidden.yaml",
    "n.txt",
    "é.yaml",
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for folder in ("k8s", "k8s/sub", "other"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        (tmp_path / "k8s" / name).write_text("kind: ConfigMap\n")
    (tmp_path / "k8s" / "sub" / "c.yml").write_text("kind: ConfigMap\n")
    (tmp_path / "other" / "z.json").write_text("{}\n")
    (tmp_path / "star*.yaml").write_text("kind: ConfigMap\n")
    return tmp_path


@pytest.fixture(autouse=True)
def c_collation() -> Iterator[None]:
    before = locale.setlocale(locale.LC_COLLATE)
    locale.setlocale(locale.LC_COLLATE, "C.UTF-8")
    yield
    locale.setlocale(locale.LC_COLLATE, before)


def bash_glob(pattern: str, cwd: Path, shell: str = "/bin/bash") -> list[str]:
    script = f'for f in {pattern}; do printf "%s\\0" "$f"; done'
    out = subprocess.run(
        [shell, "-c", script], cwd=cwd, capture_output=True, check=True, env={"LC_ALL": "C.UTF-8"}
    ).stdout
    return out.decode().split("\0")[:-1]


@pytest.mark.parametrize(
    "pattern",
    [
        "k8s/*.yaml",
        "k8s/*",
        "k8s/.*.yaml",
        "k8s/[ab].yaml",
        "k8s/[!ab].yaml",
        "k8s/?.yaml",
        "*/*.y*ml",
        "k8s/*.json",  # no match: the pattern stays
        "star\\*.yaml",
        "'k8s'/*.yaml",
    ],
)
def test_expand_glob_matches_bash(pattern: str, tree: Path) -> None:
    from flows.shell_expansion import expand_word
    from flows.shell_words import tokenize

    (word,) = tokenize(pattern)
    ours = expand_word(word, {}, lambda p: expand_glob(p, tree))
    assert ours == bash_glob(pattern, tree)


def test_sh_sorts_by_bytes(tree: Path) -> None:
    assert expand_glob("k8s/*.yaml", tree, byte_order=True) == bash_glob(
        "k8s/*.yaml", tree, "/bin/sh"
    )


def test_has_glob_characters() -> None:
    assert has_glob_characters("a/*.yaml")
    assert not has_glob_characters("a/\\*.yaml")
    assert has_glob_characters("a/\\\\*.yaml")


def kubectl_files(value: str, cwd: Path, *flags: str) -> list[str]:
    done = subprocess.run(
        [KUBECTL, "--server=http://127.0.0.1:1", "apply", "-f", value, *flags],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    missing = re.search(r'error: the path "(.*)" does not exist', done.stderr)
    if missing:
        raise FileNotFoundError(f'the path "{missing.group(1)}" does not exist')
    return re.findall(r'error validating "([^"]*)"', done.stderr)


@pytest.mark.parametrize(
    ("value", "recursive"),
    [
        ("k8s", False),
        ("k8s", True),
        ("k8s/", False),
        ("k8s/*.yaml", False),
        ("*/*.json", False),
        ("k8s/b.yaml", False),
        ("star*.yaml", False),
        ("k8s/sub/../a.yaml", False),
    ],
)
def test_kubectl_filename_paths_match_kubectl(value: str, recursive: bool, tree: Path) -> None:
    flags = ["-R"] if recursive else []
    expected = kubectl_files(value, tree, *flags)
    assert expected, "kubectl read no file"
    assert kubectl_filename_paths(value, tree, recursive=recursive) == expected


def test_kubectl_missing_path_is_refused_like_kubectl(tree: Path) -> None:
    with pytest.raises(FileNotFoundError) as theirs:
        kubectl_files("k8s/*.xml", tree)
    with pytest.raises(FileNotFoundError) as ours:
        kubectl_filename_paths("k8s/*.xml", tree, recursive=False)
    assert str(ours.value) == str(theirs.value)
