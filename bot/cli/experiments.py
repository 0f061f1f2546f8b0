"""`tierbot run|compare|runs|show|cancel`: the terminal's requests, and what it prints of runs.

Like every door it only builds a RunRequest and hands it to the pipeline; rendering comes from the
report templates. Whatever it prints that a user or an experiment wrote (refs, reasons, logs, file
names, errors) goes through `term_text`/`term_lines`: rich markup escaped, control characters shown, so
no escape sequence of theirs reaches the terminal. With `--json` the one document of `bot.cli.outcome`
goes to standard output and everything else to standard error; the exit status is the same either way.
"""

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from bot import wiring
from bot.cli.local_git import current_ref, default_base, require_repository, snapshot, uncommitted
from bot.cli.outcome import (
    CliOutput,
    Exit,
    comparison_doc,
    comparison_exit,
    run_doc,
    run_exit,
    shown_run_doc,
)
from bot.cli.progress import execute_and_watch
from bot.compare import Comparison
from bot.costs import run_cost
from bot.errors import TierbotError
from bot.pipeline import Pipeline, Submission
from bot.render.run_states import reused_run
from bot.render.templates import clip, template, term_lines, term_text
from bot.render.terminal import render_terminal
from bot.request import RunRequest
from bot.settings import Settings
from bot.store import ComparisonRecord, Run, RunState
from bot.units import format_duration, format_size

# Piped (to a file, grep, a CI log) nothing is wrapped at rich's default 80 columns; COLUMNS still rules.
PIPED_WIDTH = 240
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH)
err = Console(stderr=True, width=None if sys.stderr.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH)


def repository_option(value: str) -> str:
    """A local repository as its absolute path, symlinks resolved: the runs are stored with it, and a
    worker started in another directory must find the same repository. URLs and owner/name stay as given."""
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() else value


def repository_filter(value: str | None) -> str | None:
    return None if value is None else repository_option(value)


RepoOption = Annotated[
    str,
    typer.Option("--repo", "-C", help="Repository: path, URL or owner/name.", callback=repository_option),
]
TierOption = Annotated[str | None, typer.Option("--tier", "-t", help="Hardware tier (see `tierbot tiers`).")]
WaitOption = Annotated[bool, typer.Option("--wait/--no-wait", help="Execute here and wait, or only queue.")]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document (`tierbot schema --output`) on stdout.")
]
FreshOption = Annotated[
    bool,
    typer.Option(
        "--fresh", help="Run again, even when a run of the same tree, spec, environment and tier succeeded."
    ),
]
UncommittedOption = Annotated[
    bool,
    typer.Option(
        "--include-uncommitted",
        help="Run the working tree as it is (a private snapshot commit, never pushed), not HEAD.",
    ),
]
RefArgument = Annotated[
    str | None, typer.Argument(metavar="REF", help="Branch, tag or commit (default: the current branch).")
]


def pipeline() -> Pipeline:
    return wiring.pipeline(Settings())


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C ends the command with the interrupted status, not click's generic failure."""
    try:
        yield
    except KeyboardInterrupt:
        err.print("[yellow]Interrupted.[/]")
        raise typer.Exit(Exit.INTERRUPTED) from None


def run(
    ref: RefArgument = None,
    repo: RepoOption = ".",
    tier: TierOption = None,
    wait: WaitOption = True,
    as_json: JsonOption = False,
    fresh: FreshOption = False,
    include_uncommitted: UncommittedOption = False,
) -> None:
    """Run the experiment of REF on a tier and store its outputs."""
    out = err if as_json else console
    with interruptible():
        require_repository(repo)
        pipe = pipeline()
        ref = _working_ref(repo, ref, include_uncommitted, out)
        request = RunRequest(repository=repo, ref=ref, tier=tier, fresh=fresh)
        head = execute_run(pipe, request, out, wait)
    status = run_exit(head) if wait else Exit.OK
    if as_json:
        print_json(CliOutput(command="run", exit_code=status, runs=[run_doc(head)]))
    raise typer.Exit(status)


def execute_run(pipe: Pipeline, request: RunRequest, out: Console, wait: bool = True) -> Run:
    """Submit a run (no comparison) and say so; with `wait`, execute it here and say how it ended."""
    head = pipe.submit(request).head
    said = f"{term_text(head.ref or '')} @ {head.short_sha} on {head.tier}"
    if head.reused_run_id is None:
        out.print(f"Queued run [bold]{head.id}[/]: {said}{spent(head, pipe.tiers.currency)}")
    else:  # its end line says which run and why
        out.print(f"Run [bold]{head.id}[/]: {said}, not run again (--fresh runs it)")
    if wait:
        (head,) = execute_and_watch(pipe, {head.id}, out)
        print_run_end(head, pipe.tiers.currency, out)
    return head


