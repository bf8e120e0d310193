"""The kubectl lines shipline models: ``apply -f``, ``set image``, ``rollout restart|status``.

Global flags may come anywhere (``kubectl -n NS apply ...``); resources are ``TYPE NAME...``
or ``TYPE/NAME...`` as cli-runtime's builder.go ``ResourceTypeOrNameArgs`` reads them, with
kubectl's spellings of the workload kinds (``deploy``, ``deployments.apps``, ``sts``, ...).
Messages for refused lines repeat kubectl's own (cmd/set/set_image.go, cmd/util/helpers.go
``GetResourcesAndPairs``, cmd/rollout/rollout_status.go).
"""

from __future__ import annotations

from collections.abc import Sequence

from flows.build_commands import resolve_registry
from flows.command_flags import (
    BadLine,
    Flag,
    LineContext,
    NotModelled,
    absolute,
    boolean_flag,
    last_value,
    parse_duration,
    scan_flags,
)
from flows.steps import ApplyStep, KubeScope, RestartStep, SetImageStep, Step, WaitStep
from tasks.globbing import kubectl_filename_matches, kubectl_filename_paths

__all__ = ["LOOP_FILE", "parse_apply_loop", "parse_kubectl", "workload_kind"]

# Stands for the loop's file in `kubectl apply -f $f` inside a for loop (argv has no NUL).
LOOP_FILE = "\0loop-file\0"

_KUBECTL_GLOBAL_FLAGS = (
    Flag("namespace", "n"),
    Flag("context"),
    Flag("kubeconfig"),
)
_KUBECTL_VERBS: dict[tuple[str, ...], tuple[Flag, ...]] = {
    ("apply",): (Flag("filename", "f"), Flag("recursive", "R", boolean=True)),
    ("set", "image"): (),
    ("rollout", "restart"): (),
    ("rollout", "status"): (Flag("timeout"), Flag("watch", "w", boolean=True)),
}
# kubectl's short names and spellings of the workload kinds (kubectl api-resources).
_KIND_NAMES = {
    "Deployment": ("deploy", "deployment", "deployments"),
    "StatefulSet": ("sts", "statefulset", "statefulsets"),
    "DaemonSet": ("ds", "daemonset", "daemonsets"),
}
_KINDS = {
    spelling: kind
    for kind, names in _KIND_NAMES.items()
    for name in names
    for spelling in (name, f"{name}.apps", f"{name}.v1.apps")
}


def workload_kind(text: str) -> str | None:
    """The kind a kubectl resource type names (``deploy`` -> ``Deployment``), or ``None``."""
    return _KINDS.get(text.lower())


def parse_kubectl(args: Sequence[str], ctx: LineContext) -> list[Step]:
    """The steps of ``kubectl ARGS``; :class:`NotModelled` for verbs and flags not modelled."""
    verb, rest = _kubectl_verb(args)
    if verb not in _KUBECTL_VERBS:
        raise NotModelled(f"kubectl {' '.join(verb) or '(no verb)'} is not modelled")
    values, positionals = scan_flags(rest, _KUBECTL_GLOBAL_FLAGS + _KUBECTL_VERBS[verb], "kubectl")
    scope = ctx.scope_for(
        last_value(values, "namespace"),
        last_value(values, "context"),
        last_value(values, "kubeconfig"),
    )
    if verb == ("apply",):
        return [_parse_apply(values, positionals, scope, ctx)]
    if verb == ("set", "image"):
        return _parse_set_image(positionals, scope, ctx)
    if verb == ("rollout", "restart"):
        return [
            RestartStep(ctx.entry, ctx.line, ctx.command, kind, names, scope)
            for kind, names in _workloads(positionals, "rollout restart")
        ]
    return [_parse_rollout_status(values, positionals, scope, ctx)]


