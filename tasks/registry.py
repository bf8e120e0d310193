"""The one seam to a registry's HTTP API v2 (the OCI distribution API), over httpx.

Two questions and one action are all the build step needs: which manifest digest a tag
points at (HEAD), and copying a manifest to another tag (GET then PUT, the bytes
unchanged, so the digest stays). Credentials come from the docker config, read by the
docker SDK's own helpers (`auths`, `credsStore`, `credHelpers`, $DOCKER_CONFIG), and are
used for the registry's token or basic authentication; they never reach a log or an
error message. Failures are classified here: a refused connection, a timeout, 429 and
5xx are `TransientError`; 401/403 are `RegistryAuthError`.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import re
from typing import Any

import httpx

from tasks.errors import InputError, ShiplineError, TransientError
from tasks.image_ref import DEFAULT_REGISTRY, ImageRef

__all__ = ["MANIFEST_TYPES", "Registry", "RegistryAuthError", "registry_credentials"]

_LOG = logging.getLogger(__name__)
# Docker Hub's API is not served on the name images use.
_API_HOSTS = {DEFAULT_REGISTRY: "registry-1.docker.io"}
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryAuthError(InputError):
    """The registry refused the credentials, or none are configured (401/403)."""


def registry_credentials(registry: str) -> tuple[str, str] | None:
    """(username, password or identity token) for `registry` from the docker config."""
    from docker import auth
    from docker.errors import DockerException

    try:
        config = auth.load_config().resolve_authconfig(registry)
    except DockerException as exc:
        # A broken credential helper: say which registry, never the helper's output.
        raise RegistryAuthError(
            f"cannot read the credentials for {registry} from the docker config "
            f"({type(exc).__name__}); check `credsStore`/`credHelpers` in config.json"
        ) from exc
    if not config:
        return None
    lowered = {key.lower(): value for key, value in config.items()}
    if lowered.get("identitytoken"):
        return "<token>", lowered["identitytoken"]
    if lowered.get("username") or lowered.get("password"):
        return lowered.get("username") or "", lowered.get("password") or ""
    return None


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Registry:
    """A registry's HTTP API v2 for one host (`127.0.0.1:5000`, `docker.io`, ...).

    `scheme` defaults to http for loopback hosts (docker treats them as insecure
    registries too) and https for every other host.
    """

    def __init__(
        self,
        host: str,
        *,
        scheme: str | None = None,
        credentials: tuple[str, str] | bool | None = True,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.host = host
        api_host = _API_HOSTS.get(host, host)
        self.base_url = f"{scheme or ('http' if _is_loopback(host) else 'https')}://{api_host}"
        # True: read them from the docker config, lazily (only on a 401).
        self._credentials = credentials
        self._tokens: dict[str, str] = {}
        self._client = httpx.Client(timeout=timeout, transport=transport)

    @classmethod
    def for_image(cls, ref: ImageRef, **kwargs: Any) -> Registry:
        """The registry that holds `ref`."""
        return cls(ref.registry, **kwargs)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def manifest_digest(self, ref: ImageRef) -> str | None:
        """The digest `ref`'s tag (or digest) points at, None when the registry lacks it."""
        reference = ref.digest or ref.tag or "latest"
        response = self._send(
            "HEAD",
            ref,
            f"/v2/{ref.repository}/manifests/{reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            action=f"asking {self.host} for the manifest of {ref}",
            missing_ok=True,
        )
        if response is None:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:
            # Registries that omit the header: HEAD cannot tell, GET and hash the bytes.
            got = self._get_manifest(ref, reference)
            return got[2] if got else None
        return digest

    def tag(self, ref: ImageRef, new_tag: str) -> str:
        """Point `new_tag` (same repository) at `ref`'s manifest; returns the digest.

        The manifest's bytes are copied unchanged, so no layer moves and the digest stays.
        """
        target = ref.with_tag(new_tag)
        got = self._get_manifest(ref, ref.digest or ref.tag or "latest")
        if got is None:
            raise ShiplineError(
                f"cannot tag {target}: {ref} is not in the registry {self.host} (deleted "
                "meanwhile?); run the build again"
            )
        body, media_type, digest = got
        self._send(
            "PUT",
            target,
            f"/v2/{ref.repository}/manifests/{new_tag}",
            headers={"Content-Type": media_type},
            content=body,
            action=f"tagging {ref} as {target}",
            push=True,
        )
        return digest

    def _get_manifest(self, ref: ImageRef, reference: str) -> tuple[bytes, str, str] | None:
        import hashlib

        response = self._send(
            "GET",
            ref,
            f"/v2/{ref.repository}/manifests/{reference}",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            action=f"reading the manifest of {ref} from {self.host}",
            missing_ok=True,
        )
        if response is None:
            return None
        body = response.content
        media_type = response.headers.get("Content-Type", MANIFEST_TYPES[-1]).split(";")[0]
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        return body, media_type, response.headers.get("Docker-Content-Digest") or digest

    def _send(
        self,
        method: str,
        ref: ImageRef,
        path: str,
        *,
        action: str,
        headers: dict[str, str],
        content: bytes | None = None,
        missing_ok: bool = False,
        push: bool = False,
    ) -> httpx.Response | None:
        """Send one request, answering a 401 challenge once; errors classified."""
        scope = f"repository:{ref.repository}:{'pull,push' if push else 'pull'}"
        response = self._request(method, path, headers, content, scope, action)
        if response.status_code == 401:
            authorization = self._answer_challenge(response, scope, action)
            if authorization:
                headers = {**headers, "Authorization": authorization}
                response = self._request(method, path, headers, content, scope, action)
        if response.status_code == 404 and missing_ok:
            return None
        self._raise_for_status(response, action)
        return response

    def _request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        content: bytes | None,
        scope: str,
        action: str,
    ) -> httpx.Response:
        if scope in self._tokens and "Authorization" not in headers:
            headers = {**headers, "Authorization": self._tokens[scope]}
        try:
            return self._client.request(
                method, self.base_url + path, headers=headers, content=content
            )
        except httpx.TransportError as exc:
            raise TransientError(
                f"{action}: cannot reach the registry {self.base_url} ({type(exc).__name__}: "
                f"{exc}); check that it runs and the host and port are right"
            ) from exc

    def _creds(self) -> tuple[str, str] | None:
        if self._credentials is True:
            self._credentials = registry_credentials(self.host)
        return self._credentials or None

    def _answer_challenge(self, response: httpx.Response, scope: str, action: str) -> str | None:
        """The Authorization value that answers the 401's challenge, None without one."""
        challenge = response.headers.get("WWW-Authenticate", "")
        kind, _, params_text = challenge.partition(" ")
        credentials = self._creds()
        if kind.lower() == "basic":
            if credentials is None:
                return None
            return _basic(*credentials)
        if kind.lower() != "bearer":
            return None
        params = dict(_CHALLENGE_PARAM.findall(params_text))
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        try:
            token_response = self._client.get(
                params.get("realm", ""),
                params={key: value for key, value in query.items() if value},
                auth=httpx.BasicAuth(*credentials) if credentials else None,
            )
        except (httpx.TransportError, httpx.UnsupportedProtocol) as exc:
            raise TransientError(
                f"{action}: cannot reach the registry's token service ({type(exc).__name__}); "
                "retrying may help"
            ) from exc
        self._raise_for_status(token_response, f"{action} (getting a token)")
        data = token_response.json()
        token = data.get("token") or data.get("access_token")
        if not token:
            return None
        self._tokens[scope] = f"Bearer {token}"
        return self._tokens[scope]

    def _raise_for_status(self, response: httpx.Response, action: str) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = _error_detail(response)
        if status in (401, 403):
            has_credentials = self._creds() is not None
            raise RegistryAuthError(
                f"{action}: the registry {self.host} refused "
                f"{'the credentials' if has_credentials else 'the request without credentials'}"
                f" ({status}{': ' + detail if detail else ''}); log in with "
                f"`docker login {self.host}` or check the `auths` entry for {self.host} in "
                "the docker config ($DOCKER_CONFIG/config.json or ~/.docker/config.json)"
            )
        if status == 429 or status >= 500:
            raise TransientError(
                f"{action}: the registry {self.host} answered {status}"
                f"{': ' + detail if detail else ''}; retrying may help"
            )
        raise ShiplineError(
            f"{action}: the registry {self.host} answered {status}{': ' + detail if detail else ''}"
        )


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _error_detail(response: httpx.Response) -> str:
    """The registry's `errors[].message` (distribution spec), else a short body."""
    if response.request.method == "HEAD":
        return response.reason_phrase
    try:
        errors = response.json().get("errors") or []
        text = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
    except (ValueError, AttributeError):
        text = response.text[:300]
    return text or response.reason_phrase
