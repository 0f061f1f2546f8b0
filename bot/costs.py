"""Money: what a run should cost before it starts, what it cost once it ended, and the monthly budgets
that refuse a request before it spends what is left.

Prices are the tiers file's (`Tier.hourly_cost`: the tier's `cost_per_hour`, or the price of its
instance type when it gives one per type; in `TierSet.currency`); a tier without one is free,
shows no cost and counts toward no budget. A run's estimate is the median wall time of the last
`RECENT` runs of its experiment (same repository and name) that succeeded on its tier by running, else
the tier's `max_runtime`, times the price: set when it is requested (`charge`, from the pipeline's
`submit`), it is `Run.estimated_cost`. What it cost is the time its backend bills
(`Outcome.billed_seconds`), else its wall time (claimed → finished), times the price: set when it ends
(`actual_cost`, from the worker), it is `Run.actual_cost`. A run that took another's outcome, or joined
a run in flight (`bot.reuse`), costs nothing: it ran nothing.

Spend is read from the runs in the database, never counted in memory, so it survives restarts and every
replica sees the same: in a calendar month (UTC, by when runs were requested), the actual cost of the runs
that ended, plus the estimates of those queued or running (a fork's run waiting for approval counts once
it is approved). A request is refused at once (`BudgetExceeded`) when its estimate would take a budget
that applies to it past its monthly amount; two requests on two replicas in the same instant may both
pass, overrunning a budget by one request at most each.
"""

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.errors import TierbotError, TierUnknown
from bot.store import ComparisonRecord, Database, Run, RunState
from bot.store.db import BUDGETS, serialize
from bot.store.models import utcnow
from bot.tiers import Budget, Requester, Tier, TierSet

RECENT = 20  # successful runs whose median duration is the estimate
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
_SPENDING = (RunState.queued, RunState.running)  # their estimates count until they end


class BudgetExceeded(TierbotError):
    """A request whose estimate would take a budget past its monthly amount; says the spend so far, the
    budget, the estimate and who to ask."""

    over_budget = True


def money(amount: float, currency: str) -> str:
    """`$12.50`, `-$3.00`, `<$0.01` for a positive amount that rounds to nothing, `12.50 CHF`."""
    if 0 < amount < 0.005:
        return f"<{money(0.01, currency)}"
    sign, digits = ("-" if amount < -0.005 else ""), f"{abs(amount):,.2f}"
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {currency}"


class RunCost(BaseModel):
    """What a report says of a run's cost (`templates/cost.j2` words it): estimated while it has not
    ended, what it cost once it has, nothing when it took another run's outcome."""

    kind: Literal["estimate", "actual", "reused"]
    amount: float = 0.0
    currency: str = "USD"

    @property
    def money(self) -> str:
        return money(self.amount, self.currency)


def run_cost(run: Run, currency: str) -> RunCost | None:
    """The run's cost to show, or None on a free tier (and for runs from before prices were kept)."""
    if run.estimated_cost is None and run.actual_cost is None:
        return None
    if run.reused_run_id is not None:
        return RunCost(kind="reused", currency=currency)
    if run.run_state.terminal:
        return RunCost(kind="actual", amount=run.actual_cost or 0.0, currency=currency)
    return RunCost(kind="estimate", amount=run.estimated_cost or 0.0, currency=currency)


def baseline_cost(comparison: ComparisonRecord, currency: str) -> RunCost | None:
    """A comparison's baseline's cost, unless it was reused from before (its report says so)."""
    return None if comparison.baseline_reused else run_cost(comparison.base_run, currency)


def price(tier: Tier, seconds: float) -> float | None:
    """What `seconds` on the tier cost; None on a free tier."""
    hourly = tier.hourly_cost
    return None if hourly is None else max(seconds, 0.0) / 3600 * hourly


