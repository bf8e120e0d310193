"""`shipline stack ...`: the local Docker engine, registry, Kubernetes and Prefect server."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="The local stack: Docker engine, registry on 127.0.0.1:5000, Kubernetes 1.20 "
    "(built from Debian's sources) and a Prefect server on 127.0.0.1:4200 with its "
    "PostgreSQL on 127.0.0.1:5433.",
    no_args_is_help=True,
)


def _layout():
    from shipline.stack.layout import StackLayout

    return StackLayout.from_env()


@app.command()
def up(
    browser: Annotated[
        bool,
        typer.Option(
            "--browser",
            help="Also install Debian's chromium, the headless browser the Prefect UI test drives.",
        ),
    ] = False,
) -> None:
    """Install, build and start whatever is missing; wait until the node is Ready."""
    from shipline.stack import lifecycle, packages

    console = Console(stderr=True)
    started = time.monotonic()
    if browser:
        packages.ensure(["chromium"], console)
    state = lifecycle.up(_layout(), console)
    console.print(
        f"[bold green]stack up[/bold green] in {time.monotonic() - started:.1f} s: "
        f"kubeconfig {state.kubeconfig}, registry {state.registry}, "
        f"Prefect {state.prefect_api_url or '(none)'}\n"
        'use it from a shell with: eval "$(shipline stack env)"'
    )


@app.command()
def down(
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete the stack's data and build caches.")
    ] = False,
) -> None:
    """Stop what `up` started (nothing else); keep data and caches unless --purge."""
    from shipline.stack import lifecycle

    console = Console(stderr=True)
    started = time.monotonic()
    stopped = lifecycle.down(_layout(), console, purge=purge)
    console.print(
        f"stopped {len(stopped)} component(s) in {time.monotonic() - started:.1f} s"
        if stopped
        else "nothing of the stack was running"
    )


@app.command()
def status() -> None:
    """Say what runs and where."""
    from shipline.stack import lifecycle

    table = Table("component", "state", "where")
    for name, state, detail in lifecycle.status(_layout()):
        color = {"running": "green", "external": "cyan"}.get(state, "red")
        table.add_row(name, f"[{color}]{state}[/{color}]", detail)
    Console().print(table)


@app.command()
def env() -> None:
    """Print `export` lines for KUBECONFIG, SHIPLINE_REGISTRY, PREFECT_API_URL (for eval)."""
    from shipline.stack import lifecycle

    for line in lifecycle.env_lines(_layout()):
        typer.echo(line)
