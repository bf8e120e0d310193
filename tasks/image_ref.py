"""Docker image references, parsed and validated the way the docker CLI does.

The grammar and the normalisation rules are those of distribution's reference package
(https://github.com/distribution/reference/blob/main/reference.go, `normalize.go`),
which `docker tag`, `docker push` and `docker pull` use:

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path-component ["/" path-component]*
    domain     := host [":" port]        (a first component is a domain only when it
                                          contains "." or ":", or is "localhost")
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex      (sha256: 64 lowercase hex digits)

A name without a domain lives on Docker Hub (`docker.io`); a one-component Hub name gets
`library/` in front, as `docker pull busybox` means `docker.io/library/busybox`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from tasks.errors import InputError

__all__ = ["DEFAULT_REGISTRY", "ImageRef", "parse_image"]

DEFAULT_REGISTRY = "docker.io"
_LEGACY_REGISTRY = "index.docker.io"
_NAME_MAX = 255

_ALPHANUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALPHANUM}(?:{_SEPARATOR}{_ALPHANUM})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
# Algorithms go-digest knows, with their encoded form (lowercase hex of a fixed length).
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX64 = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference; `registry` and `repository` are normalised."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`registry/repository`, the name without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str) -> ImageRef:
        """The same repository with `tag` (and no digest)."""
        if not _TAG.fullmatch(tag):
            raise InputError(f"image tag {tag!r} is not valid: {_TAG_RULE}")
        return replace(self, tag=tag, digest=None)

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


_TAG_RULE = (
    "a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', not starting with "
    "'.' or '-'"
)


def _fail(text: str, what: str) -> InputError:
    return InputError(f"image reference {text!r} is not valid: {what}")


def _split_domain(name: str) -> tuple[str, str]:
    """Split a name into domain and path as distribution's `splitDockerDomain` does."""
    first, sep, rest = name.partition("/")
    # An uppercase first component counts as a domain too (so `Foo/bar` is host `Foo`).
    is_domain = "." in first or ":" in first or first == "localhost" or first.lower() != first
    domain, path = (first, rest) if sep and is_domain else (DEFAULT_REGISTRY, name)
    if domain == _LEGACY_REGISTRY:
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    return domain, path


def parse_image(text: str) -> ImageRef:
    """Parse `text` like `docker tag`/`docker push` do; InputError says what is wrong."""
    if not text:
        raise _fail(text, "it is empty")
    if text != text.strip():
        raise _fail(text, "it has leading or trailing white space")
    if _HEX64.fullmatch(text):
        raise _fail(text, "a repository name cannot be 64 hexadecimal digits (an image ID)")
    remainder, at, digest = text.partition("@")
    if at:
        if not _DIGEST.fullmatch(digest):
            raise _fail(text, f"digest {digest!r} is not of the form sha256:<64 hex digits>")
        algorithm, _, hex_part = digest.partition(":")
        if algorithm not in _DIGEST_HEX:
            raise _fail(text, f"unsupported digest algorithm {algorithm!r}")
        if len(hex_part) != _DIGEST_HEX[algorithm] or hex_part.lower() != hex_part:
            raise _fail(
                text,
                f"a {algorithm} digest has {_DIGEST_HEX[algorithm]} lowercase hex digits",
            )
    tag: str | None = None
    name = remainder
    # The tag follows the last ':' unless that ':' belongs to a domain's port (a '/' after it).
    colon = remainder.rfind(":")
    if colon != -1 and "/" not in remainder[colon + 1 :]:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise _fail(text, f"tag {tag!r}: {_TAG_RULE}")
    if not name:
        raise _fail(text, "the repository name is empty")
    domain, path = _split_domain(name)
    if domain != DEFAULT_REGISTRY and not _DOMAIN.fullmatch(domain):
        raise _fail(text, f"registry host {domain!r} is not a valid host[:port]")
    if path.lower() != path:
        raise _fail(text, "the repository name must be lowercase")
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            raise _fail(
                text,
                f"path component {component!r} must be lowercase letters and digits, "
                "separated by '.', '_', '__' or dashes",
            )
    # Current distribution/reference limits the path, not the domain (v0.5.0 and later).
    if len(path) > _NAME_MAX:
        raise _fail(text, f"the repository name is longer than {_NAME_MAX} characters")
    return ImageRef(registry=domain, repository=path, tag=tag, digest=digest or None)