def spent(run_: Run, currency: str) -> str:
    """` · estimated $1.20` before the run ends, ` · cost $0.42` once it has (`cost.j2`'s words); ""
    on a free tier."""
    cost = run_cost(run_, currency)
    return f" · {term_text(template('cost.j2', 'term').module.cost(cost))}" if cost else ""


def compare(
    head: RefArgument = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            "-b",
            metavar="REF",
            help="Compare against the merge base with REF (default: origin's default branch, else main or "
            "master).",
        ),
    ] = None,
    repo: RepoOption = ".",
    tier: TierOption = None,
    wait: WaitOption = True,
    as_json: JsonOption = False,
    fresh: FreshOption = False,
    include_uncommitted: UncommittedOption = False,
) -> None:
    """Run REF and its baseline (or reuse a cached baseline), compare their outputs, print the report."""
    out = err if as_json else console
    with interruptible():
        require_repository(repo)
        pipe = pipeline()
        ref, base = _working_ref(repo, head, include_uncommitted, out), base or default_base(repo)
        request = RunRequest(repository=repo, ref=ref, base=base, tier=tier, fresh=fresh)
        submission = pipe.submit(request)
        print_submission(submission, out, pipe.tiers.currency)
        if wait:
            execute_and_watch(pipe, submission.run_ids, out, cancel=own_runs(submission))
    record = pipe.comparison(submission.comparison.id)
    status = comparison_exit(record) if wait else Exit.OK
    show_comparison(pipe, record, submission.baseline_reused, status, as_json, waited=wait)
    raise typer.Exit(status)


def show_comparison(
    pipe: Pipeline,
    record: ComparisonRecord,
    baseline_reused: bool,
    status: Exit,
    as_json: bool,
    waited: bool = True,
    command: str = "compare",
) -> None:
    """The comparison as the terminal shows it (or its `--json` document); without one, why not and how
    the runs that failed ended."""
    out = err if as_json else console
    if as_json:
        print_json(_compare_output(pipe, record, baseline_reused, status, command))
    elif record.state == "done":
        result = Comparison.model_validate(record.result)
        render_terminal(result, pipe.report_context(record), console)
        console.print(f"\nFull report: {term_text(record.report_path)}")
    if record.state != "done" and waited:
        out.print(f"[red]No comparison:[/] {term_lines(record.reason or record.state)}")
        for run_ in (record.head_run, record.base_run):
            if run_.state != RunState.succeeded:
                print_run_end(run_, pipe.tiers.currency, out)


def _working_ref(repo: str, ref: str | None, include_uncommitted: bool, out: Console) -> str:
    """The ref to run: the one given, else the checked-out branch, else (with --include-uncommitted) a
    snapshot of the working tree. What a run of a commit does not see is said, never silently left out."""
    if ref is not None:
        if include_uncommitted:
            raise TierbotError("--include-uncommitted runs the working tree as it is: it takes no REF.")
        return ref
    left_out = uncommitted(repo)
    if include_uncommitted and left_out:
        sha = snapshot(repo)
        out.print(
            f"Running the working tree as it is: {len(left_out)} uncommitted file(s), snapshot {sha[:7]}"
        )
        return sha
    if left_out:
        shown = ", ".join(term_text(name) for name in left_out[:5])
        more = f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
        out.print(
            f"[yellow]Not part of this run (uncommitted):[/] {shown}{more}. Commit them, or pass "
            "--include-uncommitted."
        )
    return current_ref(repo)


def own_runs(submission: Submission) -> set[int]:
    """What Ctrl-C cancels: the runs this command queued, not a baseline it joined or reused."""
    shared = submission.baseline_reused or submission.baseline_joined
    return {submission.head.id} | (set() if shared else {submission.base.id})


def _report_place(pipe: Pipeline, record: ComparisonRecord) -> tuple[str | None, str | None]:
    """The comparison's report file, and its signed link when `tierbot serve` is reachable."""
    url = pipe.report_context(record).report_url if pipe.settings.public_url else None
    return record.report_path, url


def _compare_output(
    pipe: Pipeline, record: ComparisonRecord, reused: bool, status: Exit, command: str
) -> CliOutput:
    _, url = _report_place(pipe, record)
    runs = [run_doc(record.head_run), run_doc(record.base_run, reused=reused)]
    return CliOutput(command=command, exit_code=status, runs=runs, comparison=comparison_doc(record, url))


def print_json(document: CliOutput) -> None:
    print(document.model_dump_json(indent=2))


def print_submission(submission: Submission, out: Console, currency: str) -> None:
    """What the request runs and reuses, with each run's estimate (given the tiers' currency)."""
    head, base = submission.head, submission.base
    branch = f"Branch run [bold]{head.id}[/]: {term_text(head.ref or '')} @ {head.short_sha} on {head.tier}"
    if submission.head_reused:
        again = "not run again (--fresh runs it)"
        out.print(f"{branch}, [green]{reused_run(head.reused_run_id, why=True)}[/] — {again}")
    else:
        out.print(f"{branch}{spent(head, currency)}")
    if submission.baseline_reused:
        out.print(
            f"Baseline: [green]reused[/] run {base.id} ({term_text(base.ref or '')} @ {base.short_sha}, "
            f"same tree, spec, environment and tier) — main is not run again"
        )
    elif submission.baseline_joined:
        out.print(f"Baseline: waiting for run {base.id}, already {base.state} for the same tree")
    else:
        said = f"{term_text(base.ref or '')} @ {base.short_sha} (merge base){spent(base, currency)}"
        out.print(f"Baseline run [bold]{base.id}[/]: {said}")


