"""Image references parsed like the docker CLI (distribution/reference) does.

The accept/reject verdicts are the same table the integration test
`test_build.py::test_image_ref_verdicts_match_docker_tag` runs through `docker tag`.
"""

from __future__ import annotations

import pytest

from tasks.errors import InputError
from tasks.image_ref import ImageRef, parse_image

SHA = "sha256:" + "a" * 64

# (reference, registry, repository, tag, digest)
VALID = [
    ("busybox", "docker.io", "library/busybox", None, None),
    ("busybox:1.35", "docker.io", "library/busybox", "1.35", None),
    ("shipline/busybox:1.35", "docker.io", "shipline/busybox", "1.35", None),
    ("docker.io/busybox", "docker.io", "library/busybox", None, None),
    ("index.docker.io/busybox", "docker.io", "library/busybox", None, None),
    ("docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", None),
    ("127.0.0.1:5000/app-server:abc123", "127.0.0.1:5000", "app-server", "abc123", None),
    ("localhost/app", "localhost", "app", None, None),
    ("localhost:5000/team/app:v1.2.3", "localhost:5000", "team/app", "v1.2.3", None),
    ("registry.example.com/a/b/c:tag_1", "registry.example.com", "a/b/c", "tag_1", None),
    ("Registry.Example.com/app", "Registry.Example.com", "app", None, None),
    ("Foo/bar", "Foo", "bar", None, None),
    ("[::1]:5000/app:v1", "[::1]:5000", "app", "v1", None),
    ("my-host:5000/app", "my-host:5000", "app", None, None),
    ("a__b/c--d.e_f", "docker.io", "a__b/c--d.e_f", None, None),
    ("localhost:5000", "docker.io", "library/localhost", "5000", None),
    ("app:" + "t" * 128, "docker.io", "library/app", "t" * 128, None),
    ("app:_x", "docker.io", "library/app", "_x", None),
    ("app:X.Y-z", "docker.io", "library/app", "X.Y-z", None),
    (f"app@{SHA}", "docker.io", "library/app", None, SHA),
    (f"127.0.0.1:5000/app:v1@{SHA}", "127.0.0.1:5000", "app", "v1", SHA),
    ("a" * 64 + ":v1", "docker.io", "library/" + "a" * 64, "v1", None),
    ("localhost:5000/" + "a" * 255, "localhost:5000", "a" * 255, None, None),
]

# (reference, a word the error must contain)
INVALID = [
    ("", "empty"),
    ("Busybox", "lowercase"),
    ("docker.io/Library/busybox", "lowercase"),
    ("busybox:", "tag"),
    ("busybox:.x", "tag"),
    ("busybox:-x", "tag"),
    ("busybox:" + "t" * 129, "tag"),
    ("busybox:a:b", "path component"),
    ("-busybox", "path component"),
    ("busybox-", "path component"),
    ("bus..box", "path component"),
    ("a//b", "path component"),
    ("app/", "path component"),
    ("/app", "path component"),
    ("ap p", "path component"),
    (" app", "white space"),
    ("-host.com/app", "registry host"),
    ("host.com:port/app", "registry host"),
    ("a" * 64, "64 hexadecimal"),
    ("app@sha256:abc", "digest"),
    ("app@sha256:" + "A" * 64, "lowercase hex"),
    ("app@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("localhost:5000/" + "a" * 256, "255"),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), VALID)
def test_valid_references_parse_like_docker(text, registry, repository, tag, digest):
    assert parse_image(text) == ImageRef(registry, repository, tag, digest)


@pytest.mark.parametrize(("text", "word"), INVALID)
def test_invalid_references_say_what_is_wrong(text, word):
    with pytest.raises(InputError) as raised:
        parse_image(text)
    message = str(raised.value)
    assert repr(text) in message
    assert word in message


def test_name_str_and_with_tag():
    ref = parse_image("127.0.0.1:5000/team/app:v1")
    assert ref.name == "127.0.0.1:5000/team/app"
    assert str(ref) == "127.0.0.1:5000/team/app:v1"
    assert str(ref.with_tag("shipline-abc")) == "127.0.0.1:5000/team/app:shipline-abc"
    pinned = parse_image(f"127.0.0.1:5000/team/app:v1@{SHA}")
    assert str(pinned) == f"127.0.0.1:5000/team/app:v1@{SHA}"
    assert pinned.with_tag("v2").digest is None


def test_str_round_trips():
    for text, *_ in VALID:
        ref = parse_image(text)
        assert parse_image(str(ref)) == ref


def test_with_tag_rejects_a_bad_tag():
    with pytest.raises(InputError, match="tag"):
        parse_image("app").with_tag("-bad")
