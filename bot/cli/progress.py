"""Live progress of runs in the terminal, read from the database (so it works whoever runs them). A
run's last log line is the experiment's to write: it is shown through `term_text`, never obeyed."""

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table

from bot.errors import TierbotError
from bot.pipeline import Pipeline
from bot.render.run_states import queued
from bot.render.templates import clip, term_text
from bot.store import Run, RunState
from bot.units import format_duration
from bot.worker import Worker

_STATE_STYLE = {
    RunState.succeeded: "green",
    RunState.failed: "red",
    RunState.timed_out: "red",
    RunState.cancelled: "yellow",
}


def execute_and_watch(
    pipeline: Pipeline, run_ids: set[int], console: Console, work: bool = True, cancel: set[int] | None = None
) -> list[Run]:
    """Show the runs until they end. With `work`, a worker in this process executes them meanwhile
    (other workers on the same database may take some first; that is fine). Ctrl-C cancels the runs
    of `cancel` (default: all of them) and waits for them to stop; a second Ctrl-C stops waiting."""
    stop = threading.Event()
    thread = None
    if work:
        worker = Worker(pipeline, only=run_ids)
        thread = threading.Thread(target=worker.run_forever, args=(stop,), daemon=True, name="cli-worker")
        thread.start()
    try:
        with _ctrl_c() as pressed:
            runs = _watch(pipeline, run_ids, console, pressed)
            if runs is not None:
                return runs
            ours = sorted(run_ids if cancel is None else cancel)
            which = ", ".join(map(str, ours))
            console.print(f"[yellow]Interrupted: cancelling run(s) {which}[/] (Ctrl-C again to stop waiting)")
            for run_id in ours:
                with contextlib.suppress(TierbotError):  # it ended meanwhile
                    pipeline.queue.cancel(run_id)
            return _watch(pipeline, set(ours), console)
    finally:
        stop.set()
        if thread:
            thread.join()


@contextlib.contextmanager
def _ctrl_c() -> Iterator[threading.Event]:
    """The first Ctrl-C as an event the watch checks between its reads, the second as KeyboardInterrupt.
    Raised wherever the main thread is, the first would often land inside a database transaction (the
    watch reads ten times a second), and SQLite's lock then stays with a connection nobody closes:
    every other writer of this process (the check run's publisher) waits it out and fails."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # only it receives signals
        yield pressed
        return

    def interrupted(_signum, _frame) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def _watch(
    pipeline: Pipeline, run_ids: set[int], console: Console, interrupted: threading.Event | None = None
) -> list[Run] | None:
    """The runs once they have all ended; None as soon as `interrupted` is set."""
    with Live(console=console, refresh_per_second=8, transient=not console.is_terminal) as live:
        while not (interrupted and interrupted.is_set()):
            runs = [pipeline.run(i) for i in sorted(run_ids)]
            live.update(_table(pipeline, runs))
            if all(r.run_state.terminal for r in runs):
                return runs
            time.sleep(0.1)  # a database read; quick enough to not delay the end of a run
    return None


def _table(pipeline: Pipeline, runs: list[Run]) -> Table:
    table = Table.grid(padding=(0, 2))
    for run in runs:
        state = run.run_state
        if state.terminal:
            icon = f"[{_STATE_STYLE[state]}]{'✔' if state == RunState.succeeded else '✘'}[/]"
            status = f"[{_STATE_STYLE[state]}]{state.value}[/]"
        else:
            icon = Spinner("dots")
            status = _live_status(pipeline, run)
        detail = term_text(clip((run.last_log_line or "") if not state.terminal else (run.reason or ""), 100))
        table.add_row(
            icon,
            f"run {run.id}",
            f"{run.role}",
            term_text(f"{run.ref} @ {run.short_sha}"),
            status,
            f"[dim]{detail}[/]",
        )
    return table


def _live_status(pipeline: Pipeline, run: Run) -> str:
    if run.state == RunState.queued:
        return queued(run, pipeline.queue.position(run.id))
    elapsed = ""
    if run.started_at:
        elapsed = " " + format_duration(time.time() - run.started_at.timestamp())
    return f"{run.phase}{elapsed}"
