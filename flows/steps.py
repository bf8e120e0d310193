"""The typed steps a pipeline line becomes (plain, frozen data; no I/O).

Each step remembers where it came from: ``entry`` is the 1-based position of its line in
the pipeline's ``deploy`` list (0 for images of an Okteto manifest's ``build`` section),
``line`` the 1-based line of that entry in the YAML file, and ``command`` the shell text it
was parsed from. Paths are absolute; images already carry the configured registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "WORKLOAD_KINDS",
    "ApplyStep",
    "BuildStep",
    "KubeScope",
    "RestartStep",
    "SetImageStep",
    "ShellStep",
    "Step",
    "WaitStep",
]

# The workload kinds shipline's rollout verbs act on (kubectl's polymorphichelpers cover
# more; other kinds run as shell steps).
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True)
class KubeScope:
    """Where a kubectl line acts: its namespace and the kubeconfig/context it names.

    ``namespace`` is resolved (the line's ``-n``, else the run's ``--namespace``, else the
    kubeconfig context's, else ``default``); ``explicit_namespace`` says the line gave
    ``-n`` itself, which makes kubectl refuse objects of another namespace.
    """

    namespace: str
    explicit_namespace: bool = False
    context: str | None = None
    kubeconfig: str | None = None


@dataclass(frozen=True)
class BuildStep:
    """Build ``dockerfile`` in ``context`` and tag it ``image``; push it when ``push``."""

    entry: int
    line: int
    command: str
    image: str
    context: str
    dockerfile: str
    build_args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    push: bool = True
    no_cache: bool = False
    service: str | None = None  # the Okteto manifest's build service, if any
    needs_images: tuple[str, ...] = ()  # images of services it depends_on

    kind: ClassVar[str] = "build"


@dataclass(frozen=True)
class ApplyStep:
    """Apply the manifests in ``files`` (in this order), after envsubst when ``substitute``.

    ``only`` is envsubst's SHELL-FORMAT allowlist (``None``: every variable). ``script``
    names the ``bash SCRIPT`` file the loop came from, when it did.
    """

    entry: int
    line: int
    command: str
    files: tuple[str, ...]
    scope: KubeScope
    substitute: bool = True
    only: frozenset[str] | None = None
    script: str | None = None

    kind: ClassVar[str] = "apply"

    @property
    def substituted_names(self) -> frozenset[str] | None:
        """The names envsubst replaces in the files: ``None`` all, an empty set none.

        ``kubectl apply -f FILE`` reads the files verbatim: ``$X`` in them stays ``$X``.
        """
        return self.only if self.substitute else frozenset()


@dataclass(frozen=True)
class SetImageStep:
    """``kubectl set image KIND NAME... CONTAINER=IMAGE...`` (``*`` for every container)."""

    entry: int
    line: int
    command: str
    workload_kind: str
    names: tuple[str, ...]
    images: tuple[tuple[str, str], ...]
    scope: KubeScope

    kind: ClassVar[str] = "set-image"


@dataclass(frozen=True)
class RestartStep:
    """``kubectl rollout restart KIND NAME...``."""

    entry: int
    line: int
    command: str
    workload_kind: str
    names: tuple[str, ...]
    scope: KubeScope

    kind: ClassVar[str] = "restart"


@dataclass(frozen=True)
class WaitStep:
    """``kubectl rollout status KIND NAME [--timeout D]``; ``timeout`` ``None`` waits forever."""

    entry: int
    line: int
    command: str
    workload_kind: str
    name: str
    scope: KubeScope
    timeout: float | None = None

    kind: ClassVar[str] = "wait"


@dataclass(frozen=True)
class ShellStep:
    """A line shipline does not model, run verbatim by bash in ``cwd``; ``reason`` says why."""

    entry: int
    line: int
    command: str
    cwd: str
    reason: str

    kind: ClassVar[str] = "shell"


Step = BuildStep | ApplyStep | SetImageStep | RestartStep | WaitStep | ShellStep
