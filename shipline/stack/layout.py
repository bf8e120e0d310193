"""Where the local stack keeps its state, logs and caches.

The state lives in one fixed place on the machine (not in the checkout or the
virtualenv) so that any `shipline` on the machine finds the running stack.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STACK_DIR = Path("/var/lib/shipline")
DEFAULT_CACHE_DIR = Path("/var/cache/shipline")

REGISTRY_ADDR = "127.0.0.1:5000"
APISERVER_PORT = 6443
PREFECT_PORT = 4200
# Not 5432: that is the port of a PostgreSQL the machine may run for itself.
POSTGRES_PORT = 5433
# The kubelet refuses a loopback --node-ip; naming the node `localhost` makes its Hostname
# address resolve to 127.0.0.1, so the API server never dials another address.
NODE_NAME = "localhost"
# 198.18.0.0/15 is reserved for benchmarking (RFC 2544): neither private nor public, so
# nothing a pod sends can reach another machine (see docs/local-cluster.md, "Networks").
POD_BRIDGE_CIDR = "198.18.0.1/24"
# Virtual (no kube-proxy: nothing routes there); a /16 so hundreds of Services fit.
SERVICE_CIDR = "10.0.0.0/16"


@dataclass(frozen=True)
class StackLayout:
    """Every path the stack reads or writes, derived from two roots."""

    root: Path
    cache: Path

    @classmethod
    def from_env(cls) -> StackLayout:
        """The layout named by SHIPLINE_STACK_DIR / SHIPLINE_CACHE_DIR, else the defaults."""
        root = Path(os.environ.get("SHIPLINE_STACK_DIR") or DEFAULT_STACK_DIR)
        cache = Path(os.environ.get("SHIPLINE_CACHE_DIR") or DEFAULT_CACHE_DIR)
        return cls(root=root, cache=cache)

    @property
    def run(self) -> Path:
        """Pid files of the processes `up` started."""
        return self.root / "run"

    @property
    def logs(self) -> Path:
        """One log file per component."""
        return self.root / "log"

    @property
    def data(self) -> Path:
        """Data of etcd, the registry, the kubelet, PostgreSQL, the Prefect server, dockerd."""
        return self.root / "data"

    @property
    def pki(self) -> Path:
        """CA, serving certificate, service-account keys, the token file."""
        return self.root / "pki"

    @property
    def bin(self) -> Path:
        """Small scripts the stack writes (the runc OOM-score wrapper)."""
        return self.root / "bin"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig `shipline stack env` exports."""
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        """Endpoints of the running stack (ours or external), read by `status` and `env`."""
        return self.root / "stack.json"

    def pid_file(self, name: str) -> Path:
        """Pid file of one component."""
        return self.run / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        """Log file of one component."""
        return self.logs / f"{name}.log"

    def ensure(self) -> None:
        """Create the folders (mode 0700 for the keys)."""
        for path in (self.run, self.logs, self.data, self.bin, self.cache):
            path.mkdir(parents=True, exist_ok=True)
        self.pki.mkdir(parents=True, exist_ok=True, mode=0o700)
