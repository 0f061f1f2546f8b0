"""The terminal door: `tierbot run|compare|runs|show|cancel|tiers|schema|demo|worker|hooks`.

Like every door it only builds a RunRequest and hands it to the pipeline; rendering comes from the
report templates. Whatever it prints that a user or an experiment wrote (refs, reasons, logs, file
names, errors) goes through `term_text`/`term_lines`: rich markup escaped, control characters shown, so
no escape sequence of theirs reaches the terminal.
"""

import json
import signal
import subprocess
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from bot import __version__, wiring
from bot.cli.diff import diff
from bot.cli.progress import execute_and_watch
from bot.cli.server import replay, serve
from bot.errors import TierbotError
from bot.pipeline import Pipeline, Submission
from bot.render.templates import clip, term_lines, term_text
from bot.render.terminal import render_terminal
from bot.request import RunRequest
from bot.settings import Settings
from bot.spec import spec_schema
from bot.store import RunState
from bot.units import format_duration, format_size

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Run ML experiments on hardware tiers and compare their outputs against main.",
)
hooks_app = typer.Typer(no_args_is_help=True, help="Git hooks.")
app.add_typer(hooks_app, name="hooks")
console = Console()
err = Console(stderr=True)

EXIT_FAIL = 1  # a run failed or the verdict is fail
EXIT_ERROR = 2  # the request itself was wrong (bad spec, unknown tier or ref, ...)


def repository_option(value: str) -> str:
    """A local repository as its absolute path, symlinks resolved: the runs are stored with it, and a
    worker started in another directory must find the same repository. URLs and owner/name stay as given."""
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() else value


RepoOption = Annotated[
    str,
    typer.Option("--repo", "-C", help="Repository: path, URL or owner/name.", callback=repository_option),
]
TierOption = Annotated[str | None, typer.Option("--tier", "-t", help="Hardware tier (see `tierbot tiers`).")]
WaitOption = Annotated[bool, typer.Option("--wait/--no-wait", help="Execute here and wait, or only queue.")]


def _pipeline() -> Pipeline:
    return wiring.pipeline(Settings())


