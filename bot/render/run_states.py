"""How a run that has not ended is described to people, the same in every door. Pure."""

from datetime import datetime

from bot.store import ComparisonRecord, Run, RunState
from bot.store.models import REFUSED_NEEDS_PERSON, REFUSED_OVER_BUDGET
from bot.units import format_duration

PHASES = {
    "starting": "Starting",
    "checkout": "Checking out the code",
    "building": "Building the environment",
    "running": "Running",
    "collecting": "Collecting the outputs",
}


# Why an earlier run's outputs stand for a new one (`bot.reuse`): the run's identity for reuse.
REUSE_BASIS = "same tree, spec, environment and tier"


def reused_run(run_id: int, why: bool = False) -> str:
    """How a run that did not run again names the run whose outcome it took: `reused run 9`, and with
    `why`, `reused run 9 (same tree, spec, environment and tier)`."""
    return f"reused run {run_id} ({REUSE_BASIS})" if why else f"reused run {run_id}"


def ref_label(ref: str | None, sha: str) -> str:
    """`feature-x @ 1a2b3c4`, or just `1a2b3c4` when the ref is the commit itself (a PR's head)."""
    return sha[:7] if not ref or sha.startswith(ref) or ref.startswith(sha[:7]) else f"{ref} @ {sha[:7]}"


def approval_needed(run: Run) -> str:
    return (
        f"This pull request comes from a fork, so nothing runs until someone with write access to the "
        f"repository has read the change and comments `/run approve`. An approval holds for commit "
        f"{run.sha[:7]} only: every new push needs a new one."
    )


def progress(run: Run, now: datetime, position: int) -> tuple[str, str]:
    """(title, what the reader must do) of a run that has not ended; each door shows a running run's last
    log line its own way, escaped for it."""
    if run.state == RunState.waiting:
        return "Waiting for approval", approval_needed(run)
    if run.state == RunState.queued:
        return queued(run, position), ""
    elapsed = format_duration((now - run.started_at).total_seconds()) if run.started_at else ""
    doing = PHASES.get(run.phase, f"Running ({run.phase})")
    return f"{doing} for {elapsed} on tier {run.tier}", ""


def queued(run: Run, position: int) -> str:
    """`Queued: #2 on tier cpu`, or for a run that joined the run of its key in flight (`bot.reuse`),
    `Waiting for run 7 (same tree, spec, environment and tier)`."""
    if run.reused_run_id is not None:
        return f"Waiting for run {run.reused_run_id} ({REUSE_BASIS})"
    return f"Queued: #{position} on tier {run.tier}"


def waiting_for_baseline(comparison: ComparisonRecord) -> str:
    return f"Comparing: waiting for the baseline run {comparison.base_run_id}"


def ended_without_outputs(run: Run) -> str:
    """The title of a run that failed, timed out or was cancelled."""
    return f"The experiment {run.state}: {run.reason}"


def refusal(run: Run) -> tuple[str, str]:
    """(title, what to do) of a request that was refused before anything ran; the reason says why."""
    first = (run.reason or "").splitlines()[0] if run.reason else "the request was refused"
    if run.phase == REFUSED_NEEDS_PERSON:
        return (
            f"Not started: {first}",
            f"Someone who may use tier {run.tier} can run it with `/run experiment on {run.tier}`, "
            f"or the experiment can ask for a tier you may use.",
        )
    if run.phase == REFUSED_OVER_BUDGET:
        return (
            f"Not started: {first}",
            "Nothing runs until the budget allows it (raised, or next month): then a new push or "
            "`/run experiment` asks again.",
        )
    return f"Not started: {first}", "Fix this and push again: this check and comment follow the new commit."
