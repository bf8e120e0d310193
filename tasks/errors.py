"""The errors shipline raises, classified once, where they happen.

    ShiplineError                 every error shipline raises on purpose
    ├── InputError                the user's input is wrong: fix it, retrying cannot help
    │   ├── PipelineError         the pipeline file or one of its lines
    │   ├── ManifestError         a manifest file, document or object
    │   └── SubstitutionError     an unset variable in strict mode
    ├── BuildError                a Dockerfile step failed (permanent)
    ├── ApplyError                the cluster refused an object (permanent)
    ├── RolloutError              a workload is missing, paused, or has no such container
    ├── RolloutFailed             a rollout failed: a stuck pod, a deadline, a timeout
    ├── ShellStepError            a shell line exited non-zero
    ├── TriggerError              a webhook or API trigger is malformed
    ├── StackError                the local stack cannot start or stop a component
    └── TransientError            the network or a server hiccupped: retrying can help

Prefect's ``retry_condition_fn`` reads ``retryable`` (see ``is_retryable``), never the
message text. Every message names what failed (file and line, object, pod, container)
and says what to check next.
"""

from __future__ import annotations


class ShiplineError(Exception):
    """Base of every error shipline raises on purpose."""

    retryable = False
    # Exit code of the CLI: 2 for usage and input errors, 1 for deploy failures.
    exit_code = 1


class InputError(ShiplineError):
    """The user's input (pipeline, manifest, flag, variable) is wrong."""

    exit_code = 2


class PipelineError(InputError):
    """The pipeline file, or one of its lines, cannot be used."""


class ManifestError(InputError):
    """A manifest file, document or object is invalid."""


class SubstitutionError(InputError):
    """A variable is unset while substitution is strict."""


class BuildError(ShiplineError):
    """An image build failed for a reason retrying cannot fix (a failing Dockerfile step)."""


class ApplyError(ShiplineError):
    """The cluster refused an object (validation, forbidden, conflict)."""


class RolloutError(ShiplineError):
    """A rollout verb cannot act: the object is missing, paused, or lacks a container."""


class RolloutFailed(ShiplineError):
    """A rollout did not complete: a pod is stuck, a deadline passed, or time ran out."""


class ShellStepError(ShiplineError):
    """A shell line of the pipeline exited non-zero."""


class TriggerError(ShiplineError):
    """A trigger (webhook delivery, API call) is malformed."""


class StackError(ShiplineError):
    """A component of the local stack cannot start (port taken, died, missing privileges)."""


class TransientError(ShiplineError):
    """A connection, timeout, 429 or 5xx: the same call may succeed when retried."""

    retryable = True


def is_retryable(exc: BaseException) -> bool:
    """Whether retrying the call that raised ``exc`` can help."""
    return bool(getattr(exc, "retryable", False))
