"""`tierbot`: every command, and the small ones (`tiers`, `schema`, `worker`, `demo`, `hooks`).

The requests and what they print of runs are in `bot.cli.experiments`, `diff` in `bot.cli.diff`, the
server and `replay` in `bot.cli.server`; exit statuses and the `--json` shape in `bot.cli.outcome`.
"""

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot import __version__, wiring
from bot.cli.ci import ci
from bot.cli.costs import costs
from bot.cli.deploy import deploy, deployments, rollback
from bot.cli.diff import diff
from bot.cli.experiments import (
    RepoOption,
    cancel,
    compare,
    console,
    err,
    pipeline,
    run,
    runs,
    show,
)
from bot.cli.gc import gc
from bot.cli.history import history
from bot.cli.init import init
from bot.cli.metavars import plain_metavars
from bot.cli.outcome import Exit, cli_output_schema
from bot.cli.server import replay, serve
from bot.errors import TierbotError
from bot.render.templates import term_lines, term_text
from bot.settings import Settings
from bot.spec import spec_schema
from bot.units import format_duration, format_size

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Run ML experiments on hardware tiers and compare their outputs against main.",
)
hooks_app = typer.Typer(no_args_is_help=True, help="Git hooks.")
app.add_typer(hooks_app, name="hooks")
for command in (run, compare, runs, show, cancel):
    app.command()(command)
app.command()(gc)
app.command()(history)
for command in (deploy, deployments, rollback):
    app.command()(command)
app.command()(costs)


@app.command()
def tiers() -> None:
    """List the hardware tiers, and why any of them cannot run in this installation."""
    offered = pipeline().tiers
    table = Table(
        "tier",
        "description",
        "cpus",
        "memory",
        "gpus",
        "max runtime",
        f"{offered.currency}/h",
        "backend",
        "runs at once",
        "who",
    )
    listed = offered.tiers
    for t in listed:
        name = f"{t.name} [dim](default)[/]" if t.default else t.name
        memory = format_size(t.memory_bytes) if t.memory_bytes else "—"
        backend = f"{t.backend} [red](unavailable)[/]" if t.unavailable else t.backend
        table.add_row(
            name,
            term_text(t.description),
            f"{t.cpus:g}",
            memory,
            str(t.gpus),
            format_duration(t.runtime_seconds),
            "—" if t.hourly_cost is None else f"{t.hourly_cost:g}",
            backend,
            str(t.concurrency),
            term_text(t.access.describe()),
        )
    console.print(table)
    # Below the table, whole: a reason wrapped inside a narrow cell is hard to read.
    for t in listed:
        if t.unavailable:
            which = "The default tier" if t.default else "Tier"
            console.print(f"[red]{which} {t.name} is unavailable:[/] {term_text(t.unavailable)}.")


@app.command()
def schema(
    output: Annotated[
        bool, typer.Option("--output", help="The schema of what `--json` prints, not of tierbot.yaml.")
    ] = False,
) -> None:
    """Print the JSON Schema of tierbot.yaml (or of the commands' `--json` output)."""
    print(json.dumps(cli_output_schema() if output else spec_schema(), indent=2))


@app.command()
def worker(
    threads: Annotated[
        int, typer.Option("--workers", "-j", min=1, help="Run workers (threads) in this process, as serve's.")
    ] = 1,
) -> None:
    """Execute queued runs until interrupted (run several, on several hosts, on one database)."""
    from bot.artifacts import refuse_host_local
    from bot.crew import Crew, exit_on_second_signal
    from bot.hardening import harden

    settings = Settings()
    for warning in harden(settings):  # before the data dir is opened or a thread or child starts
        err.print(f"[yellow]Warning:[/] {term_text(warning)}")
    pipe = wiring.pipeline(settings)
    refuse_host_local(settings, pipe.artifacts, pipe.db)  # before it settles anything
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    crew = Crew(pipe, runs=threads, doors=False)
    crew.start()
    grace = settings.shutdown_grace_seconds
    err.print(f"tierbot worker: {threads} thread(s) on {pipe.settings.db_url}; Ctrl-C to stop")
    while not stop.wait(0.5):
        pass
    exit_on_second_signal()
    err.print(f"Stopping: runs get {grace:g} s to end, then go back to the queue (again to exit now)")
    crew.stop(grace)


@app.command()
def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the example repository (its path is printed).")
    ] = False,
) -> None:
    """The whole loop on the bundled example: a repository, a branch with a change, the comparison."""
    from bot.cli.demo import run_demo

    raise typer.Exit(run_demo(pipeline(), console, keep=keep))


@hooks_app.command("install")
def hooks_install(
    repo: RepoOption = ".",
    base: Annotated[str, typer.Option("--base", help="Branch to compare against.")] = "main",
    block_on_fail: Annotated[
        bool, typer.Option("--block-on-fail", help="Refuse pushes with a failing verdict.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing pre-push hook.")] = False,
) -> None:
    """Install the pre-push hook that compares a pushed branch's outputs against main."""
    from bot.cli.hooks import install_pre_push

    path = install_pre_push(Path(repo), base=base, block_on_fail=block_on_fail, force=force)
    console.print(f"Installed {path}. Skip it for one push with [bold]TIERBOT_SKIP=1 git push[/].")


app.command()(diff)
app.command()(init)
app.command()(serve)
app.command()(replay)
app.command()(ci)


@app.callback(invoke_without_command=True)
def _version(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        console.print(f"tierbot {__version__}")
        raise typer.Exit()


def main() -> None:
    command = typer.main.get_command(app)
    plain_metavars(command)
    try:
        command(prog_name="tierbot")
    except TierbotError as exc:
        err.print(f"[red]error:[/] {term_lines(exc)}")
        raise SystemExit(Exit.USAGE) from None
