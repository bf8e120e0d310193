"""The build step: `okteto build -t IMAGE -f DOCKERFILE CONTEXT`, cached by its inputs.

The cache key (`build_key`) hashes what the build reads. The registry keeps one tag per
key, `shipline-<key[:40]>`, in the image's repository, so the registry itself is the
cache and every machine shares it:

- the image's tag already points at the key's manifest: nothing to do;
- the key's tag exists: point the image's tag at its manifest (registry API; no build,
  no layer moves);
- otherwise: build with the docker engine, tag with the image and the key's tag, push both.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.build_key import build_key, dockerfile_in_context
from tasks.docker_engine import classify_stream_error, connect, engine_call, strip_ansi
from tasks.errors import BuildError, InputError
from tasks.image_ref import ImageRef, parse_image
from tasks.registry import Registry

__all__ = ["CACHE_TAG_PREFIX", "BuildResult", "build_and_push", "cache_tag"]

_LOG = logging.getLogger(__name__)
CACHE_TAG_PREFIX = "shipline-"
KEY_LABEL = "dev.shipline.build-key"
_TAIL_LINES = 20

Log = logging.Logger | logging.LoggerAdapter
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class BuildResult:
    """What the build step did: the image, its digest, the cache key, built or reused."""

    image: str
    digest: str
    key: str
    built: bool


def cache_tag(key: str) -> str:
    """The registry tag that marks the image built from inputs with this key."""
    return f"{CACHE_TAG_PREFIX}{key[:40]}"


def build_and_push(
    image: str,
    context: str,
    dockerfile: str,
    *,
    build_args: Sequence[tuple[str, str]] = (),
    target: str | None = None,
    push: bool = True,
    log: Log = _LOG,
    progress: Progress | None = None,
) -> BuildResult:
    """Build `image` from `context` and `dockerfile` and push it, unless the registry has it.

    `dockerfile` is relative to the working directory (or absolute), as with
    `docker build -f`; it may lie outside the context. With `push=False` the image is only
    built and tagged locally (the registry is not asked) and `digest` is the image ID.
    """
    ref = _image_to_push(image)
    key = build_key(context, dockerfile, build_args, target)
    cached = ref.with_tag(cache_tag(key))
    if push:
        reused = _reuse(ref, cached, key, log)
        if reused is not None:
            return reused
    client = connect()
    try:
        image_id = _build(client, ref, context, dockerfile, build_args, target, key, log)
        with engine_call(f"tagging {image_id[:19]} as {cached}"):
            client.tag(image_id, ref.name, cached.tag)
        if not push:
            log.info("built %s (%s), not pushed", ref, image_id)
            return BuildResult(str(ref), image_id, key, built=True)
        digest = _push(client, ref, log, progress)
        _push(client, cached, log, None)
    finally:
        client.close()
    log.info("pushed %s@%s", ref, digest)
    return BuildResult(str(ref), digest, key, built=True)


def _image_to_push(image: str) -> ImageRef:
    ref = parse_image(image)
    if ref.digest:
        raise InputError(
            f"image {image} names a digest; a build needs a tag to push to (e.g. "
            f"{ref.name}:<commit>)"
        )
    # No tag means :latest, as with `docker build -t NAME`.
    return ref if ref.tag else ref.with_tag("latest")


def _reuse(ref: ImageRef, cached: ImageRef, key: str, log: Log) -> BuildResult | None:
    """The result without building when the registry holds the key's image, else None."""
    with Registry.for_image(ref) as registry:
        cached_digest = registry.manifest_digest(cached)
        if cached_digest is None:
            log.info("no image for build key %s in %s: building", key[:12], ref.registry)
            return None
        if registry.manifest_digest(ref) == cached_digest:
            log.info(
                "reused %s@%s: the registry already holds it for build key %s (no build, no push)",
                ref,
                cached_digest,
                key[:12],
            )
            return BuildResult(str(ref), cached_digest, key, built=False)
        digest = registry.tag(cached, ref.tag or "latest")
        log.info(
            "reused %s@%s: tagged the image of build key %s in the registry (no build, no push)",
            ref,
            digest,
            key[:12],
        )
        return BuildResult(str(ref), digest, key, built=False)


