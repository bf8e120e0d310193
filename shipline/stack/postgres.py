"""PostgreSQL for the stack's Prefect server: the cluster, its daemon and the database.

Prefect's SQLite backend serialises every write behind one file lock; under a burst of
webhook deliveries its own background services (marking unexecuted runs Late) and the
API's writes collided and every flow run creation failed with "database is locked" until
the server was restarted (seen here). Prefect recommends PostgreSQL for anything
concurrent, so the stack runs one, on 127.0.0.1 only, with its data under the stack
folder. It trusts connections from 127.0.0.1: it holds nothing but the local stack's runs.
"""

from __future__ import annotations

import glob
import os
import pwd
import subprocess
from pathlib import Path

from shipline.stack.layout import POSTGRES_PORT, StackLayout
from shipline.stack.processes import Daemon
from tasks.errors import StackError

USER = "postgres"  # the system user Debian's package creates; PostgreSQL refuses root
ROLE = "shipline"
DATABASE = "prefect"
CONNECTION_URL = f"postgresql+asyncpg://{ROLE}@127.0.0.1:{POSTGRES_PORT}/{DATABASE}"


def bin_dir() -> Path:
    """The newest installed server's binaries (Debian 12 ships 15, Debian 13 ships 17)."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")),
        key=lambda folder: int(folder.parent.name) if folder.parent.name.isdigit() else 0,
    )
    if not found:
        raise StackError(
            "no PostgreSQL server under /usr/lib/postgresql: install Debian's `postgresql` "
            "package (`shipline stack up` does, as root)"
        )
    return found[-1]


def data_dir(layout: StackLayout) -> Path:
    """The cluster's folder, under the stack's data."""
    return layout.data / "postgres"


def ensure_cluster(layout: StackLayout) -> bool:
    """Create the cluster once (initdb, owned by the postgres user); True when created."""
    folder = data_dir(layout)
    if (folder / "PG_VERSION").is_file():
        return False
    account = pwd.getpwnam(USER)
    # The postgres user must be able to pass through the (root-owned) stack folders.
    for parent in (layout.root, layout.data):
        parent.chmod(parent.stat().st_mode | 0o011)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chown(folder, account.pw_uid, account.pw_gid)
    _run_as_postgres(
        [
            str(bin_dir() / "initdb"),
            f"--pgdata={folder}",
            f"--username={ROLE}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ],
        "initdb",
    )
    return True


def daemon(layout: StackLayout) -> Daemon:
    """The PostgreSQL server on 127.0.0.1:5433, TCP only (no Unix socket to place)."""
    return Daemon(
        name="postgres",
        argv=[
            str(bin_dir() / "postgres"),
            "-D",
            str(data_dir(layout)),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={POSTGRES_PORT}",
            "-c",
            "unix_socket_directories=",
        ],
        ready=_accepts_connections,
        ports=(POSTGRES_PORT,),
        ready_timeout=60,
        user=USER,
    )


def ensure_database() -> None:
    """Create Prefect's database when missing (the server is up)."""
    exists = _psql("SELECT 1 FROM pg_database WHERE datname = 'prefect'", "postgres")
    if exists.strip() != "1":
        _psql(f"CREATE DATABASE {DATABASE}", "postgres")


def _accepts_connections() -> bool:
    probe = subprocess.run(
        [str(bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(POSTGRES_PORT), "-q"],
        capture_output=True,
        timeout=10,
    )
    return probe.returncode == 0


def _psql(sql: str, database: str) -> str:
    done = subprocess.run(
        [
            str(bin_dir() / "psql"),
            *("-h", "127.0.0.1", "-p", str(POSTGRES_PORT), "-U", ROLE, "-d", database),
            *("-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise StackError(f"PostgreSQL refused `{sql}`: {done.stderr.strip()}")
    return done.stdout


def _run_as_postgres(argv: list[str], what: str) -> None:
    account = pwd.getpwnam(USER)
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=300,
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        cwd="/",
    )
    if done.returncode != 0:
        raise StackError(f"{what} failed ({done.returncode}):\n{done.stderr[-2000:]}")
