"""The ``build`` map of an Okteto manifest v2, as build steps (pure).

Each service becomes a BuildStep built before the deploy lines, as ``okteto deploy``
builds them, and adds the ``OKTETO_BUILD_<SERVICE>_*`` variables later lines may use.
Every field is type-checked, naming the field and its line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from flows.build_commands import resolve_registry
from flows.shell_expansion import expand_text
from flows.shell_words import ShellSyntaxError
from flows.steps import BuildStep
from tasks.errors import InputError, PipelineError
from tasks.image_ref import parse_image

if TYPE_CHECKING:
    from flows.pipeline import PipelineOptions

__all__ = ["manifest_builds", "mapping_value"]

_BUILD_KEYS = frozenset({"context", "dockerfile", "image", "args", "target", "depends_on"})


def mapping_value(node: yaml.Node | None, key: str) -> tuple[yaml.Node | None, int]:
    """The value node of ``key`` and its key's line; ``(None, 0)`` when absent.

    The last match: a ``<<`` merge puts the merged pairs first, and the mapping's own key
    overrides them, as in the constructed value.
    """
    found: tuple[yaml.Node | None, int] = (None, 0)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                found = value_node, key_node.start_mark.line + 1
    return found


def manifest_builds(
    node: yaml.MappingNode,
    data: dict[str, Any],
    path: Path,
    options: PipelineOptions,
    variables: dict[str, str],
) -> list[BuildStep]:
    """The images of an Okteto manifest's ``build`` map, adding ``OKTETO_BUILD_<SVC>_*``."""
    build_node, key_line = mapping_value(node, "build")
    build = data.get("build")
    if build_node is None or build is None:
        return []
    if not isinstance(build, dict) or not isinstance(build_node, yaml.MappingNode):
        raise PipelineError(f"{path} line {key_line}: `build` must map service names to images")
    project = str(data.get("name") or path.parent.name)
    env = {**options.environ, **variables}
    images: dict[str, str] = {}
    steps: list[BuildStep] = []
    for name, value in build.items():
        service = str(name)
        # By key, not by position: a `<<` merge adds pairs the constructed map folds away.
        spec_node, line = mapping_value(build_node, service)
        line = line or key_line
        spec = value if value is not None else {}
        if not isinstance(spec, dict):
            raise PipelineError(f"{path} line {line}: build.{service} must be a mapping")
        unknown = sorted(set(spec) - _BUILD_KEYS)
        if unknown:
            raise PipelineError(
                f"{path} line {line}: build.{service}.{unknown[0]} is not supported by "
                f"shipline (supported: {', '.join(sorted(_BUILD_KEYS))})"
            )
        depends = _check_build_spec(spec, spec_node, path, service, line)

        def text(value: Any, what: str, *, _service: str = service, _line: int = line) -> str:
            try:
                return expand_text(str(value), env)
            except ShellSyntaxError as exc:
                raise PipelineError(
                    f"{path} line {_line}: build.{_service}.{what}: {exc.message}"
                ) from None

        default_image = f"okteto.dev/{project}-{service}:{options.commit}"
        image = resolve_registry(
            text(spec.get("image") or default_image, "image"), options.registry
        )
        context = os.path.normpath(path.parent / text(spec.get("context", "."), "context"))
        dockerfile = os.path.join(context, text(spec.get("dockerfile", "Dockerfile"), "dockerfile"))
        missing = [name for name in depends if name not in images]
        if missing:
            raise PipelineError(
                f"{path} line {line}: build.{service}.depends_on names {missing[0]}, which "
                "is not a build service listed before it"
            )
        try:
            parse_image(image)
        except InputError as exc:
            raise PipelineError(f"{path} line {line}: build.{service}: {exc}") from None
        steps.append(
            BuildStep(
                entry=0,
                line=line,
                command=f"build.{service}",
                image=image,
                context=os.path.normpath(context),
                dockerfile=os.path.normpath(dockerfile),
                build_args=tuple(_build_args(spec.get("args"), text)),
                target=text(spec["target"], "target") if spec.get("target") else None,
                service=service,
                needs_images=tuple(images[name] for name in depends),
            )
        )
        images[service] = image
        added = _build_variables(service, image)
        variables.update(added)
        env.update(added)
    return steps


def _check_build_spec(
    spec: dict[str, Any], spec_node: yaml.Node | None, path: Path, service: str, line: int
) -> list[str]:
    """Refuse build fields of the wrong type, naming the field and its line.

    Returns the ``depends_on`` names as a list (okteto takes one name or a list).
    """

    def refuse(field: str, must: str, value: Any, node: yaml.Node | None = None) -> NoReturn:
        _, field_line = mapping_value(spec_node, field)
        at_line = node.start_mark.line + 1 if node is not None else field_line or line
        raise PipelineError(
            f"{path} line {at_line}: build.{service}.{field} must be {must}, found "
            f"{_yaml_type(value)}"
        )

    for key in ("image", "context", "dockerfile", "target"):
        if isinstance(spec.get(key), dict | list):
            refuse(key, "a string", spec[key])
    args = spec.get("args")
    args_node, _ = mapping_value(spec_node, "args")
    if isinstance(args, dict):
        # okteto reads args as NAME: VALUE strings; a nested value has no string form.
        for name, value in args.items():
            if isinstance(value, dict | list):
                refuse(f"args.{name}", "a string", value, mapping_value(args_node, str(name))[0])
    elif isinstance(args, list):
        for index, item in enumerate(args):
            if not isinstance(item, str):
                refuse("args", "a list of NAME=VALUE strings", item, _item_node(args_node, index))
    elif args is not None:
        refuse("args", "a map of NAME: VALUE or a list of NAME=VALUE strings", args)
    depends = spec.get("depends_on")
    depends_node, _ = mapping_value(spec_node, "depends_on")
    if depends is None or depends == "":
        return []
    if isinstance(depends, str):
        return [depends]
    if not isinstance(depends, list):
        refuse("depends_on", "a build service's name or a list of names", depends)
    for index, name in enumerate(depends):
        if not isinstance(name, str):
            refuse(
                "depends_on", "a list of build service names", name, _item_node(depends_node, index)
            )
    return list(depends)


def _item_node(node: yaml.Node | None, index: int) -> yaml.Node | None:
    if isinstance(node, yaml.SequenceNode) and index < len(node.value):
        return node.value[index]
    return None


def _yaml_type(value: Any) -> str:
    """How a constructed YAML value is named in messages: ``a number (5)``."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if value is None:
        return "null"
    return f"a {type(value).__name__} ({value!s:.40})"


def _build_args(args: Any, text: Callable[[Any, str], str]) -> list[tuple[str, str]]:
    if not args:
        return []
    if isinstance(args, dict):
        return [(str(k), text(v, f"args.{k}")) for k, v in args.items()]
    pairs = []
    for item in args:
        name, _, value = str(item).partition("=")
        pairs.append((name, text(value, f"args.{name}")))
    return pairs


def _build_variables(service: str, image: str) -> dict[str, str]:
    # okteto: OKTETO_BUILD_<SERVICE>_{IMAGE,REGISTRY,REPOSITORY,TAG}, '-' becoming '_'.
    prefix = f"OKTETO_BUILD_{service.upper().replace('-', '_')}_"
    name, tag = image, ""
    if ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    registry, _, repository = name.partition("/")
    if not repository or not ("." in registry or ":" in registry or registry == "localhost"):
        registry, repository = "docker.io", name
    return {
        f"{prefix}IMAGE": image,
        f"{prefix}REGISTRY": registry,
        f"{prefix}REPOSITORY": repository,
        f"{prefix}TAG": tag,
    }