def _kubectl_verb(args: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    """Find the verb words among global flags (cobra strips flags to find subcommands)."""
    value_flags = {"-n", "--namespace", "--context", "--kubeconfig"}
    words: list[int] = []
    index = 0
    while index < len(args) and len(words) < 2:
        arg = args[index]
        if arg in value_flags:
            index += 2
            continue
        if arg.startswith("-"):
            index += 1
            continue
        words.append(index)
        if args[words[0]] not in ("set", "rollout"):
            break
        index += 1
    verb = tuple(args[i] for i in words)
    rest = [arg for i, arg in enumerate(args) if i not in words]
    return verb, rest


def parse_apply_loop(
    argv: Sequence[str],
    ctx: LineContext,
    files: tuple[str, ...],
    *,
    substitute: bool,
    only: frozenset[str] | None,
    script: str | None,
) -> ApplyStep:
    """The apply step of a loop body: ``kubectl apply -f -`` (after envsubst) or ``-f $f``.

    ``argv`` is the body's kubectl command with :data:`LOOP_FILE` standing for ``$f``.
    """
    if not argv or argv[0] != "kubectl":
        raise NotModelled("a loop body that does not end in kubectl apply")
    verb, rest = _kubectl_verb(argv[1:])
    if verb != ("apply",):
        raise NotModelled(f"kubectl {' '.join(verb)} in a loop")
    values, positionals = scan_flags(rest, _KUBECTL_GLOBAL_FLAGS + _KUBECTL_VERBS[verb], "kubectl")
    expected = ["-"] if substitute else [LOOP_FILE]
    if values.get("filename") != expected or positionals:
        raise NotModelled("a loop body whose kubectl apply reads other files")
    scope = ctx.scope_for(
        last_value(values, "namespace"),
        last_value(values, "context"),
        last_value(values, "kubeconfig"),
    )
    return ApplyStep(
        ctx.entry,
        ctx.line,
        ctx.command,
        files,
        scope,
        substitute=substitute,
        only=only,
        script=script,
    )


def _parse_apply(
    values: dict[str, list[str]], positionals: list[str], scope: KubeScope, ctx: LineContext
) -> ApplyStep:
    if positionals:
        raise BadLine(
            f"kubectl apply: Unexpected args: [{' '.join(positionals)}] (an unquoted glob "
            "after -f expands to several files; quote it or name a directory)"
        )
    filenames = values.get("filename", [])
    if not filenames:
        raise BadLine("kubectl apply: must specify one of -f and -k")
    recursive = boolean_flag(values, "recursive", "kubectl apply")
    files: list[str] = []
    for name in filenames:
        if name == "-":
            raise NotModelled("kubectl apply -f - reads stdin")
        if name.startswith(("http://", "https://")):
            raise NotModelled("kubectl apply -f URL")
        try:
            found = kubectl_filename_paths(name, ctx.cwd, recursive=recursive)
        except FileNotFoundError as exc:
            if ctx.files_may_appear:
                raise NotModelled(f"{exc} yet (an earlier shell line may create it)") from exc
            raise BadLine(f"kubectl apply: {exc} (relative to {ctx.cwd})") from exc
        if not files and not found:  # no manifest file so far (kubectl builder.go Path)
            if ctx.files_may_appear:
                raise NotModelled("no manifest file yet (an earlier shell line may create one)")
            matches = " ".join(kubectl_filename_matches(name, ctx.cwd))
            raise BadLine(
                f"kubectl apply: error reading [{matches}]: recognized file extensions are "
                "[.json .yaml .yml]"
            )
        files.extend(absolute(ctx.cwd, path) for path in found)
    return ApplyStep(ctx.entry, ctx.line, ctx.command, tuple(files), scope, substitute=False)


def _parse_set_image(positionals: list[str], scope: KubeScope, ctx: LineContext) -> list[Step]:
    # kubectl cmd/util helpers.go GetResourcesAndPairs + ParsePairs.
    resources: list[str] = []
    pairs: dict[str, str] = {}
    for arg in positionals:
        if "=" in arg:
            container, _, image = arg.partition("=")
            if not container or not image:
                raise BadLine(f'kubectl set image: invalid image format: "{arg}"')
            pairs[container] = resolve_registry(image, ctx.registry)
        elif pairs:
            raise BadLine(
                f"kubectl set image: all resources must be specified before image changes: {arg}"
            )
        else:
            resources.append(arg)
    if not pairs:
        raise BadLine("kubectl set image: at least one image update is required")
    if len(pairs) > 1 and "*" in pairs:
        raise BadLine(
            "kubectl set image: all containers are already specified by *, but saw more "
            "than one container_name=container_image pairs"
        )
    return [
        SetImageStep(ctx.entry, ctx.line, ctx.command, kind, names, tuple(pairs.items()), scope)
        for kind, names in _workloads(resources, "set image")
    ]


def _parse_rollout_status(
    values: dict[str, list[str]], positionals: list[str], scope: KubeScope, ctx: LineContext
) -> WaitStep:
    if not boolean_flag(values, "watch", "kubectl rollout status") and "watch" in values:
        raise NotModelled("kubectl rollout status --watch=false")
    workloads = _workloads(positionals, "rollout status")
    if len(workloads) != 1 or len(workloads[0][1]) != 1:
        raise BadLine(
            "kubectl rollout status: rollout status is only supported on individual "
            "resources: name one workload per command (chain several with &&)"
        )
    timeout_text = last_value(values, "timeout")
    timeout: float | None = None
    if timeout_text is not None:
        try:
            timeout = parse_duration(timeout_text)
        except ValueError as exc:
            raise BadLine(
                f'kubectl rollout status: invalid argument "{timeout_text}" for "--timeout" '
                f"flag: {exc} (use a unit: 90s, 5m, 1h2m3s)"
            ) from exc
        if timeout < 0:
            raise BadLine(f"kubectl rollout status: --timeout {timeout_text} is negative")
        timeout = timeout or None  # 0 means wait forever (kubectl rollout status --help)
    kind, names = workloads[0]
    return WaitStep(ctx.entry, ctx.line, ctx.command, kind, names[0], scope, timeout)


def _workloads(args: Sequence[str], verb: str) -> list[tuple[str, tuple[str, ...]]]:
    """``TYPE NAME...`` or ``TYPE/NAME...`` as (kind, names) groups in order.

    Mirrors cli-runtime's builder.go ``ResourceTypeOrNameArgs``.
    """
    if not args:
        raise NotModelled(f"kubectl {verb} without a resource")
    if any("/" in arg for arg in args):
        if not all("/" in arg for arg in args):
            raise BadLine(
                f"kubectl {verb}: there is no need to specify a resource type as a separate "
                "argument when passing arguments in resource/name form"
            )
        groups: list[tuple[str, tuple[str, ...]]] = []
        for arg in args:
            type_name, _, name = arg.partition("/")
            kind = _supported_kind(type_name, verb)
            if not name:
                raise BadLine(
                    f"kubectl {verb}: arguments in resource/name form must have a single "
                    f"resource and name ({arg})"
                )
            if groups and groups[-1][0] == kind:
                groups[-1] = (kind, (*groups[-1][1], name))
            else:
                groups.append((kind, (name,)))
        return groups
    if len(args) == 1:
        raise NotModelled(f"kubectl {verb} of every {args[0]} (no name given)")
    if "," in args[0]:
        raise NotModelled(f"kubectl {verb} of several resource types")
    return [(_supported_kind(args[0], verb), tuple(dict.fromkeys(args[1:])))]


def _supported_kind(type_name: str, verb: str) -> str:
    kind = workload_kind(type_name)
    if kind is None:
        raise NotModelled(
            f"kubectl {verb} of {type_name} (shipline models Deployments, "
            "StatefulSets and DaemonSets)"
        )
    return kind
