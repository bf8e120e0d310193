"""`shipline stack up | down | status | env`.

`up` is idempotent: every component that already runs (its pid file names a live
process) is left alone, everything missing is installed, built or started, in
dependency order. A failure stops what this call started, so nothing half-started stays.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from rich.console import Console

from shipline.stack import (
    components,
    engine,
    images,
    kube_binaries,
    packages,
    pki,
    postgres,
    processes,
)
from shipline.stack.layout import NODE_NAME, POSTGRES_PORT, REGISTRY_ADDR, StackLayout
from tasks.errors import StackError

# Reverse of start order; `down` walks it.
COMPONENTS = (
    "dockerd",
    "registry",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "postgres",
    "prefect-server",
)
NODE_READY_TIMEOUT = 120.0


@dataclass
class StackState:
    """What `up` set up, as `status` and `env` report it."""

    kubeconfig: str
    registry: str
    prefect_api_url: str
    external_cluster: bool = False
    external_engine: bool = False

    def save(self, layout: StackLayout) -> None:
        """Write the state file."""
        layout.state_file.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, layout: StackLayout) -> StackState | None:
        """Read the state file, if `up` ever ran."""
        try:
            return cls(**json.loads(layout.state_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None


def _registry_answers(addr: str) -> bool:
    try:
        return httpx.get(f"http://{addr}/v2/", timeout=3.0).status_code in (200, 401)
    except httpx.HTTPError:
        return False


def _cluster_answers(kubeconfig: str) -> bool:
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(config_file=kubeconfig)
        client.VersionApi(api).get_code(_request_timeout=5)
        return True
    except Exception:
        return False


def prefect_answers(api_url: str) -> bool:
    """Whether a Prefect server answers its health check at `api_url`."""
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=3.0).status_code == 200
    except httpx.HTTPError:
        return False


def _node_ready(kubeconfig: Path) -> bool:
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    node = api.read_node(NODE_NAME, _request_timeout=5)
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def _node_registered(kubeconfig: Path):
    def probe() -> bool:
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        api.read_node(NODE_NAME, _request_timeout=3)
        return True

    return probe


def _wait_node_ready(kubeconfig: Path, console: Console) -> float:
    started = time.monotonic()
    with console.status(f"waiting for node {NODE_NAME} to be Ready"):
        while time.monotonic() - started < NODE_READY_TIMEOUT:
            try:
                if _node_ready(kubeconfig):
                    return time.monotonic() - started
            except Exception:
                pass
            time.sleep(0.5)
    raise StackError(
        f"node {NODE_NAME} did not become Ready within {NODE_READY_TIMEOUT:.0f} s; see "
        f"`kubectl describe node {NODE_NAME}` and the kubelet log"
    )


def _use_external(layout: StackLayout, console: Console) -> bool:
    """KUBECONFIG and SHIPLINE_REGISTRY name a reachable cluster and registry: start nothing."""
    kubeconfig = os.environ.get("KUBECONFIG")
    registry = os.environ.get("SHIPLINE_REGISTRY")
    if not (kubeconfig and registry):
        return False
    if Path(kubeconfig).resolve() == layout.kubeconfig.resolve():
        return False  # that is our own stack's kubeconfig
    if not (_cluster_answers(kubeconfig) and _registry_answers(registry)):
        return False
    api_url = os.environ.get("PREFECT_API_URL", "")
    StackState(
        kubeconfig=kubeconfig,
        registry=registry,
        prefect_api_url=api_url if api_url and prefect_answers(api_url) else "",
        external_cluster=True,
        external_engine=True,
    ).save(layout)
    console.print(
        f"[green]✓[/green] using the cluster of KUBECONFIG={kubeconfig} and the registry "
        f"{registry}; nothing started"
    )
    return True


def require_root(euid: int) -> None:
    """Refuse to build a local stack without root, saying what is needed instead."""
    if euid != 0:
        raise StackError(
            "the local stack needs root (to install Debian packages and run dockerd, etcd, "
            "the Kubernetes control plane and a kubelet); run `shipline stack up` as root, or "
            "export KUBECONFIG and SHIPLINE_REGISTRY naming a reachable cluster and registry "
            "and run it again (it then starts nothing)"
        )


def up(layout: StackLayout, console: Console) -> StackState:
    """Bring the local stack up (see the module docstring)."""
    layout.ensure()
    if _use_external(layout, console):
        state = StackState.load(layout)
        assert state is not None
        return state
    require_root(os.geteuid())
    external_engine = engine.engine_answers() and processes.running_pid(layout, "dockerd") is None
    wanted = ["docker-registry", "etcd-server", "busybox-static", "iproute2", "gcc", "libc6-dev"]
    wanted += ["postgresql"]  # the Prefect server's database
    if not external_engine:
        wanted.append("docker.io")
    if not shutil.which("kubectl"):
        wanted.append("kubectl")  # Debian 13 serves it; Debian 12 images already have one
    packages.ensure(wanted, console)
    bins = kube_binaries.ensure_binaries(layout, console)

    launch = processes.Launch(layout, console.print)
    try:
        _start_all(layout, bins, external_engine, launch, console)
    except BaseException:
        launch.undo()
        raise
    state = StackState(
        kubeconfig=str(layout.kubeconfig),
        registry=REGISTRY_ADDR,
        prefect_api_url=components.PREFECT_API_URL,
        external_engine=external_engine,
    )
    state.save(layout)
    return state


def _start_all(
    layout: StackLayout,
    bins: Path,
    external_engine: bool,
    launch: processes.Launch,
    console: Console,
) -> None:
    if external_engine:
        console.print("[dim]· using the Docker engine that already answers[/dim]")
    else:
        engine.forwarding_off()
        with console.status("starting dockerd"):
            launch.ensure(engine.dockerd(layout))
    import docker

    client = docker.from_env(timeout=300)
    try:
        images.ensure_images(layout, client, bins / kube_binaries.PAUSE_BINARY, console)
    finally:
        client.close()
    keys = pki.ensure_pki(layout)
    pki.write_kubeconfig(layout, keys)
    for daemon in (
        components.registry(layout),
        components.etcd(layout),
        components.kube_apiserver(layout, bins, keys),
        components.kube_controller_manager(layout, bins, keys),
        components.kube_scheduler(layout, bins),
        components.kubelet(layout, bins, keys, _node_registered(layout.kubeconfig)),
    ):
        with console.status(f"starting {daemon.name}"):
            launch.ensure(daemon)
    waited = _wait_node_ready(layout.kubeconfig, console)
    console.print(f"[green]✓[/green] node {NODE_NAME} Ready ({waited:.1f} s)")
    if postgres.ensure_cluster(layout):
        console.print("[green]✓[/green] created the PostgreSQL cluster for Prefect")
    with console.status("starting PostgreSQL"):
        launch.ensure(postgres.daemon(layout))
    postgres.ensure_database()
    with console.status("starting the Prefect server"):
        launch.ensure(components.prefect_server(layout))


def _remove_pod_containers() -> int:
    """Remove the containers the kubelet made (pods); they would outlive the kubelet."""
    import docker

    try:
        client = docker.from_env(timeout=30)
        gone = 0
        for container in client.containers.list(
            all=True, filters={"label": "io.kubernetes.docker.type"}
        ):
            container.remove(force=True)
            gone += 1
        client.close()
        return gone
    except Exception:
        return 0


def _unmount_under(root: Path) -> int:
    """Unmount what the kubelet mounted under `root` (its bind-mounted root, pod volumes)."""
    prefix = str(root.resolve()).rstrip("/") + "/"
    with open("/proc/self/mounts") as mounts:
        points = {line.split()[1] for line in mounts if line.split()[1].startswith(prefix)}
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True)
    return len(points)


def down(layout: StackLayout, console: Console, purge: bool = False) -> list[str]:
    """Stop what `up` started (pid files only); with `purge`, delete data and caches."""
    stopped: list[str] = []
    for name in reversed(COMPONENTS):
        if name == "dockerd" and "kubelet" in stopped:
            removed = _remove_pod_containers()
            if removed:
                console.print(f"[green]✓[/green] removed {removed} pod containers")
        if processes.stop(layout, name):
            stopped.append(name)
            console.print(f"[green]✓[/green] stopped {name}")
    if "kubelet" in stopped or purge:
        _unmount_under(layout.root)
    if purge:
        shutil.rmtree(layout.root, ignore_errors=True)
        shutil.rmtree(layout.cache, ignore_errors=True)
        console.print(f"[green]✓[/green] deleted {layout.root} and {layout.cache}")
    return stopped


def status(layout: StackLayout) -> list[tuple[str, str, str]]:
    """(component, state, detail) rows."""
    state = StackState.load(layout)
    rows: list[tuple[str, str, str]] = []
    if state and state.external_cluster:
        rows.append(("cluster", "external", state.kubeconfig))
        rows.append(("registry", "external", state.registry))
    else:
        where = {
            "dockerd": "unix:///var/run/docker.sock",
            "registry": f"http://{REGISTRY_ADDR}",
            "etcd": f"http://127.0.0.1:{components.ETCD_CLIENT_PORT}",
            "kube-apiserver": "https://127.0.0.1:6443",
            "kube-controller-manager": f"https://127.0.0.1:{components.CONTROLLER_MANAGER_PORT}",
            "kube-scheduler": f"https://127.0.0.1:{components.SCHEDULER_PORT}",
            "kubelet": f"node {NODE_NAME}, pods on the docker bridge",
            "postgres": f"127.0.0.1:{POSTGRES_PORT}, Prefect's database",
            "prefect-server": components.PREFECT_API_URL.removesuffix("/api"),
        }
        for name in COMPONENTS:
            pid = processes.running_pid(layout, name)
            if pid:
                rows.append((name, "running", f"pid {pid}, {where[name]}"))
            elif name == "dockerd" and engine.engine_answers():
                rows.append((name, "external", "an engine not started by shipline answers"))
            else:
                rows.append((name, "stopped", f"log: {layout.log_file(name)}"))
    return rows


def env_lines(layout: StackLayout) -> list[str]:
    """The `export` lines for KUBECONFIG, SHIPLINE_REGISTRY and PREFECT_API_URL."""
    import shlex

    state = StackState.load(layout) or StackState(
        kubeconfig=str(layout.kubeconfig),
        registry=REGISTRY_ADDR,
        prefect_api_url=components.PREFECT_API_URL,
    )
    lines = [
        f"export KUBECONFIG={shlex.quote(state.kubeconfig)}",
        f"export SHIPLINE_REGISTRY={shlex.quote(state.registry)}",
    ]
    if state.prefect_api_url:
        lines.append(f"export PREFECT_API_URL={shlex.quote(state.prefect_api_url)}")
    return lines
