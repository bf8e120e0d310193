"""``okteto build``, ``docker build`` and ``docker push`` lines as build steps.

``okteto build -t IMAGE [-f DOCKERFILE] [CONTEXT]`` builds and pushes (okteto's
cmd/build); ``docker build`` only tags, and a later ``docker push`` of that tag makes the
build step push. The Dockerfile path is relative to the working directory, as the CLIs
read it; the context defaults to ``.`` for okteto and is required by docker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from flows.command_flags import (
    BadLine,
    Flag,
    LineContext,
    NotModelled,
    absolute,
    boolean_flag,
    last_value,
    scan_flags,
)
from flows.steps import BuildStep
from tasks.errors import InputError
from tasks.image_ref import parse_image

__all__ = ["OKTETO_REGISTRY_PREFIX", "docker_push_image", "parse_build", "resolve_registry"]

OKTETO_REGISTRY_PREFIX = "okteto.dev/"

_BUILD_FLAGS = (
    Flag("tag", "t"),
    Flag("file", "f"),
    Flag("build-arg"),
    Flag("target"),
    Flag("no-cache", boolean=True),
    Flag("progress"),
)


def resolve_registry(image: str, registry: str) -> str:
    """Map Okteto's ``okteto.dev/`` registry to the configured one, leave others alone."""
    if image.startswith(OKTETO_REGISTRY_PREFIX):
        return f"{registry.rstrip('/')}/{image[len(OKTETO_REGISTRY_PREFIX) :]}"
    return image


def docker_push_image(argv: Sequence[str], registry: str) -> str | None:
    """The image of a plain ``docker push IMAGE``, or ``None`` for any other command."""
    if len(argv) == 3 and argv[:2] == ["docker", "push"] and not argv[2].startswith("-"):
        return resolve_registry(argv[2], registry)
    return None


def parse_build(args: Sequence[str], ctx: LineContext, *, tool: str) -> BuildStep:
    """The build step of ``okteto build ARGS`` or ``docker build ARGS`` (``tool``)."""
    values, positionals = scan_flags(args, _BUILD_FLAGS, f"{tool} build")
    tags = values.get("tag", [])
    if not tags:
        raise NotModelled(f"{tool} build without -t (nothing to tag or push)")
    if len(tags) > 1:
        raise NotModelled(f"{tool} build with several -t tags")
    if len(positionals) > 1:
        raise NotModelled(f"{tool} build with several positional arguments")
    if tool == "docker" and not positionals:
        raise BadLine('"docker build" requires exactly 1 argument: the build context')
    context_arg = positionals[0] if positionals else "."
    if context_arg == "-" or "://" in context_arg or context_arg.startswith("git@"):
        raise NotModelled(f"{tool} build from stdin or a URL")
    dockerfile_arg = last_value(values, "file")
    if dockerfile_arg == "-":
        raise NotModelled(f"{tool} build with a Dockerfile on stdin")
    context = absolute(ctx.cwd, context_arg)
    dockerfile = (
        absolute(ctx.cwd, dockerfile_arg) if dockerfile_arg else os.path.join(context, "Dockerfile")
    )
    image = resolve_registry(tags[0], ctx.registry)
    try:
        parse_image(image)  # here, not at build time, after an apply changed the cluster
    except InputError as exc:
        raise BadLine(f"{tool} build: {exc}") from None
    return BuildStep(
        entry=ctx.entry,
        line=ctx.line,
        command=ctx.command,
        image=image,
        context=context,
        dockerfile=dockerfile,
        build_args=tuple(_build_args(values.get("build-arg", []), ctx.environ)),
        target=last_value(values, "target"),
        # okteto build pushes what it builds; docker build pushes only with a docker push.
        push=tool == "okteto",
        no_cache=boolean_flag(values, "no-cache", f"{tool} build"),
    )


def build_files_problem(context: str, dockerfile: str) -> str | None:
    """What is missing of a build's context and Dockerfile, if anything.

    The flow asks before anything runs, so a bad build stops the run before an apply
    that does not wait for the image has changed the cluster (the parser does not: an
    earlier shell line may create them).
    """
    if not os.path.isdir(context):
        return f"the build context {context} is not a directory; check the path"
    if not os.path.isfile(dockerfile):
        return f"the Dockerfile {dockerfile} does not exist; check -f and the context"
    return None


def _build_args(args: Sequence[str], environ: Mapping[str, str]) -> list[tuple[str, str]]:
    # docker: `--build-arg NAME` takes NAME's value from the environment, or is dropped.
    pairs: list[tuple[str, str]] = []
    for arg in args:
        name, has_value, value = arg.partition("=")
        if has_value:
            pairs.append((name, value))
        elif name in environ:
            pairs.append((name, environ[name]))
    return pairs
