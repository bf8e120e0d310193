"""Names Kubernetes accepts, checked before anything is sent (pure)."""

from __future__ import annotations

import re

from tasks.errors import InputError

__all__ = ["check_namespace"]

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_LABEL_MAX = 63


def check_namespace(
    namespace: str,
    *,
    source: str = "namespace",
    advice: str = "choose another namespace, e.g. 'my-app'",
) -> str:
    """``namespace`` when it is a valid Kubernetes namespace name, else :class:`InputError`.

    Kubernetes requires an RFC 1123 label; ``source`` says where the value came from
    (the run's option, the kubeconfig's context) and ``advice`` what to do, for the
    message.
    """
    if len(namespace) <= _DNS1123_LABEL_MAX and _DNS1123_LABEL.fullmatch(namespace):
        return namespace
    length = f" (it has {len(namespace)})" if len(namespace) > _DNS1123_LABEL_MAX else ""
    raise InputError(
        f"{source} {namespace!r} is not a valid Kubernetes namespace name: it must be an "
        "RFC 1123 label, lower-case letters, digits and '-', starting and ending with a "
        f"letter or digit, at most {_DNS1123_LABEL_MAX} characters{length}; {advice}"
    )
