"""`tierbot costs [--month YYYY-MM] [--json]`: what a month's runs cost, per budget (with what is left),
per repository and per tier.

The numbers are the core's (`bot.costs.month_costs`: read from the runs in the database, the actual cost
of the runs that ended and the estimates of those queued or running), the same that `/run costs` shows
in Slack and `/metrics` exposes per budget; the text is `templates/costs.term.j2`, and `--json` prints
them in the one shape of `bot.cli.outcome`.
"""

from functools import partial
from typing import Annotated

import typer

from bot.cli.experiments import JsonOption, console, print_json
from bot.cli.outcome import CliOutput, Exit
from bot.costs import MonthCosts, money, month_costs, month_of
from bot.render.templates import template
from bot.settings import Settings
from bot.store import Database
from bot.store.models import utcnow
from bot.tiers import load_tiers


def costs(
    month: Annotated[
        str | None,
        typer.Option(
            "--month", "-m", metavar="YYYY-MM", help="This month instead (default: the current one, UTC)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show what runs cost in a month: per budget with what is left, per repository, per tier."""
    settings = Settings()
    found = month_costs(
        Database(settings.db_url), load_tiers(settings.tiers_file), month or month_of(utcnow())
    )
    if as_json:
        print_json(CliOutput(command="costs", exit_code=Exit.OK, costs=found))
    else:
        console.print(costs_text(found), highlight=False, emoji=False)
    raise typer.Exit(Exit.OK)


def costs_text(found: MonthCosts) -> str:
    """The month's costs in rich markup."""
    names = [spend.name for spend in found.repositories + found.tiers] + [b.budget for b in found.budgets]
    width = min(max([len(name) for name in names] or [0]), 40)
    page = template("costs.term.j2", "term")
    return page.render(c=found, money=partial(money, currency=found.currency), width=width).rstrip("\n")
