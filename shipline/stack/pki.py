"""Keys, certificates, the token file and the kubeconfig of the local cluster.

Made once with `cryptography` (a Prefect dependency) and kept under the stack's pki/
folder, so `up` after `down` reuses them and existing kubeconfigs stay valid.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shipline.stack.layout import APISERVER_PORT, StackLayout

_VALIDITY = dt.timedelta(days=3650)
# The first address of the service range: pods reach the API there (kubernetes.default.svc).
_SERVICE_IP = "10.0.0.1"


@dataclass(frozen=True)
class Pki:
    """Paths of the files the control plane reads."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    kubelet_client_cert: Path
    kubelet_client_key: Path
    sa_key: Path
    sa_pub: Path
    token_file: Path

    @classmethod
    def under(cls, folder: Path) -> Pki:
        """The files under `folder`."""
        return cls(
            ca_cert=folder / "ca.crt",
            ca_key=folder / "ca.key",
            serving_cert=folder / "apiserver.crt",
            serving_key=folder / "apiserver.key",
            kubelet_client_cert=folder / "apiserver-kubelet-client.crt",
            kubelet_client_key=folder / "apiserver-kubelet-client.key",
            sa_key=folder / "sa.key",
            sa_pub=folder / "sa.pub",
            token_file=folder / "tokens.csv",
        )


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _cert(
    subject: str,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name | None,
    issuer_key: rsa.RSAPrivateKey | None,
    *,
    ca: bool,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def ensure_pki(layout: StackLayout) -> Pki:
    """Create whatever is missing of the CA, serving cert, service-account keys and token."""
    pki = Pki.under(layout.pki)
    if not (pki.ca_cert.exists() and pki.ca_key.exists()):
        ca_key = _new_key()
        ca = _cert("shipline-ca", ca_key, None, None, ca=True)
        _write_private(pki.ca_key, _key_pem(ca_key))
        pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        pki.serving_cert.unlink(missing_ok=True)
        pki.kubelet_client_cert.unlink(missing_ok=True)
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    if not pki.serving_cert.exists():
        key = _new_key()
        sans: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address(_SERVICE_IP)),
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
        ]
        cert = _cert("kube-apiserver", key, ca.subject, ca_key, ca=False, sans=sans)  # type: ignore[arg-type]
        _write_private(pki.serving_key, _key_pem(key))
        pki.serving_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if not pki.kubelet_client_cert.exists():
        # The API server's client identity towards the kubelet (logs, exec).
        key = _new_key()
        cert = _cert("kube-apiserver-kubelet-client", key, ca.subject, ca_key, ca=False)  # type: ignore[arg-type]
        _write_private(pki.kubelet_client_key, _key_pem(key))
        pki.kubelet_client_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if not pki.sa_key.exists():
        key = _new_key()
        _write_private(pki.sa_key, _key_pem(key))
        pki.sa_pub.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    if not pki.token_file.exists():
        _write_private(
            pki.token_file, f"{secrets.token_hex(24)},admin,admin,system:masters\n".encode()
        )
    return pki


def admin_token(pki: Pki) -> str:
    """The admin bearer token (a secret: never print it)."""
    return pki.token_file.read_text().split(",", 1)[0]


def write_kubeconfig(layout: StackLayout, pki: Pki) -> Path:
    """Write the admin kubeconfig (context `shipline`, namespace `default`)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "shipline",
                "cluster": {
                    "server": f"https://127.0.0.1:{APISERVER_PORT}",
                    "certificate-authority-data": base64.b64encode(
                        pki.ca_cert.read_bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": "admin", "user": {"token": admin_token(pki)}}],
        "contexts": [
            {
                "name": "shipline",
                "context": {"cluster": "shipline", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "shipline",
    }
    _write_private(layout.kubeconfig, yaml.safe_dump(config, sort_keys=False).encode())
    return layout.kubeconfig