def print_run_end(run_: Run, currency: str, out: Console = console, tail: bool = False) -> None:
    """How the run ended (and what it cost, given the tiers' currency), its log's last lines when it
    failed (or with `tail`), and where its log is."""
    style = "green" if run_.state == RunState.succeeded else "red"
    took = f" in {format_duration(run_.command_seconds)}" if run_.command_seconds is not None else ""
    said = f"{term_lines(run_.reason or '')}{spent(run_, currency)}"
    out.print(f"Run {run_.id} [{style}]{run_.state}[/]{took}: {said}")
    if (tail or run_.state != RunState.succeeded) and run_.log_tail:
        out.print("[dim]Last lines of the log:[/]")
        out.print(term_lines(run_.log_tail.rstrip()), highlight=False)
    if run_.log_path:
        out.print(f"[dim]Log: {term_text(run_.log_path)}[/]")


def runs(
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="How many, newest first.")] = 20,
    repo: Annotated[
        str | None,
        typer.Option("--repo", "-C", help="Only this repository's.", callback=repository_filter),
    ] = None,
    branch: Annotated[
        str | None, typer.Option("--branch", "-b", metavar="REF", help="Only runs of REF.")
    ] = None,
    state: Annotated[
        RunState | None,
        typer.Option("--state", "-s", help=f"Only runs in this state: {', '.join(RunState)}."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List recent runs, newest first: all of them, or a repository's, a branch's, in a state."""
    listed = pipeline().recent_runs(limit, repository=repo, ref=branch, state=state.value if state else None)
    if as_json:
        print_json(CliOutput(command="runs", exit_code=Exit.OK, runs=[run_doc(r) for r in listed]))
        return
    # The whole repository, folded if it must be: its end (the repository's name) matters most.
    repository = Column("repository", overflow="fold")
    table = Table("id", "state", "role", repository, "ref", "tier", "experiment", "created", "reason")
    for r in listed:
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


def show(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="The run's id (see `tierbot runs`).")],
    as_json: JsonOption = False,
) -> None:
    """Show one run: its state and reason, its log's last lines, where it is reported (and whether each
    is up to date), the comparison it is the branch of (verdict, report) and its outputs."""
    pipe = pipeline()
    r = pipe.run(run_id)
    outputs, reports, record = pipe.outputs(run_id), pipe.reports.of_run(run_id), pipe.comparison_for(run_id)
    # Its log tail and reason are stored redacted; what else it shows is redacted here when the run is
    # reported to a door (this output may well be pasted there).
    say = pipe.redactor if r.report_to else str
    path, url = _report_place(pipe, record) if record is not None else (None, None)
    if as_json:
        compared = comparison_doc(record, url) if record is not None else None
        runs = [shown_run_doc(r, outputs, reports)]
        document = CliOutput(command="show", exit_code=Exit.OK, runs=runs, comparison=compared)
        print(say(document.model_dump_json(indent=2)))
        return
    where = say(f"{r.repository} · {r.ref or ''}")
    console.print(f"[bold]Run {r.id}[/] {r.role} · {term_text(where)} @ {r.sha}")
    console.print(f"experiment {term_text(r.experiment)} · tier {r.tier} · attempts {r.attempts}")
    print_run_end(r, pipe.tiers.currency, tail=True)
    if record is not None:
        said = (record.verdict or record.state).upper() if record.state == "done" else record.state
        place = term_text(url or path or "not written yet")
        console.print(f"comparison {record.id} against run {record.base_run_id}: {said} · report {place}")
    for report in reports:
        if report.synced_version >= report.version:
            console.print(f"reported to {report.outbox}: up to date")
        else:
            trouble = f" ({report.attempts} failed attempts: {report.error})" if report.error else ""
            console.print(f"[yellow]reported to {report.outbox}: behind{term_text(say(trouble))}[/]")
    if outputs:
        table = Table("output", "size", "hash")
        for o in outputs:
            table.add_row(term_text(o.path), format_size(o.size), o.hash[:16])
        console.print(table)


def cancel(run_id: Annotated[int, typer.Argument(metavar="RUN", help="The run's id.")]) -> None:
    """Cancel a queued or running run."""
    r = pipeline().queue.cancel(run_id)
    verb = "cancelled" if r.state == RunState.cancelled else "asked its worker to stop it"
    console.print(f"Run {run_id}: {verb}.")
