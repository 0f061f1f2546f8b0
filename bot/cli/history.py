"""`tierbot history [METRIC]`: the metric history of the repository's default branch, a sparkline each.

The points are the core's (`bot.history`: every succeeded run of a branch that comparisons are made
against). The branch is the one `tierbot compare` compares against without `--base`: origin's default
branch, else main or master (`bot.cli.local_git.default_base`), so the history shown is the one reports
quote beside each metric. A table per experiment and tier, a row per metric: the sparkline of the last N
points, the last value, the window's lowest and highest, and the commits it spans
(`templates/history.term.j2`); `--json` prints the points (`bot.cli.outcome`).
"""

import difflib
from collections import Counter
from dataclasses import dataclass
from typing import Annotated

import typer

from bot.cli.experiments import JsonOption, RepoOption, console, print_json
from bot.cli.local_git import default_base, require_repository
from bot.cli.outcome import CliOutput, Exit
from bot.errors import TierbotError
from bot.history import WINDOW, MetricHistory
from bot.history import history as history_of
from bot.render.chart import sparkline
from bot.render.templates import template
from bot.settings import Settings
from bot.store import Database


@dataclass(frozen=True)
class Row:
    """One metric's line of the table: its name (with its file when another file has a metric of the
    same name) and its points."""

    name: str
    history: MetricHistory

    @property
    def values(self) -> list[float | int]:
        return [point.value for point in self.history.points]

    @property
    def spark(self) -> str:
        return sparkline(self.values)

    @property
    def commits(self) -> str:
        first, last = self.history.points[0].sha[:7], self.history.points[-1].sha[:7]
        return first if first == last else f"{first}…{last}"


def history(
    metric: Annotated[
        str | None,
        typer.Argument(
            metavar="METRIC", help="Only this metric: its name (`test.accuracy`) or FILE:NAME (default: all)."
        ),
    ] = None,
    repo: RepoOption = ".",
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", metavar="NAME", help="Only this experiment's.")
    ] = None,
    tier: Annotated[str | None, typer.Option("--tier", "-t", metavar="T", help="Only this tier's.")] = None,
    last: Annotated[
        int, typer.Option("--last", "-n", metavar="N", min=1, help="The newest N points of each metric.")
    ] = WINDOW,
    as_json: JsonOption = False,
) -> None:
    """Show the metric history of the default branch: a sparkline per metric, its last value and range."""
    require_repository(repo)
    branch = default_base(repo)
    found = history_of(Database(Settings().db_url), repo, branch, experiment, tier, last)
    if metric is not None:
        found = _only(found, metric, branch)
    if as_json:
        print_json(CliOutput(command="history", exit_code=Exit.OK, history=found))
    else:
        filters = (("experiment", experiment), ("tier", tier))
        scope = "".join(f", {what} {name}" for what, name in filters if name)
        console.print(tables(found, branch, scope), highlight=False, emoji=False)
    raise typer.Exit(Exit.OK)


def tables(found: list[MetricHistory], branch: str, scope: str = "") -> str:
    """A table per experiment and tier, in rich markup; a metric named in two files is FILE:NAME."""
    files_of = Counter((item.experiment, item.tier, item.metric) for item in found)
    groups: dict[tuple[str, str], list[Row]] = {}
    for item in found:
        clash = files_of[item.experiment, item.tier, item.metric] > 1
        name = f"{item.file}:{item.metric}" if clash else item.metric
        groups.setdefault((item.experiment, item.tier), []).append(Row(name, item))
    width = max([len("metric"), *(len(row.name) for rows in groups.values() for row in rows)])
    page = template("history.term.j2", "term")
    return page.render(branch=branch, scope=scope, groups=groups, width=min(width, 40)).rstrip("\n")


def _only(found: list[MetricHistory], wanted: str, branch: str) -> list[MetricHistory]:
    """The metric asked for; a usage error naming the ones there are when it is not among them."""
    chosen = [h for h in found if wanted in (h.metric, f"{h.file}:{h.metric}")]
    if chosen or not found:
        return chosen
    names = sorted({h.metric for h in found})
    close = difflib.get_close_matches(wanted, names, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    raise TierbotError(f"{branch}'s history has no metric {wanted!r}.{hint} Its metrics: {shown}.")
