"""`tierbot gc`: remove the outputs, logs, reports, worktrees and environments no recent run or baseline
needs (the rules are `bot.gc`'s); `--dry-run` prints the plan and removes nothing."""

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from bot import gc as collector
from bot.backends.venv import environment_key
from bot.cli.experiments import console, err, pipeline
from bot.cli.outcome import Exit
from bot.errors import TierbotError
from bot.pipeline import Pipeline
from bot.render.templates import term_text
from bot.spec import Spec
from bot.store.models import Deployment, Run, RunState, utcnow
from bot.units import format_size, parse_duration, parse_size


def gc(
    older_than: Annotated[
        str,
        typer.Option("--older-than", metavar="AGE", help="Keep what runs ended within AGE need (30d, 12h)."),
    ] = "30d",
    max_size: Annotated[
        str | None,
        typer.Option(
            "--max-size",
            metavar="SIZE",
            help="Then remove more, oldest first, until the data dir is under SIZE (20GB); never what an "
            "unfinished run needs.",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would go; remove nothing.")] = False,
) -> None:
    """Remove outputs, logs, reports, worktrees and environments no recent run or baseline needs."""
    try:
        age = parse_duration(older_than)
        size = parse_size(max_size) if max_size is not None else None
    except ValueError as exc:
        err.print(f"[red]Error:[/] {exc}; e.g. --older-than 30d --max-size 20GB")
        raise typer.Exit(Exit.USAGE) from None
    pipe = pipeline()
    policy = collector.Policy(older_than=timedelta(seconds=age), now=utcnow(), max_size=size)
    with pipe.db.session() as s:
        plan = collector.plan(s, pipe.settings, policy, needed_environments(pipe))
        if dry_run:
            _print_plan(plan, "Would remove")
            console.print(
                f"Dry run: nothing removed; {format_size(plan.size)} would be freed "
                f"(the data dir holds {format_size(plan.data_size)})."
            )
            return
        freed = collector.apply(s, plan)
        s.commit()
    _print_plan(plan, "Removed")
    console.print(f"Freed {format_size(freed)}; the data dir holds {format_size(plan.data_size - freed)}.")


def needed_environments(pipe: Pipeline) -> set[str] | None:
    """The environment keys unfinished runs will use, and those deployed model servers run in (live, or
    kept to roll back to); None when one cannot be known (every environment is then kept)."""
    unfinished = [RunState.waiting, RunState.queued, RunState.running]
    with pipe.db.session() as s:
        runs = list(s.scalars(select(Run).where(Run.state.in_(unfinished), Run.trusted.is_(True))))
        deployed = [d.instance.get("python") for d in s.scalars(select(Deployment))]
    envs = pipe.settings.envs_dir
    keys = {Path(p).relative_to(envs).parts[0] for p in deployed if p and Path(p).is_relative_to(envs)}
    for run in runs:
        requirements = Spec.model_validate(run.spec).environment.requirements
        if not requirements:
            continue
        try:
            text = pipe.code.read(run.repository, run.sha, requirements)
        except TierbotError:
            return None
        if text is not None:
            keys.add(environment_key(text.encode()))
    return keys


def _print_plan(plan: collector.Plan, title: str) -> None:
    if not plan.items:
        console.print("Nothing to remove.")
        return
    table = Table("what", "size", "why", title=f"{title}: {len(plan.items)} items")
    for item in plan.items:
        what = item.kind if item.kind == "outputs" else f"{item.kind} {item.paths[0].name}"
        table.add_row(term_text(what), format_size(item.size), term_text(item.why))
    console.print(table)
