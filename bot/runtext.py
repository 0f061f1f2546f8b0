"""How a run that has not ended is described to people, the same in every door. Pure."""

from datetime import datetime

from bot.store import Run, RunState
from bot.units import format_duration

PHASES = {
    "starting": "Starting",
    "checkout": "Checking out the code",
    "building": "Building the environment",
    "running": "Running",
    "collecting": "Collecting the outputs",
}


def approval_needed(run: Run) -> str:
    return (
        f"This pull request comes from a fork, so nothing runs until someone with write access to the "
        f"repository has read the change and comments `/run approve`. An approval holds for commit "
        f"{run.sha[:7]} only: every new push needs a new one."
    )


def progress(run: Run, now: datetime, position: int) -> tuple[str, str]:
    """(title, detail) of a run that has not ended."""
    if run.state == RunState.waiting:
        return "Waiting for approval", approval_needed(run)
    if run.state == RunState.queued:
        return f"Queued: #{position} on tier {run.tier}", ""
    elapsed = format_duration((now - run.started_at).total_seconds()) if run.started_at else ""
    detail = f"`{run.last_log_line.strip()[:200]}`" if run.last_log_line and run.last_log_line.strip() else ""
    doing = PHASES.get(run.phase, f"Running ({run.phase})")
    return f"{doing} for {elapsed} on tier {run.tier}", detail