def _engine_dockerfile(context: str, dockerfile: str) -> str:
    """The Dockerfile as docker-py takes it: relative to the context, else absolute.

    docker-py resolves a relative path against the context; an absolute path outside
    the context is read and sent inside the context tar, as the docker CLI does.
    """
    inside = dockerfile_in_context(context, dockerfile)
    return inside if inside is not None else os.path.abspath(dockerfile)


def _build(
    client: Any,
    ref: ImageRef,
    context: str,
    dockerfile: str,
    build_args: Sequence[tuple[str, str]],
    target: str | None,
    key: str,
    log: Log,
) -> str:
    """Run the build, streaming its output into `log`; the built image's ID."""
    log.info("building %s from %s (context %s)", ref, dockerfile, context)
    with engine_call(f"building {ref}"):
        stream = client.build(
            path=str(Path(context)),
            dockerfile=_engine_dockerfile(context, dockerfile),
            tag=str(ref),
            buildargs=dict(build_args) or None,
            target=target,
            labels={KEY_LABEL: key},
            rm=True,
            forcerm=True,
            decode=True,
        )
        return _follow_build(stream, ref, dockerfile, log)


def _follow_build(stream: Iterable[dict], ref: ImageRef, dockerfile: str, log: Log) -> str:
    """Log each output line; the image ID, or BuildError naming the failing step."""
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    step: str | None = None
    image_id: str | None = None
    for chunk in stream:
        text = chunk.get("stream") or chunk.get("status") or ""
        for line in strip_ansi(text).splitlines():
            if not line.strip():
                continue
            log.info("%s", line.rstrip())
            tail.append(line.rstrip())
            if line.startswith("Step "):
                step = line.strip()
            elif line.startswith("Successfully built "):
                image_id = image_id or line.split()[-1]
        if "error" in chunk or "errorDetail" in chunk:
            message = strip_ansi(
                chunk.get("error") or (chunk.get("errorDetail") or {}).get("message", "")
            ).strip()
            where = f"step `{step}`" if step else f"the Dockerfile {dockerfile}"
            output = "\n".join(f"  {line}" for line in tail)
            raise BuildError(
                f"building {ref} failed at {where}: {message}\n"
                f"last {len(tail)} lines of the build output:\n{output}\n"
                f"fix the Dockerfile {dockerfile} or the files it uses, then run again"
            )
        aux = chunk.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            image_id = aux["ID"]
    if image_id is None:
        raise BuildError(f"building {ref}: the engine's output ended without an image ID")
    return image_id


class _PushProgress:
    """Fraction of a push done, from the engine's per-layer progress lines."""

    _DONE = ("Pushed", "Layer already exists", "Mounted from")

    def __init__(self) -> None:
        self.layers: dict[str, float] = {}

    def update(self, chunk: dict) -> float:
        layer, status = chunk.get("id"), chunk.get("status", "")
        if layer and chunk.get("progressDetail") is not None:
            detail = chunk.get("progressDetail") or {}
            if status.startswith(self._DONE):
                self.layers[layer] = 1.0
            elif detail.get("total"):
                self.layers[layer] = min(detail.get("current", 0) / detail["total"], 0.99)
            else:
                self.layers.setdefault(layer, 0.0)
        return sum(self.layers.values()) / len(self.layers) if self.layers else 0.0


def _push(client: Any, ref: ImageRef, log: Log, progress: Progress | None) -> str:
    """Push one tag; the pushed manifest's digest (the engine's aux Digest)."""
    action = f"pushing {ref}"
    tracker = _PushProgress()
    digest: str | None = None
    with engine_call(action):
        for chunk in client.push(ref.name, tag=ref.tag, stream=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or json.dumps(chunk.get("errorDetail"))
                raise classify_stream_error(strip_ansi(message), action)
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = aux["Digest"]
            fraction = tracker.update(chunk)
            status = strip_ansi(chunk.get("status", ""))
            text = f"{chunk['id']}: {status}" if chunk.get("id") else status
            if progress is not None and text:
                progress(1.0 if digest else fraction, text)
            # Per-byte progress would flood the log; state changes are enough.
            if status and status != "Pushing":
                log.info("%s", text)
    if digest is None:
        with Registry.for_image(ref) as registry:
            digest = registry.manifest_digest(ref)
    if digest is None:
        raise classify_stream_error(f"the registry does not list {ref} after the push", action)
    return digest
