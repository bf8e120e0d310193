"""The cache key of a build: a hash of everything the docker build reads.

Two builds with the same key produce the same image, so when the registry already holds
the image for a key, the build and the push can be skipped. The key covers what the
engine would receive: the context files that `.dockerignore` does not exclude (decided
by docker-py's own `exclude_paths`, the code that makes the tar the engine gets), their
paths, modes and bytes; the Dockerfile's bytes (also when it lies outside the context);
the build args; the target stage.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from tasks.errors import InputError

__all__ = ["build_key", "dockerfile_in_context", "read_dockerignore"]

# Bump when the key's layout changes, so old cache tags are not trusted by mistake.
_KEY_VERSION = b"shipline-build-key-v1"
_OUTSIDE = ".dockerfile.shipline-outside-context"


def read_dockerignore(context: str) -> list[str]:
    """The patterns of `context/.dockerignore`, read exactly as docker-py's build does."""
    path = Path(context, ".dockerignore")
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def dockerfile_in_context(context: str, dockerfile: str) -> str | None:
    """The Dockerfile's path relative to the context, or None when it lies outside it.

    `dockerfile` is relative to the working directory, as `docker build -f` takes it
    (docker-py would resolve a relative path against the context instead).
    """
    relative = os.path.relpath(os.path.abspath(dockerfile), os.path.abspath(context))
    return None if relative.startswith("..") else relative


def _check_inputs(context: str, dockerfile: str) -> None:
    if not Path(context).is_dir():
        raise InputError(
            f"build context {context} is not a directory; check the context argument of "
            "the build line (paths are relative to the pipeline's working directory)"
        )
    if not Path(dockerfile).is_file():
        raise InputError(
            f"Dockerfile {dockerfile} does not exist; check the -f/--file argument of the "
            "build line (paths are relative to the pipeline's working directory)"
        )


def _update_with_file(digest: hashlib._Hash, root: str, relative: str) -> None:
    full = os.path.join(root, relative)
    info = os.lstat(full)
    # Paths use '/' and are NUL-terminated so no two file lists hash alike.
    digest.update(relative.replace(os.sep, "/").encode() + b"\0")
    digest.update(f"{stat.S_IMODE(info.st_mode):o} {stat.S_IFMT(info.st_mode):o}\0".encode())
    if stat.S_ISLNK(info.st_mode):
        digest.update(os.readlink(full).encode() + b"\0")
    elif stat.S_ISREG(info.st_mode):
        digest.update(f"{info.st_size}\0".encode())
        with open(full, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)


def build_key(
    context: str,
    dockerfile: str,
    build_args: Sequence[tuple[str, str]] = (),
    target: str | None = None,
) -> str:
    """The sha256 hex of the build's inputs; InputError when context or Dockerfile is missing.

    `dockerfile` is relative to the working directory (or absolute), like `docker build -f`.
    """
    from docker.utils.build import exclude_paths

    _check_inputs(context, dockerfile)
    root = os.path.abspath(context)
    inside = dockerfile_in_context(context, dockerfile)
    digest = hashlib.sha256(_KEY_VERSION + b"\0")
    # docker-py always sends the Dockerfile and .dockerignore, even when ignored.
    # Outside the context, docker-py adds the Dockerfile under a random name; a fixed
    # stand-in keeps a context file named `Dockerfile` subject to .dockerignore as there.
    listed = exclude_paths(root, read_dockerignore(context), dockerfile=inside or _OUTSIDE)
    for relative in sorted(listed):
        _update_with_file(digest, root, relative)
    digest.update(b"\0dockerfile\0" + Path(dockerfile).read_bytes())
    digest.update(f"\0dockerfile-path\0{inside or ''}\0".encode())
    # The engine gets the args as a map: order does not matter and the last value wins.
    for name, value in sorted(dict(build_args).items()):
        digest.update(f"\0arg\0{name}\0{value}".encode())
    digest.update(f"\0target\0{target or ''}".encode())
    return digest.hexdigest()
