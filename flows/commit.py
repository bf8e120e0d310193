"""The commit and branch a run deploys by default: those checked out next to the pipeline.

``shipline plan`` and ``shipline run`` share these defaults (:func:`run_options`) so a plan
shows exactly the image tags the run will build (``${OKTETO_GIT_COMMIT}``,
``${OKTETO_GIT_BRANCH}``), in the namespace and registry the run will use.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from flows.kube_context import context_namespace
from flows.kube_names import check_namespace
from flows.pipeline import DEFAULT_REGISTRY, PipelineOptions, missing_pipeline
from tasks.errors import InputError
from tasks.image_ref import parse_image

__all__ = [
    "MAX_TIMEOUT",
    "check_commit",
    "check_namespace",
    "check_registry",
    "check_timeout",
    "current_branch",
    "head_commit",
    "is_variable_name",
    "parse_variables",
    "resolve_commit",
    "run_options",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a shell variable's name
_VARIABLE = re.compile(rf"({_NAME.pattern})=(.*)", re.DOTALL)
# A namespace name is an RFC 1123 label (apimachinery's validation.IsDNS1123Label).
# Seconds; a rollout still unfinished after a day is stuck, and a day fits every timer.
MAX_TIMEOUT = 24 * 60 * 60.0
_MAX_TAG = 128
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # distribution's tag grammar


def run_options(
    pipeline_path: str | Path,
    *,
    commit: str | None = None,
    branch: str | None = None,
    namespace: str | None = None,
    registry: str | None = None,
    variables: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PipelineOptions:
    """The options a run of ``pipeline_path`` uses, with the CLI's defaults filled in.

    ``commit`` (empty: not given) defaults to ``git rev-parse HEAD`` of the pipeline's
    folder, and outside a repository must be given;
    ``branch`` to the branch checked out there; ``registry`` to ``SHIPLINE_REGISTRY``, else
    ``127.0.0.1:5000``; a namespace nobody names comes from the kubeconfig's context.

    Raises :class:`InputError` when ``namespace``, or the one the kubeconfig's context
    names, is not a valid Kubernetes namespace name (see :func:`check_namespace`), when
    the commit is not given and cannot be found, or is not one (see :func:`check_commit`).
    """
    env = os.environ if environ is None else environ
    if namespace:
        check_namespace(namespace)
    commit = resolve_commit(pipeline_path, commit)
    folder = Path(pipeline_path).absolute().parent

    def kube_namespace(context: str | None, kubeconfig: str | None) -> str | None:
        found = context_namespace(kubeconfig=kubeconfig, context=context, environ=env)
        if found:
            where = f'context "{context}"' if context else "current context"
            check_namespace(
                found,
                source=f"the namespace of the kubeconfig's {where}",
                advice="fix the context (`kubectl config set-context CONTEXT --namespace=NAME`) "
                "or pass --namespace",
            )
        return found

    return PipelineOptions(
        commit=commit,
        branch=current_branch(folder) if branch is None else branch,
        namespace=namespace or None,
        registry=check_registry(registry or env.get("SHIPLINE_REGISTRY") or DEFAULT_REGISTRY),
        variables=dict(variables or {}),
        environ=dict(env),
        kube_namespace=kube_namespace,
    )


def resolve_commit(pipeline_path: str | Path, commit: str | None) -> str:
    """``commit`` checked, or when empty ``git rev-parse HEAD`` of the pipeline's folder.

    Raises :class:`InputError` for a missing pipeline file first (the first thing to
    fix), then as :func:`check_commit` and :func:`head_commit` do.
    """
    path = Path(pipeline_path).absolute()
    if not path.exists():
        raise missing_pipeline(path)
    # No fallback such as "HEAD" outside a repository: every run would tag `:HEAD`, and a
    # set image to the same tag changes nothing, so new code would never roll out.
    return check_commit(commit) if commit else head_commit(path.parent)


def check_commit(commit: str) -> str:
    """``commit`` when it can be an image tag's part and a git revision.

    Raises :class:`InputError` unless it matches the image tag grammar (the pipeline's
    images are tagged with it; no leading ``-``, so git never reads it as an option).
    """
    if not _TAG.fullmatch(commit):
        raise InputError(
            f"--commit {commit[:_MAX_TAG]!r}: expected a commit (usually a git SHA) that can "
            f"be an image tag: up to {_MAX_TAG} letters, digits, _ . -, not starting with . or -"
        )
    return commit


def check_registry(registry: str) -> str:
    """``registry`` when it is a ``host[:port][/path]`` (``okteto.dev/`` maps to it).

    Raises :class:`InputError` otherwise (a scheme, spaces, no host).
    """
    try:
        ref = parse_image(f"{registry}/image:tag")
    except InputError:
        ref = None
    if ref is None or ref.registry != registry.split("/", 1)[0]:
        raise InputError(
            f"--registry {registry!r}: expected HOST[:PORT] of a registry, such as "
            "127.0.0.1:5000, optionally with a path (no scheme)"
        )
    return registry


def check_timeout(value: float) -> float:
    """``value`` (seconds, ``--timeout``) when 0 < value <= :data:`MAX_TIMEOUT`.

    Raises :class:`InputError` for zero, negative, NaN, infinite or larger values.
    """
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise InputError(
            f"--timeout {value:g}: expected the seconds each rollout may take, a number "
            f"greater than 0 and at most {MAX_TIMEOUT:g} (24 hours)"
        )
    return value


def is_variable_name(name: str) -> bool:
    """Whether ``name`` is a shell variable's name (``--var NAME=``, ``--secret NAME``)."""
    return _NAME.fullmatch(name) is not None


def parse_variables(pairs: Iterable[str]) -> dict[str, str]:
    """``--var NAME=VALUE`` values as a dict (the last one of a name wins).

    Raises :class:`InputError` naming the bad value when it is not ``NAME=VALUE`` with a
    shell variable name.
    """
    variables: dict[str, str] = {}
    for pair in pairs:
        match = _VARIABLE.fullmatch(pair)
        if match is None:
            raise InputError(
                f"--var {pair!r}: expected NAME=VALUE with NAME a shell variable name "
                "(letters, digits, _; not starting with a digit)"
            )
        variables[match.group(1)] = match.group(2)
    return variables


def head_commit(folder: str | Path) -> str:
    """``git rev-parse HEAD`` run in ``folder`` (the pipeline file's folder).

    Raises :class:`InputError` asking for ``--commit`` when the folder is not in a git
    repository, the repository has no commit yet, or git is not installed.
    """
    ok, output = _git(folder, "rev-parse", "--verify", "HEAD")
    if not ok:
        raise InputError(
            f"cannot tell which commit to deploy: `git rev-parse HEAD` failed in {folder} "
            f"({output or 'no output'}); pass --commit REV (usually a git SHA)"
        )
    return output


def current_branch(folder: str | Path) -> str:
    """The branch checked out in ``folder``, or ``""`` (detached HEAD, no repository)."""
    ok, output = _git(folder, "rev-parse", "--abbrev-ref", "HEAD")
    return output if ok and output != "HEAD" else ""


def _git(folder: str | Path, *args: str) -> tuple[bool, str]:
    try:
        completed = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except FileNotFoundError:
        return False, "git is not installed"
    except subprocess.TimeoutExpired:
        return False, "git did not answer within 30 s"
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines()
        return False, lines[-1] if lines else f"exit code {completed.returncode}"
    return True, completed.stdout.strip()
