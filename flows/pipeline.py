"""Read an okteto-pipeline.yaml (or Okteto manifest v2) into typed steps.

The file's ``deploy`` list holds shell lines (or ``{name, command}`` maps); an Okteto
manifest may add a ``build`` map of images, built before the deploy commands as
``okteto deploy`` does. Each line is lexed (:mod:`flows.shell_words`), split on ``&&``,
expanded with the run's variables, and recognised (:mod:`flows.build_commands`,
:mod:`flows.kubectl_commands`, and here the
``for f in GLOB; do envsubst < $f | kubectl apply -f -; done`` loop, also inside
``bash SCRIPT``). Anything else stays a shell step, run verbatim in its place.

Reading files is limited to the pipeline, ``bash SCRIPT`` files and directory listings for
globs; nothing here talks to a cluster, a registry or Prefect.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from flows.build_commands import docker_push_image, parse_build
from flows.command_flags import BadLine, LineContext, NotModelled
from flows.kube_names import check_namespace
from flows.kubectl_commands import LOOP_FILE, parse_apply_loop, parse_kubectl
from flows.okteto_builds import manifest_builds, mapping_value
from flows.shell_expansion import expand_word, expand_words
from flows.shell_words import Literal, Operator, ShellSyntaxError, Token, Word, tokenize
from flows.steps import BuildStep, KubeScope, ShellStep, Step
from tasks.errors import InputError, PipelineError
from tasks.globbing import expand_glob
from tasks.shell import check_syntax
from tasks.yaml_limits import UniqueKeySafeLoader, YamlLimitError

__all__ = [
    "DEFAULT_REGISTRY",
    "Pipeline",
    "PipelineOptions",
    "missing_pipeline",
    "parse_pipeline",
    "read_pipeline",
]

DEFAULT_REGISTRY = "127.0.0.1:5000"
_SEPARATORS = frozenset({";", "\n"})
_NOT_AND_LIST = frozenset({";", "\n", "||", "&", "(", ")", ";;"})
# bash builtins that change the shell running them or end it (bash(1), SHELL BUILTIN
# COMMANDS): `test -f skip && exit 0 && kubectl apply ...` must skip the apply.
_STATE_BUILTINS = frozenset(
    {
        *("cd", "pushd", "popd", "export", "unset", "set", "shopt", "source", ".", "eval"),
        *("alias", "unalias", "declare", "typeset", "local", "readonly", "umask", "ulimit"),
        *("trap", "exec", "hash", "enable", "shift", "read", "mapfile", "readarray"),
        *("getopts", "let", "function", "exit", "return", "logout"),
    }
)
_MODELLED_TOOLS = frozenset({"okteto", "docker", "kubectl"})
_SET_OPTIONS = re.compile(r"[-+][euxo]+|pipefail|errexit|nounset|xtrace")
# GNU envsubst's SHELL-FORMAT: $NAME and ${NAME} (gettext envsubst.c find_variables).
_SHELL_FORMAT_NAME = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _no_kubeconfig(context: str | None, kubeconfig: str | None) -> str | None:
    return None


@dataclass(frozen=True)
class PipelineOptions:
    """The run's settings that shape parsing: variables, registry and namespaces.

    ``kube_namespace(context, kubeconfig)`` returns the kubeconfig context's namespace
    (see :func:`flows.kube_context.context_namespace`); it is only asked when neither the
    line nor the run names a namespace.
    """

    commit: str
    branch: str = ""
    namespace: str | None = None
    registry: str = DEFAULT_REGISTRY
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    kube_namespace: Callable[[str | None, str | None], str | None] = _no_kubeconfig


@dataclass(frozen=True)
class Pipeline:
    """A parsed pipeline: its steps in order and where they run.

    ``namespace`` is the run's namespace (objects in it are named without ``@NAMESPACE``).
    ``variables`` are what shipline adds to the process environment for every line and
    manifest (``OKTETO_GIT_COMMIT``, build images, ``--var`` values); never print them.
    """

    path: str
    workdir: str
    namespace: str
    steps: tuple[Step, ...]
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)


def read_pipeline(path: str | Path, options: PipelineOptions) -> Pipeline:
    """Read and parse the pipeline file at ``path``.

    Raises :class:`PipelineError` naming the file (and line) when it is missing, not YAML
    (or repeats a key, nests too deep, aliases too much), has no ``deploy`` list or no
    steps at all, or a line is not valid shell or is refused by its tool.
    """
    pipeline_path = Path(path).absolute()
    try:
        text = pipeline_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise missing_pipeline(pipeline_path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"pipeline file {pipeline_path} cannot be read: {exc}") from exc
    return parse_pipeline(text, path=pipeline_path, options=options)


def missing_pipeline(path: Path) -> PipelineError:
    """The error for a pipeline file that is not there."""
    return PipelineError(f"pipeline file {path} does not exist: check the path")


def parse_pipeline(text: str, *, path: Path, options: PipelineOptions) -> Pipeline:
    """Parse pipeline ``text`` as if read from ``path`` (relative paths use its folder)."""
    node, data = _load_yaml(text, path)
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise PipelineError(
            f"{path}: expected a mapping with a `deploy:` list at the top, found "
            f"{type(data).__name__}"
        )
    workdir = str(path.parent)
    namespace = options.namespace or options.kube_namespace(None, None) or "default"
    variables: dict[str, str] = {
        "OKTETO_GIT_COMMIT": options.commit,
        "OKTETO_GIT_BRANCH": options.branch,
        "OKTETO_NAMESPACE": namespace,
        "SHIPLINE_REGISTRY": options.registry,
    }
    builds = manifest_builds(node, data, path, options, variables)
    entries = _deploy_entries(node, data, path)
    if not builds and not entries:
        # Running nothing and reporting success would hide a pipeline that lost its lines.
        raise PipelineError(
            f"{path} line {mapping_value(node, 'deploy')[1]}: the pipeline has no steps: "
            "`deploy` lists no lines and no `build` map names an image; add the pipeline's "
            "lines under `deploy:`"
        )
    variables.update(options.variables)
    parser = _EntryParser(path, workdir, namespace, options, {**options.environ, **variables})
    for entry, (line, command) in enumerate(entries, start=1):
        parser.parse(entry, line, command)
    # parser.steps, not what parse() returned: a `docker push` line updates an earlier build.
    return Pipeline(str(path), workdir, namespace, (*builds, *parser.steps), variables)


def _load_yaml(text: str, path: Path) -> tuple[yaml.Node | None, Any]:
    # Unique keys: a repeated key would keep the last value, and `deploy` the first one's
    # lines; limits: deep nesting and alias bombs would crash or exhaust memory.
    try:
        loader = UniqueKeySafeLoader(text)
    except YamlLimitError as exc:
        raise PipelineError(f"{path} line {exc.line}: {exc.reason}") from None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except YamlLimitError as exc:
        raise PipelineError(f"{path} line {exc.line}: {exc.reason}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PipelineError(
            f"{path}{where}: not valid YAML: {exc.problem or exc.context}; check the "
            "indentation and quoting there"
        ) from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    return node, data


def _deploy_entries(
    node: yaml.MappingNode, data: dict[str, Any], path: Path
) -> list[tuple[int, str]]:
    deploy_node, key_line = mapping_value(node, "deploy")
    deploy = data.get("deploy")
    if deploy_node is None:
        raise PipelineError(f"{path}: no `deploy:` list; add one with the pipeline's lines")
    if isinstance(deploy, dict) and isinstance(deploy_node, yaml.MappingNode):
        unknown = sorted(set(deploy) - {"commands"})
        if unknown:
            raise PipelineError(
                f"{path} line {key_line}: deploy.{unknown[0]} is not supported by shipline; "
                "use a `deploy:` list of commands"
            )
        deploy_node, key_line = mapping_value(deploy_node, "commands")
        deploy = deploy.get("commands")
    if not isinstance(deploy, list) or not isinstance(deploy_node, yaml.SequenceNode):
        raise PipelineError(
            f"{path} line {key_line}: `deploy` must be a list of shell lines, found "
            f"{type(deploy).__name__}"
        )
    entries: list[tuple[int, str]] = []
    for item, item_node in zip(deploy, deploy_node.value, strict=True):
        line = item_node.start_mark.line + 1
        command = item.get("command") if isinstance(item, dict) else item
        if not isinstance(command, str) or not command.strip():
            raise PipelineError(
                f"{path} line {line}: a deploy entry must be a shell line or a map with a "
                f"`command` string, found {item!r:.60}"
            )
        entries.append((line, command))
    return entries


class _EntryParser:
    """Turns deploy entries into steps, remembering what earlier entries did."""

    def __init__(
        self,
        path: Path,
        workdir: str,
        namespace: str,
        options: PipelineOptions,
        env: Mapping[str, str],
    ) -> None:
        self.path = path
        self.workdir = workdir
        self.namespace = namespace
        self.options = options
        self.env = env
        self.steps: list[Step] = []
        self.docker_builds: dict[str, int] = {}
        self.shell_seen = False
        self._namespaces: dict[tuple[str | None, str | None], str | None] = {}

    def parse(self, entry: int, line: int, text: str) -> list[Step]:
        """The steps of one deploy entry (several for an ``a && b`` chain)."""
        start = len(self.steps)
        try:
            tokens = tokenize(text)
        except ShellSyntaxError as exc:
            if "<<" in text:  # a here-document body is not shell words: let bash read it
                check_syntax(text, where=f"{self.path} line {line}")
                self._add(ShellStep(entry, line, text, self.workdir, "here-document"))
                return self.steps[start:]
            raise PipelineError(
                f"{self.path} line {line}: {exc.message} in `{text.strip()}`; bash would "
                "refuse this line: close the quote"
            ) from None
        elements = _and_list(tokens)
        if elements is None:
            self._add(ShellStep(entry, line, text, self.workdir, _why_not_and_list(tokens)))
        else:
            for index, element in enumerate(elements):
                command = text if len(elements) == 1 else text[element[0].start : element[-1].end]
                steps = self._parse_element(element, entry, line, command.strip())
                rest_follows = index < len(elements) - 1
                if rest_follows and _is_shell(steps) and _may_change_shell_state(element):
                    # `cd sub && kubectl apply -f k8s/`: the rest of the chain must run in
                    # the shell this part changes, so it stays one shell step with it.
                    rest = text[element[0].start : elements[-1][-1].end].strip()
                    reason = "a chain whose earlier command changes the shell's state"
                    self._add(ShellStep(entry, line, rest, self.workdir, reason))
                    break
                for step in steps:
                    self._add(step)
        if any(isinstance(step, ShellStep) for step in self.steps[start:]):
            # bash reads the whole line before running any of it: refuse it now, not
            # after earlier lines changed the cluster.
            check_syntax(text, where=f"{self.path} line {line}")
        return self.steps[start:]

    def _add(self, step: Step) -> None:
        if isinstance(step, ShellStep):
            self.shell_seen = True
            self.docker_builds.clear()
        self.steps.append(step)

    def _parse_element(
        self, tokens: list[Token], entry: int, line: int, command: str
    ) -> list[Step]:
        ctx = self._context(entry, line, command)
        try:
            if _is_word(tokens[0], "for"):
                steps = [self._parse_loop(tokens, ctx, byte_order=False, script=None)]
            elif any(isinstance(t, Operator) for t in tokens):
                raise NotModelled("pipes and redirections")
            else:
                steps = self._parse_simple(tokens, ctx)
        except NotModelled as exc:
            missing = self._missing_tool(tokens[0], ctx)
            if missing:
                raise PipelineError(
                    f"{self.path} line {line}: shipline does not model `{command}` "
                    f"({exc.reason}), and bash cannot run it: {missing} is not installed "
                    "(not on PATH); change the line or install it"
                ) from None
            steps = [ShellStep(entry, line, command, self.workdir, exc.reason)]
        except BadLine as exc:
            raise PipelineError(
                f"{self.path} line {line}: {exc} in `{command}`; fix the line"
            ) from None
        return steps

    def _missing_tool(self, first: Token, ctx: LineContext) -> str | None:
        """The tool a shell line starts with when bash would not find it, else ``None``.

        Only for the tools shipline models (an `okteto build` flag it does not know falls
        back to bash): run late, the line would fail after earlier lines changed the
        cluster. Not once a shell line ran (it may install it), nor without a PATH.
        """
        tool = first.literal() if isinstance(first, Word) else None
        path = self.env.get("PATH")
        if tool not in _MODELLED_TOOLS or ctx.files_may_appear or path is None:
            return None
        return tool if shutil.which(tool, path=path) is None else None

    def _context(self, entry: int, line: int, command: str) -> LineContext:
        return LineContext(
            entry=entry,
            line=line,
            command=command,
            cwd=self.workdir,
            registry=self.options.registry,
            scope_for=self._scope,
            environ=self.env,
            files_may_appear=self.shell_seen,
        )

    def _scope(
        self, namespace: str | None, context: str | None, kubeconfig: str | None
    ) -> KubeScope:
        if namespace:
            try:
                check_namespace(
                    namespace, source="-n", advice="the namespace must exist under that name"
                )
            except InputError as exc:
                raise BadLine(str(exc)) from None
        # Asked even under -n: a missing --kubeconfig or --context fails the line then too.
        found = self._context_namespace(context, kubeconfig) if context or kubeconfig else None
        if namespace:
            return KubeScope(namespace, True, context, kubeconfig)
        if self.options.namespace:
            return KubeScope(self.options.namespace, False, context, kubeconfig)
        if context is None and kubeconfig is None:
            return KubeScope(self.namespace, False)
        return KubeScope(found or "default", False, context, kubeconfig)

    def _context_namespace(self, context: str | None, kubeconfig: str | None) -> str | None:
        key = (context, kubeconfig)
        if key not in self._namespaces:
            # kubectl reads a relative --kubeconfig from where the pipeline runs.
            path = os.path.join(self.workdir, kubeconfig) if kubeconfig else None
            try:
                self._namespaces[key] = self.options.kube_namespace(context, path)
            except InputError as exc:
                if self.shell_seen:  # an earlier shell line may write that kubeconfig
                    raise NotModelled(f"{exc} (yet)") from None
                raise BadLine(str(exc)) from None
        return self._namespaces[key]

    def _parse_simple(self, tokens: list[Token], ctx: LineContext) -> list[Step]:
        words = [t for t in tokens if isinstance(t, Word)]
        for word in words:
            if word.unsupported:
                raise NotModelled(word.unsupported[0])
        if _is_assignment(words[0]):
            raise NotModelled("a variable assignment before the command")
        argv = expand_words(words, self.env, self._glob)
        if len(argv) == 2 and argv[0] in ("bash", "sh") and not argv[1].startswith("-"):
            return [self._parse_script(argv[1], ctx, byte_order=argv[0] == "sh")]
        pushed = docker_push_image(argv, self.options.registry)
        if pushed is not None:
            return self._merge_push(pushed)
        steps = _parse_command(argv, ctx)
        for step in steps:
            if isinstance(step, BuildStep) and not step.push:
                self.docker_builds[step.image] = len(self.steps)
        return steps

    def _glob(self, pattern: str) -> list[str]:
        return expand_glob(pattern, self.workdir)

    def _merge_push(self, image: str) -> list[Step]:
        # `docker push IMG` after `docker build -t IMG`: the build step pushes.
        index = self.docker_builds.pop(image, None)
        if index is None:
            raise NotModelled("docker push of an image no earlier docker build tagged")
        build = self.steps[index]
        assert isinstance(build, BuildStep)
        self.steps[index] = replace(build, push=True)
        return []

    def _parse_script(self, script: str, ctx: LineContext, *, byte_order: bool) -> Step:
        path = Path(self.workdir, script)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if ctx.files_may_appear:
                raise NotModelled(f"script {script} does not exist yet") from None
            raise BadLine(f"bash: {script}: No such file or directory") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise NotModelled(f"script {script} cannot be read ({exc})") from None
        try:
            tokens = tokenize(text)
        except ShellSyntaxError as exc:
            raise NotModelled(f"script {script} is not plain shell ({exc.message})") from None
        commands = [c for c in _script_commands(tokens) if not _is_set_options(c)]
        if len(commands) != 1 or not _is_word(commands[0][0], "for"):
            raise NotModelled(f"script {script} is not a single apply loop")
        return self._parse_loop(commands[0], ctx, byte_order=byte_order, script=str(path))

    def _parse_loop(
        self, tokens: list[Token], ctx: LineContext, *, byte_order: bool, script: str | None
    ) -> Step:
        """``for V in WORDS; do envsubst [FMT] < $V | kubectl apply -f -; done``."""
        if len(tokens) < 3 or not isinstance(tokens[1], Word) or not _is_word(tokens[2], "in"):
            raise NotModelled("a for loop without `in WORDS`")
        variable = tokens[1].literal()
        do = next((i for i, t in enumerate(tokens) if _is_word(t, "do")), None)
        if variable is None or do is None or not _is_word(tokens[-1], "done"):
            raise NotModelled("a for loop shipline does not recognise")
        items = tokens[3:do]
        while items and isinstance(items[-1], Operator) and items[-1].op in _SEPARATORS:
            items.pop()
        if not items or not all(isinstance(t, Word) and not t.unsupported for t in items):
            raise NotModelled("a for loop over something other than words")
        body = [c for c in _split_on(tokens[do + 1 : -1], _SEPARATORS) if c]
        if len(body) != 1:
            raise NotModelled("a for loop whose body is not one envsubst | kubectl apply")
        names = expand_words(
            [t for t in items if isinstance(t, Word)],
            self.env,
            lambda pattern: expand_glob(pattern, self.workdir, byte_order=byte_order),
        )
        files = self._loop_files(names, ctx)
        return self._loop_body(body[0], variable, files, ctx, script)

    def _loop_files(self, names: Sequence[str], ctx: LineContext) -> tuple[str, ...]:
        files = []
        for name in names:
            full = os.path.normpath(os.path.join(self.workdir, name))
            if not os.path.isfile(full):
                if ctx.files_may_appear:
                    raise NotModelled(f"{name} does not exist yet")
                raise BadLine(
                    f"the loop reads {name}, which is not a file (relative to "
                    f"{self.workdir}; a glob that matches nothing stays as written)"
                )
            files.append(full)
        return tuple(files)

    def _loop_body(
        self,
        body: list[Token],
        variable: str,
        files: tuple[str, ...],
        ctx: LineContext,
        script: str | None,
    ) -> Step:
        stages = _split_on(body, frozenset({"|"}))
        if len(stages) == 1:  # for f in ...; do kubectl apply -f $f; done
            argv = self._loop_argv(stages[0], variable, allow_reference=True)
            return parse_apply_loop(argv, ctx, files, substitute=False, only=None, script=script)
        if len(stages) != 2:
            raise NotModelled("a loop body with more than one pipe")
        envsubst_words, source = _without_redirect(stages[0])
        if source is None or source.parameter_only() != variable:
            raise NotModelled(f"a loop body that does not read ${variable} into envsubst")
        argv = self._loop_argv(envsubst_words, variable, allow_reference=False)
        if (
            not argv
            or argv[0] != "envsubst"
            or len(argv) > 2
            or any(a.startswith("-") for a in argv[1:])
        ):
            raise NotModelled("envsubst with options")
        only = None
        if len(argv) == 2:
            only = frozenset(a or b for a, b in _SHELL_FORMAT_NAME.findall(argv[1]))
        kubectl = self._loop_argv(stages[1], variable, allow_reference=False)
        return parse_apply_loop(kubectl, ctx, files, substitute=True, only=only, script=script)

    def _loop_argv(self, tokens: list[Token], variable: str, *, allow_reference: bool) -> list[str]:
        if any(isinstance(t, Operator) for t in tokens):
            raise NotModelled("redirections in the loop body")
        argv: list[str] = []
        for word in tokens:
            assert isinstance(word, Word)
            if word.unsupported:
                raise NotModelled(word.unsupported[0])
            if allow_reference and word.parameter_only() == variable:
                argv.append(LOOP_FILE)
            elif variable in word.parameters():
                raise NotModelled(f"${variable} used other than as the file to apply")
            else:
                argv.extend(expand_word(word, self.env, self._glob))
        return argv


def _parse_command(argv: Sequence[str], ctx: LineContext) -> list[Step]:
    """The steps of a simple command: okteto/docker build or a modelled kubectl verb."""
    tool = argv[0] if argv else ""
    if tool in ("okteto", "docker") and len(argv) > 1 and argv[1] == "build":
        return [parse_build(argv[2:], ctx, tool=tool)]
    if tool == "kubectl":
        return parse_kubectl(argv[1:], ctx)
    raise NotModelled(
        f"{os.path.basename(tool) or 'an empty command'} is not a step shipline models"
    )


def _is_assignment(word: Word) -> bool:
    first = word.parts[0] if word.parts else None
    return (
        isinstance(first, Literal)
        and not first.quoted
        and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", first.text) is not None
    )


def _is_shell(steps: Sequence[Step]) -> bool:
    return len(steps) == 1 and isinstance(steps[0], ShellStep)


def _may_change_shell_state(tokens: list[Token]) -> bool:
    """Whether a chain element could change what the shell's later commands see.

    Builtins that change the directory, variables, options, functions or file
    descriptors, a bare assignment, an expansion that assigns (``${X:=v}``), or anything
    but a simple command. External commands run in a child and cannot.
    """
    words = [t for t in tokens if isinstance(t, Word)]
    if not words or any(isinstance(t, Operator) and t.op in ("(", ")") for t in tokens):
        return True
    if any(word.unsupported for word in words) or _is_word(tokens[0], "for"):
        return True
    names = [word.literal() for word in words if not _is_assignment(word)]
    while names and names[0] in ("command", "builtin"):
        names = names[1:]
    return not names or names[0] is None or names[0] in _STATE_BUILTINS


def _is_word(token: Token, text: str) -> bool:
    return isinstance(token, Word) and token.literal() == text


def _split_on(tokens: Sequence[Token], ops: frozenset[str]) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    for token in tokens:
        if isinstance(token, Operator) and token.op in ops:
            parts.append([])
        else:
            parts[-1].append(token)
    return [part for part in parts if part]


def _is_set_options(command: list[Token]) -> bool:
    # `set -e`, `set -euo pipefail`: they change nothing for an apply loop.
    if not command or not _is_word(command[0], "set") or len(command) < 2:
        return False
    return all(
        isinstance(t, Word) and _SET_OPTIONS.fullmatch(t.literal() or "") for t in command[1:]
    )


def _without_redirect(tokens: list[Token]) -> tuple[list[Token], Word | None]:
    for index, token in enumerate(tokens[:-1]):
        if isinstance(token, Operator) and token.op == "<" and isinstance(tokens[index + 1], Word):
            source = tokens[index + 1]
            assert isinstance(source, Word)
            return tokens[:index] + tokens[index + 2 :], source
    return tokens, None


def _and_list(tokens: list[Token]) -> list[list[Token]] | None:
    """Split ``a && b && c`` into commands; ``None`` when the line is more than that."""
    while tokens and isinstance(tokens[-1], Operator) and tokens[-1].op in _SEPARATORS:
        tokens = tokens[:-1]
    while tokens and isinstance(tokens[0], Operator) and tokens[0].op == "\n":
        tokens = tokens[1:]
    elements = _split_commands(tokens, frozenset({"&&"}), _NOT_AND_LIST)
    if not tokens or elements is None or not all(elements):
        return None
    return elements


def _script_commands(tokens: list[Token]) -> list[list[Token]]:
    """The commands of a script, one per line or ``;`` (a for loop stays whole)."""
    commands = _split_commands(tokens, _SEPARATORS, frozenset())
    return [command for command in commands or [] if command]


def _split_commands(
    tokens: list[Token], split: frozenset[str], refuse: frozenset[str]
) -> list[list[Token]] | None:
    elements: list[list[Token]] = [[]]
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not elements[-1] and _is_word(token, "for"):
            end = _loop_end(tokens, index)
            if end is None:
                return None
            elements[-1].extend(tokens[index : end + 1])
            index = end + 1
            continue
        if isinstance(token, Operator) and token.op in split:
            elements.append([])
        elif isinstance(token, Operator) and token.op in refuse:
            return None
        else:
            elements[-1].append(token)
        index += 1
    return elements


def _loop_end(tokens: list[Token], start: int) -> int | None:
    depth = 0
    at_command_start = True
    for index in range(start, len(tokens)):
        token = tokens[index]
        if at_command_start and isinstance(token, Word):
            if token.literal() in ("for", "while", "until"):
                depth += 1
            elif token.literal() == "done":
                depth -= 1
                if depth == 0:
                    return index
        at_command_start = isinstance(token, Operator) or token.literal() in ("do", "then", "else")
    return None


def _why_not_and_list(tokens: list[Token]) -> str:
    ops = sorted({t.op for t in tokens if isinstance(t, Operator)} - {"&&", "|", "<", ">"})
    shown = ["newline" if op == "\n" else op for op in ops]
    return f"a shell list with {', '.join(shown) or 'no command'}"
