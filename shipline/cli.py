"""The `shipline` command.

Commands import what they need inside their bodies: `--help`, `plan` and `render` must
start without importing Prefect, the kubernetes client or the docker SDK.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from shipline import run_cli, serve_cli, webhook_cli
from shipline.stack.cli import app as stack_app
from tasks.errors import ShiplineError

app = typer.Typer(
    help="Run an okteto-pipeline.yaml as a Prefect flow: a DAG of build, apply, set-image, "
    "restart and rollout-status tasks with retries, caching, fast failure and rollback.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    add_completion=False,
)
app.add_typer(stack_app, name="stack")
app.command()(run_cli.run)
app.command()(run_cli.demo)
app.command()(serve_cli.serve)
app.command()(webhook_cli.webhook)


def _fail(exc: ShiplineError) -> typer.Exit:
    """Print a shipline error as one clear message (no traceback) and pick the exit code."""
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    for note in getattr(exc, "__notes__", ()):  # e.g. the failed flow run's page
        typer.echo(note, err=True)
    return typer.Exit(exc.exit_code)


@app.command()
def render(
    files: Annotated[list[Path], typer.Argument(help="Manifest files, in the order given.")],
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse unset variables (names file, line, name).")
    ] = False,
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help="Replace only these names (spaces or commas; bare, $NAME or ${NAME}), "
            "like envsubst's SHELL-FORMAT.",
        ),
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option("--secret", help="A variable whose value is secret (repeatable)."),
    ] = None,
    mask_secrets: Annotated[
        bool, typer.Option("--mask-secrets", help="Print *** for the --secret variables.")
    ] = False,
) -> None:
    """Print each file with variables substituted exactly as GNU envsubst would.

    The output is byte for byte what `for f in FILE...; do envsubst < "$f"; done` prints
    (with --only: `envsubst 'SHELL-FORMAT'`). Every file is read and substituted before
    anything is printed, so a strict failure or an unreadable file prints nothing.
    """
    import os

    from tasks.envsubst import parse_allowlist, substitute
    from tasks.errors import InputError, ManifestError, SubstitutionError

    allowlist = None
    if only is not None:
        try:
            allowlist = parse_allowlist(only)
        except InputError as exc:
            raise InputError(f"--only: {exc}") from exc

    environ = dict(os.environ)
    if mask_secrets:
        from tasks.redact import MASK

        environ.update({name: MASK for name in secret or [] if name in environ})
    rendered: list[bytes] = []
    unset_messages: list[str] = []
    for path in files:
        try:
            template = path.read_bytes()
        except OSError as exc:
            raise ManifestError(
                f"{path}: cannot read the manifest ({exc.strerror or exc}); "
                "check that the path exists, is a file and is readable"
            ) from exc
        try:
            rendered.append(
                substitute(template, environ, only=allowlist, strict=strict, source=str(path))
            )
        except SubstitutionError as exc:
            # Keep going: one error listing the unset names of every file.
            unset_messages.append(str(exc))
    if unset_messages:
        raise SubstitutionError("\n".join(unset_messages))

    out = sys.stdout.buffer
    for chunk in rendered:
        out.write(chunk)
    out.flush()


@app.command()
def plan(
    pipeline: Annotated[Path, typer.Argument(help="okteto-pipeline.yaml or Okteto manifest.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the DAG as JSON on stdout.")
    ] = False,
    commit: Annotated[
        str | None,
        typer.Option(
            "--commit",
            help="Value of OKTETO_GIT_COMMIT (default: `git rev-parse HEAD` of the "
            "pipeline's folder).",
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace", "-n", help="The run's namespace (default: the kubeconfig context's)."
        ),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            help="Registry for okteto.dev/ images (default: $SHIPLINE_REGISTRY, else "
            "127.0.0.1:5000).",
        ),
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option("--var", help="NAME=VALUE added to the variables (repeatable)."),
    ] = None,
) -> None:
    """Print the DAG shipline would run for a pipeline file (no cluster, no Prefect).

    Each step shows the objects it changes and the steps it waits for; manifests are read
    to know which objects an apply writes.
    """
    import json

    from flows.commit import parse_variables, run_options
    from flows.pipeline import read_pipeline
    from flows.plan_view import objects_loader, plan_json, plan_table
    from flows.planner import plan_pipeline
    from tasks.globbing import use_environment_collation

    use_environment_collation()
    options = run_options(
        pipeline,
        commit=commit,
        namespace=namespace,
        registry=registry,
        variables=parse_variables(var or []),
    )
    parsed = read_pipeline(pipeline, options)
    dag = plan_pipeline(parsed, objects_loader(parsed))
    if as_json:
        sys.stdout.write(json.dumps(plan_json(dag), indent=2) + "\n")
        return
    from rich.console import Console

    title = f"{parsed.path} (namespace {parsed.namespace}, commit {options.commit})"
    Console().print(plan_table(dag, title=title))


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except ShiplineError as exc:
        raise SystemExit(_fail(exc).exit_code) from None


if __name__ == "__main__":
    sys.exit(main())