def estimate(s: Session, run: Run, tier: Tier) -> float | None:
    """What the run should cost: the median wall time of its experiment's last successful runs on the
    tier (that really ran: a reuse took no time), else the tier's max_runtime, at the tier's price."""
    if tier.hourly_cost is None:
        return None
    query = (
        select(Run.started_at, Run.finished_at)
        .where(
            Run.repository == run.repository,
            Run.experiment == run.experiment,
            Run.tier == tier.name,
            Run.state == RunState.succeeded,
            Run.reused_run_id.is_(None),
            Run.started_at.is_not(None),
            Run.finished_at.is_not(None),
        )
        .order_by(Run.id.desc())
        .limit(RECENT)
    )
    durations = [(finished - started).total_seconds() for started, finished in s.execute(query)]
    return price(tier, statistics.median(durations) if durations else tier.runtime_seconds)


def actual_cost(tiers: TierSet, run: Run, billed_seconds: float | None = None) -> float | None:
    """What the run, ending now, cost: the seconds its backend bills, else its wall time since it was
    claimed; None on a free tier or one that is gone from the tiers file."""
    try:
        tier = tiers.get(run.tier)
    except TierUnknown:
        return None
    if billed_seconds is None:
        billed_seconds = (utcnow() - run.started_at).total_seconds() if run.started_at else 0.0
    return price(tier, billed_seconds)


# -- spend and budgets ----------------------------------------------------------------------------------


def month_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[start, end) of a `YYYY-MM` month, UTC; TierbotError in the asker's words for anything else."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        raise TierbotError(f"A month is written YYYY-MM, e.g. {month_of(utcnow())}; not {month!r}.") from None
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start, end


@dataclass(frozen=True)
class Charge:
    """A priced run of the month, as spend sees it."""

    repository: str
    tier: str
    requester: Requester
    amount: float


def spent_by(state: str, estimated: float | None, actual: float | None) -> float:
    """What a run counts toward its month: its estimate while queued or running, its cost once ended,
    nothing while it waits for an approval."""
    if state in _SPENDING:
        return estimated or 0.0
    return (actual or 0.0) if RunState(state).terminal else 0.0


def charges(s: Session, month: str, leave_out: Iterable[int] = ()) -> list[Charge]:
    """The month's priced runs, as what each counts (runs `leave_out` aside)."""
    start, end = month_bounds(month)
    columns = (Run.repository, Run.tier, Run.requested_by, Run.state, Run.estimated_cost, Run.actual_cost)
    query = select(*columns).where(
        Run.created_at >= start,
        Run.created_at < end,
        or_(Run.estimated_cost.is_not(None), Run.actual_cost.is_not(None)),
        Run.id.not_in(list(leave_out)),
    )
    return [
        Charge(repository, tier, Requester.model_validate(who), spent_by(state, estimated, actual))
        for repository, tier, who, state, estimated, actual in s.execute(query)
    ]


def spent_on(budget: Budget, found: Iterable[Charge]) -> float:
    return sum(c.amount for c in found if budget.applies(c.repository, c.requester))


def charge(s: Session, tiers: TierSet, runs: Iterable[Run | None]) -> None:
    """Give the runs of a request (new, flushed; None for a side it has not) that have no estimate yet
    theirs, then refuse the request (BudgetExceeded: the caller's transaction rolls back, nothing is
    queued) when the estimate would take a budget that applies to it past its monthly amount."""
    new = [run for run in runs if run is not None and run.estimated_cost is None and run.actual_cost is None]
    for run in new:
        tier = tiers.get(run.tier)
        if tier.hourly_cost is None:
            continue
        if run.reused_run_id is not None:  # took or will take another run's outcome: runs nothing
            run.estimated_cost = 0.0
            run.actual_cost = 0.0 if run.run_state.terminal else None
        else:
            run.estimated_cost = estimate(s, run, tier)
    wanted = sum(run.estimated_cost or 0.0 for run in new)
    if not new or wanted <= 0 or not tiers.budgets:
        return
    head = new[0]
    who, month = Requester.model_validate(head.requested_by), month_of(head.created_at)
    # Replicas check requests one after the other, each seeing what the one before committed: else two
    # requests that each fit could both pass and together overrun the budget.
    serialize(s, BUDGETS)
    found = charges(s, month, leave_out=[run.id for run in new])
    for budget in tiers.budgets:
        if budget.applies(head.repository, who):
            spent = spent_on(budget, found)
            if round(spent + wanted, 6) > budget.monthly:  # a request that fits to the cent passes
                raise BudgetExceeded(over_budget(budget, spent, wanted, month, tiers.currency))


