"""The Docker engine of the stack: use one that answers, else start dockerd.

Two traps of these machines (docs/local-cluster.md) shape the options:
- Pods must get an IP or the kubelet re-creates their sandboxes forever, and nothing a
  pod sends may leave the machine: the bridge takes 198.18.0.1/24 (the benchmarking
  range), with iptables, masquerading and forwarding off.
- Without CAP_SYS_RESOURCE runc cannot apply the kubelet's `oomScoreAdj: -998` and every
  pod sandbox fails; a runtime wrapper raises negative scores to 0. It is installed only
  when the probe shows the need.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from shipline.stack.layout import POD_BRIDGE_CIDR, StackLayout
from shipline.stack.processes import Daemon

DOCKER_SOCKET = Path("/var/run/docker.sock")
WRAPPER_RUNTIME = "shipline-runc"

_WRAPPER = """\
#!/bin/sh
# Written by `shipline stack up`. runc cannot lower a process's OOM score without
# CAP_SYS_RESOURCE, and the kubelet asks for -998 on every pod sandbox: raise negative
# process.oomScoreAdj values in the bundle's config.json to 0, then run the real runc.
bundle=""
prev=""
for arg in "$@"; do
  case "$prev" in --bundle|-b) bundle="$arg" ;; esac
  case "$arg" in --bundle=*) bundle="${arg#--bundle=}" ;; esac
  prev="$arg"
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  sed -i 's/"oomScoreAdj":-[0-9]*/"oomScoreAdj":0/' "$bundle/config.json"
fi
exec RUNC "$@"
"""


def engine_answers(timeout: float = 3.0) -> bool:
    """Whether a Docker engine answers on the default socket."""
    import docker

    try:
        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def oom_score_lowering_allowed() -> bool:
    """Whether this machine lets a process lower its OOM score (what runc does for pods)."""
    # os.write, not a buffered file: a buffered write fails only at close, silently.
    probe = "import os; os.write(os.open('/proc/self/oom_score_adj', os.O_WRONLY), b'-998')"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def _write_wrapper(layout: StackLayout) -> Path:
    runc = shutil.which("runc") or "/usr/sbin/runc"
    path = layout.bin / "runc-oom-wrapper"
    path.write_text(_WRAPPER.replace("RUNC", runc))
    path.chmod(0o755)
    return path


def forwarding_off() -> None:
    """Keep IPv4 forwarding off so pod traffic cannot be routed off the machine."""
    path = Path("/proc/sys/net/ipv4/ip_forward")
    try:
        if path.read_text().strip() != "0":
            path.write_text("0\n")
    except OSError:
        pass


# A pull of an image the engine lacks (say a pod's `busybox`) would go to Docker Hub: send
# every registry request that is not for this machine to a closed local port instead, so
# nothing leaves the machine and the pull fails at once.
NO_PULLS_FROM_OUTSIDE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
}


def dockerd(layout: StackLayout) -> Daemon:
    """The dockerd daemon spec, with the OOM wrapper only when the probe needs it."""
    argv = [
        shutil.which("dockerd") or "/usr/sbin/dockerd",
        f"--host=unix://{DOCKER_SOCKET}",
        f"--data-root={layout.data / 'docker'}",
        "--exec-root=/run/shipline-docker",
        f"--pidfile={layout.run / 'dockerd.own.pid'}",
        f"--bip={POD_BRIDGE_CIDR}",
        "--iptables=false",
        "--ip-masq=false",
        "--ip-forward=false",
        "--userland-proxy=false",
        "--shutdown-timeout=2",
    ]
    if not oom_score_lowering_allowed():
        wrapper = _write_wrapper(layout)
        argv += [
            f"--add-runtime={WRAPPER_RUNTIME}={wrapper}",
            f"--default-runtime={WRAPPER_RUNTIME}",
        ]
    return Daemon(
        name="dockerd",
        argv=argv,
        ready=engine_answers,
        ready_timeout=120,
        env=NO_PULLS_FROM_OUTSIDE,
    )