def current_ref(repository: str) -> str:
    """The checked-out branch of a local repository (its commit if detached); HEAD for remote ones."""
    if not Path(repository).is_dir():
        return "HEAD"
    for args in (["symbolic-ref", "--short", "-q", "HEAD"], ["rev-parse", "HEAD"]):
        done = subprocess.run(["git", "-C", repository, *args], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip()
    return "HEAD"


@app.command()
def run(
    ref: Annotated[
        str | None, typer.Argument(help="Branch, tag or commit (default: the current branch).")
    ] = None,
    repo: RepoOption = ".",
    tier: TierOption = None,
    wait: WaitOption = True,
) -> None:
    """Run the experiment of REF on a tier and store its outputs."""
    pipeline = _pipeline()
    submission = pipeline.submit(RunRequest(repository=repo, ref=ref or current_ref(repo), tier=tier))
    head = submission.head
    console.print(
        f"Queued run [bold]{head.id}[/]: {term_text(head.ref or '')} @ {head.short_sha} on {head.tier}"
    )
    if not wait:
        return
    (head,) = execute_and_watch(pipeline, {head.id}, console)
    _print_run_end(head)
    if head.state != RunState.succeeded:
        raise typer.Exit(EXIT_FAIL)


@app.command()
def compare(
    head: Annotated[
        str | None, typer.Argument(help="Branch, tag or commit (default: the current branch).")
    ] = None,
    base: Annotated[
        str, typer.Option("--base", "-b", help="Compare against the merge base with this.")
    ] = "main",
    repo: RepoOption = ".",
    tier: TierOption = None,
    wait: WaitOption = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Run HEAD and its baseline (or reuse a cached baseline), compare their outputs, print the report."""
    pipeline = _pipeline()
    request = RunRequest(repository=repo, ref=head or current_ref(repo), base=base, tier=tier)
    submission = pipeline.submit(request)
    out = err if as_json else console
    _print_submission(submission, out)
    if not wait:
        return
    execute_and_watch(pipeline, submission.run_ids, out)
    comparison = pipeline.comparison(submission.comparison.id)
    if comparison.state != "done":
        out.print(f"[red]No comparison:[/] {term_lines(comparison.reason or comparison.state)}")
        for run_ in (comparison.head_run, comparison.base_run):
            if run_.state != RunState.succeeded:
                _print_run_end(run_, out)
        raise typer.Exit(EXIT_FAIL)
    if as_json:
        console.print_json(json.dumps(comparison.result))
    else:
        from bot.compare import Comparison

        render_terminal(
            Comparison.model_validate(comparison.result), pipeline.report_context(comparison), console
        )
        console.print(f"\nFull report: {term_text(comparison.report_path)}")
    if comparison.verdict == "fail":
        raise typer.Exit(EXIT_FAIL)


def _print_submission(submission: Submission, out: Console) -> None:
    head, base = submission.head, submission.base
    out.print(f"Branch run [bold]{head.id}[/]: {term_text(head.ref or '')} @ {head.short_sha} on {head.tier}")
    if submission.baseline_reused:
        out.print(
            f"Baseline: [green]reused[/] run {base.id} ({term_text(base.ref or '')} @ {base.short_sha}, "
            f"same tree, spec, environment and tier) — main is not run again"
        )
    elif submission.baseline_joined:
        out.print(f"Baseline: waiting for run {base.id}, already {base.state} for the same tree")
    else:
        out.print(
            f"Baseline run [bold]{base.id}[/]: {term_text(base.ref or '')} @ {base.short_sha} (merge base)"
        )


def _print_run_end(run_, out: Console = console) -> None:
    style = "green" if run_.state == RunState.succeeded else "red"
    took = f" in {format_duration(run_.command_seconds)}" if run_.command_seconds is not None else ""
    out.print(f"Run {run_.id} [{style}]{run_.state}[/]{took}: {term_lines(run_.reason or '')}")
    if run_.state != RunState.succeeded and run_.log_tail:
        out.print("[dim]Last lines of the log:[/]")
        out.print(term_lines(run_.log_tail.rstrip()), highlight=False)
    if run_.log_path:
        out.print(f"[dim]Log: {term_text(run_.log_path)}[/]")


@app.command()
def runs(limit: Annotated[int, typer.Option("--limit", "-n")] = 20) -> None:
    """List recent runs."""
    # The whole repository, folded if it must be: its end (the repository's name) matters most.
    repository = Column("repository", overflow="fold")
    table = Table("id", "state", "role", repository, "ref", "tier", "experiment", "created", "reason")
    for r in _pipeline().recent_runs(limit):
        table.add_row(
            str(r.id),
            r.state,
            r.role,
            term_text(r.repository),
            term_text(f"{r.ref} @ {r.short_sha}"),
            r.tier,
            term_text(r.experiment),
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            term_text(clip(r.reason or "", 60)),
        )
    console.print(table)


@app.command()
def show(run_id: Annotated[int, typer.Argument(metavar="RUN")]) -> None:
    """Show one run: its state, reason, where it is reported, outputs and log tail."""
    pipeline = _pipeline()
    r = pipeline.run(run_id)
    # Its log tail and reason are stored redacted; what else it shows is redacted here when the run is
    # reported to a door (this output may well be pasted there).
    say = pipeline.redactor if r.report_to else str
    where = say(f"{r.repository} · {r.ref or ''}")
    console.print(f"[bold]Run {r.id}[/] {r.role} · {term_text(where)} @ {r.sha}")
    console.print(f"experiment {term_text(r.experiment)} · tier {r.tier} · attempts {r.attempts}")
    _print_run_end(r)
    for report in pipeline.reports.of_run(run_id):
        if report.synced_version >= report.version:
            console.print(f"reported to {report.outbox}: up to date")
        else:
            trouble = f" ({report.attempts} failed attempts: {report.error})" if report.error else ""
            console.print(f"[yellow]reported to {report.outbox}: behind{term_text(say(trouble))}[/]")
    outputs = pipeline.outputs(run_id)
    if outputs:
        table = Table("output", "size", "hash")
        for o in outputs:
            table.add_row(term_text(o.path), format_size(o.size), o.hash[:16])
        console.print(table)


@app.command()
def cancel(run_id: Annotated[int, typer.Argument(metavar="RUN")]) -> None:
    """Cancel a queued or running run."""
    r = _pipeline().queue.cancel(run_id)
    verb = "cancelled" if r.state == RunState.cancelled else "asked its worker to stop it"
    console.print(f"Run {run_id}: {verb}.")


@app.command()
def tiers() -> None:
    """List the hardware tiers, and why any of them cannot run in this installation."""
    table = Table(
        "tier",
        "description",
        "cpus",
        "memory",
        "gpus",
        "max runtime",
        "$/h",
        "backend",
        "runs at once",
        "who",
    )
    listed = _pipeline().tiers.tiers
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
            f"{t.cost_per_hour:g}",
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
def schema() -> None:
    """Print the JSON Schema of tierbot.yaml."""
    print(json.dumps(spec_schema(), indent=2))


@app.command()
def worker(threads: Annotated[int, typer.Option("--threads", "-j", min=1)] = 1) -> None:
    """Execute queued runs until interrupted (run several, on several hosts, on one database)."""
    from bot.hardening import harden
    from bot.worker import Worker

    settings = Settings()
    for warning in harden(settings):  # before the data dir is opened or a thread or child starts
        err.print(f"[yellow]Warning:[/] {term_text(warning)}")
    pipeline = wiring.pipeline(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pool = [
        threading.Thread(target=Worker(pipeline).run_forever, args=(stop,), name=f"worker-{i}")
        for i in range(threads)
    ]
    for t in pool:
        t.start()
    err.print(f"tierbot worker: {threads} thread(s) on {pipeline.settings.db_url}; Ctrl-C to stop")
    while not stop.wait(0.5):
        pass
    for t in pool:
        t.join()


@app.command()
def demo() -> None:
    """The whole loop on the bundled example: a repository, a branch with a change, the comparison."""
    from bot.cli.demo import run_demo

    raise typer.Exit(run_demo(_pipeline(), console))


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
app.command()(serve)
app.command()(replay)


@app.callback(invoke_without_command=True)
def _version(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        console.print(f"tierbot {__version__}")
        raise typer.Exit()


def main() -> None:
    try:
        app()
    except TierbotError as exc:
        err.print(f"[red]error:[/] {term_lines(exc)}")
        raise SystemExit(EXIT_ERROR) from None
