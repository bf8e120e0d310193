"""`shipline serve`: run the prefect.yaml deployments from this process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def serve(
    prefect_yaml: Annotated[
        Path, typer.Option("--prefect-yaml", help="The file that defines the deployments.")
    ] = Path("prefect.yaml"),
    limit: Annotated[
        int | None, typer.Option(help="At most this many runs at once in this process.")
    ] = None,
    repository_path: Annotated[
        list[str] | None,
        typer.Option(
            "--repository-path",
            help=(
                "OWNER/NAME=PATH: runs whose `repository` is OWNER/NAME (as the webhook "
                "sends it) deploy from a worktree of the local clone at PATH. Repeatable."
            ),
        ),
    ] = None,
) -> None:
    """Create or update the deploy deployments on $PREFECT_API_URL and execute their runs."""
    from shipline.run_cli import use_stack_defaults

    if repository_path:
        _map_repositories(repository_path)
    use_stack_defaults()
    from deployments.serve import serve as serve_deployments

    serve_deployments(prefect_yaml, limit=limit)


def _map_repositories(entries: list[str]) -> None:
    """Check OWNER/NAME=PATH entries; export them for the runs this process executes."""
    from flows.checkout import REPOSITORY_PATHS_ENV, local_repository, parse_repository_paths

    absolute = []
    for entry in entries:
        name, sep, path = entry.partition("=")
        absolute.append(f"{name}{sep}{Path(path).resolve()}" if sep else entry)
    value = os.pathsep.join(filter(None, [os.environ.get(REPOSITORY_PATHS_ENV), *absolute]))
    mapping = parse_repository_paths(value)  # raises InputError naming a bad entry
    for name in mapping:
        local_repository(name, {REPOSITORY_PATHS_ENV: value})  # raises when not a git repo
    # Runs execute in child processes of this one, which inherit the environment.
    os.environ[REPOSITORY_PATHS_ENV] = value
