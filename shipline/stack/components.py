"""The stack's daemons: command lines (from docs/local-cluster.md) and readiness probes.

All of them listen on 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import httpx

from shipline.stack import postgres
from shipline.stack.layout import (
    APISERVER_PORT,
    NODE_NAME,
    PREFECT_PORT,
    REGISTRY_ADDR,
    SERVICE_CIDR,
    StackLayout,
)
from shipline.stack.pki import Pki, admin_token
from shipline.stack.processes import Daemon

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259
KUBELET_PORT = 10250
PREFECT_API_URL = f"http://127.0.0.1:{PREFECT_PORT}/api"


def _get_ok(url: str, **kwargs: object) -> bool:
    return httpx.get(url, timeout=2.0, **kwargs).status_code == 200  # type: ignore[arg-type]


def registry(layout: StackLayout) -> Daemon:
    """Distribution registry v2 on 127.0.0.1:5000, filesystem storage under data/."""
    config = layout.root / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {layout.data / 'registry'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {REGISTRY_ADDR}\n"
    )
    return Daemon(
        name="registry",
        argv=[shutil.which("docker-registry") or "docker-registry", "serve", str(config)],
        ready=lambda: _get_ok(f"http://{REGISTRY_ADDR}/v2/"),
        ports=(int(REGISTRY_ADDR.rsplit(":", 1)[1]),),
        ready_timeout=30,
    )


def etcd(layout: StackLayout) -> Daemon:
    """Etcd 3.4 on 127.0.0.1:2379."""
    url = f"http://127.0.0.1:{ETCD_CLIENT_PORT}"
    return Daemon(
        name="etcd",
        argv=[
            shutil.which("etcd") or "etcd",
            f"--data-dir={layout.data / 'etcd'}",
            f"--listen-client-urls={url}",
            f"--advertise-client-urls={url}",
            f"--listen-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PEER_PORT}",
            f"--initial-cluster=default=http://127.0.0.1:{ETCD_PEER_PORT}",
            "--log-level=warn",
            "--logger=zap",
        ],
        ready=lambda: _get_ok(f"{url}/health"),
        ports=(ETCD_CLIENT_PORT, ETCD_PEER_PORT),
        ready_timeout=60,
    )


def kube_apiserver(layout: StackLayout, bins: Path, pki: Pki) -> Daemon:
    """kube-apiserver on https://127.0.0.1:6443 with token auth and RBAC."""
    token = admin_token(pki)
    return Daemon(
        name="kube-apiserver",
        argv=[
            str(bins / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{ETCD_CLIENT_PORT}",
            f"--secure-port={APISERVER_PORT}",
            "--insecure-port=0",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--token-auth-file={pki.token_file}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-key-file={pki.sa_pub}",
            f"--service-account-signing-key-file={pki.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--kubelet-client-certificate={pki.kubelet_client_cert}",
            f"--kubelet-client-key={pki.kubelet_client_key}",
            # The node is named `localhost` (see layout.NODE_NAME): the API server reaches
            # the kubelet (logs, exec) on 127.0.0.1, never on another address.
            "--kubelet-preferred-address-types=Hostname",
            "--allow-privileged=true",
            "--profiling=false",
        ],
        ready=lambda: _get_ok(
            f"https://127.0.0.1:{APISERVER_PORT}/readyz",
            headers={"Authorization": f"Bearer {token}"},
            verify=str(pki.ca_cert),
        ),
        ports=(APISERVER_PORT,),
        ready_timeout=90,
    )


def kube_controller_manager(layout: StackLayout, bins: Path, pki: Pki) -> Daemon:
    """kube-controller-manager (deployments, replica sets, service-account tokens...)."""
    return Daemon(
        name="kube-controller-manager",
        argv=[
            str(bins / "kube-controller-manager"),
            f"--kubeconfig={layout.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--port=0",
            f"--service-account-private-key-file={pki.sa_key}",
            f"--root-ca-file={pki.ca_cert}",
            "--use-service-account-credentials=false",
            "--profiling=false",
        ],
        ready=lambda: _get_ok(f"https://127.0.0.1:{CONTROLLER_MANAGER_PORT}/healthz", verify=False),
        ports=(CONTROLLER_MANAGER_PORT,),
        ready_timeout=60,
    )


def kube_scheduler(layout: StackLayout, bins: Path) -> Daemon:
    """kube-scheduler."""
    return Daemon(
        name="kube-scheduler",
        argv=[
            str(bins / "kube-scheduler"),
            f"--kubeconfig={layout.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--port=0",
            "--profiling=false",
        ],
        ready=lambda: _get_ok(f"https://127.0.0.1:{SCHEDULER_PORT}/healthz", verify=False),
        ports=(SCHEDULER_PORT,),
        ready_timeout=60,
    )


def kubelet(layout: StackLayout, bins: Path, pki: Pki, node_registered) -> Daemon:
    """The kubelet with dockershim, pods on the docker bridge (198.18.0.0/24)."""
    from shipline.stack.images import PAUSE_IMAGE

    return Daemon(
        name="kubelet",
        argv=[
            str(bins / "kubelet"),
            f"--kubeconfig={layout.kubeconfig}",
            "--container-runtime=docker",
            "--docker-endpoint=unix:///var/run/docker.sock",
            f"--pod-infra-container-image={PAUSE_IMAGE}",
            "--cgroup-driver=cgroupfs",
            "--fail-swap-on=false",
            "--cgroups-per-qos=false",
            "--enforce-node-allocatable=",
            "--eviction-hard=",
            "--image-gc-high-threshold=100",
            "--address=127.0.0.1",
            "--read-only-port=0",
            "--healthz-port=0",
            "--anonymous-auth=false",
            f"--client-ca-file={pki.ca_cert}",
            "--authorization-mode=AlwaysAllow",
            f"--hostname-override={NODE_NAME}",
            f"--root-dir={layout.data / 'kubelet'}",
            "--resolv-conf=",
            "--v=1",
        ],
        ready=node_registered,
        ports=(KUBELET_PORT,),
        ready_timeout=90,
    )


def prefect_server(layout: StackLayout) -> Daemon:
    """A Prefect server on 127.0.0.1:4200, its database in the stack's PostgreSQL."""
    home = layout.data / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    return Daemon(
        name="prefect-server",
        argv=[
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(PREFECT_PORT),
        ],
        env={
            "PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": postgres.CONNECTION_URL,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_API_URL": PREFECT_API_URL,
            "PREFECT_API_URL": PREFECT_API_URL,
            "PREFECT_LOGGING_SERVER_LEVEL": "WARNING",
        },
        ready=lambda: _get_ok(f"{PREFECT_API_URL}/health"),
        ports=(PREFECT_PORT,),
        # 8-38 s seen on a loaded 2-core machine (docs/local-cluster.md).
        ready_timeout=180,
    )
