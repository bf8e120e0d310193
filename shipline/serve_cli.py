"""`shipline serve`: run the prefect.yaml deployments from this process."""

from __future__ import annotations

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
) -> None:
    """Create or update the deploy deployments on $PREFECT_API_URL and execute their runs."""
    from shipline.run_cli import use_stack_defaults

    use_stack_defaults()
    from deployments.serve import serve as serve_deployments

    serve_deployments(prefect_yaml, limit=limit)