def over_budget(budget: Budget, spent: float, wanted: float, month: str, currency: str) -> str:
    """Why a request is refused: its estimate, the budget and what is left of it, and who to ask."""

    def say(amount: float) -> str:
        return money(amount, currency)

    ask = f"Ask {budget.contact}" if budget.contact else "Ask the operators who keep tierbot's tiers file"
    return (
        f"Over budget: this request is estimated at {say(wanted)}, and the {budget.scope} budget has "
        f"{say(max(budget.monthly - spent, 0.0))} left of {say(budget.monthly)} for {month} "
        f"({say(spent)} spent so far). {ask} to raise it, or run it on a cheaper tier."
    )


# -- a month's costs, for `tierbot costs`, `/run costs` and /metrics ------------------------------------


class Spend(BaseModel):
    """What one repository's or tier's runs of the month cost."""

    name: str = Field(description="The repository or tier.")
    spent: float = Field(description="Actual costs of ended runs plus estimates of queued and running ones.")
    runs: int = Field(description="Priced runs requested in the month.")


class BudgetSpend(BaseModel):
    """A budget of the tiers file, and what the month's runs it applies to cost."""

    budget: str = Field(description="What it is for: `repository acme/models`, `team acme/ml`, `group S0ML`.")
    kind: Literal["repository", "github_team", "slack_group"]
    name: str = Field(description="The repository, team or Slack user group.")
    monthly: float
    spent: float
    left: float = Field(description="monthly − spent; negative when runs cost more than their estimates.")
    contact: str | None = Field(description="Who to ask for more.")


class MonthCosts(BaseModel):
    """What a calendar month's priced runs cost (by when they were requested): in all, per repository,
    per tier and per budget."""

    month: str = Field(description="YYYY-MM, UTC.")
    currency: str = Field(description="Of every amount here: the tiers file's.")
    total: float
    repositories: list[Spend] = Field(description="Most spent first.")
    tiers: list[Spend] = Field(description="Most spent first.")
    budgets: list[BudgetSpend] = Field(description="In the tiers file's order.")


def _spends(found: list[Charge], name_of: Callable[[Charge], str]) -> list[Spend]:
    """What the runs cost per name (a repository, a tier), the most first."""
    spent: dict[str, float] = defaultdict(float)
    runs: dict[str, int] = defaultdict(int)
    for c in found:
        spent[name_of(c)] += c.amount
        runs[name_of(c)] += 1
    return [Spend(name=n, spent=spent[n], runs=runs[n]) for n in sorted(spent, key=lambda n: (-spent[n], n))]


def month_costs(db: Database, tiers: TierSet, month: str) -> MonthCosts:
    """Spend per repository, per tier and per budget (with what is left) in a `YYYY-MM` month."""
    with db.session() as s:
        found = charges(s, month)
    budgets = []
    for budget in tiers.budgets:
        spent = spent_on(budget, found)
        budgets.append(
            BudgetSpend(
                budget=budget.scope,
                kind=budget.kind,
                name=budget.name,
                monthly=budget.monthly,
                spent=spent,
                left=budget.monthly - spent,
                contact=budget.contact,
            )
        )
    return MonthCosts(
        month=month,
        currency=tiers.currency,
        total=sum(c.amount for c in found),
        repositories=_spends(found, lambda c: c.repository),
        tiers=_spends(found, lambda c: c.tier),
        budgets=budgets,
    )
