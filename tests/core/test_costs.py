"""Money (issue 16): prices and budgets in the tiers file, a run's estimate before it starts and its
cost after, spend read from the database (so it survives a restart), requests refused over a budget
through the real pipeline, what every report says of a run's cost (pinned by
tests/golden/comparison-costs.txt), and the spend on /metrics."""

import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import func, select

from bot.costs import (
    BudgetExceeded,
    RunCost,
    actual_cost,
    charge,
    charges,
    estimate,
    money,
    month_bounds,
    month_costs,
    month_of,
)
from bot.errors import SpecInvalid, TierbotError
from bot.pipeline import Pipeline
from bot.render.html import render_html
from bot.render.markdown import render_markdown
from bot.render.slack import render_slack
from bot.render.terminal import render_terminal
from bot.request import RunRequest
from bot.store import Database, Run, RunState
from bot.store.models import utcnow
from bot.tiers import Budget, Requester, TierSet, load_tiers
from bot.worker import Worker

from ..conftest import GitRepo
from ..fakes.github_bot import Bot
from ..golden import check_golden
from ..golden.comparisons import CONTEXT, representative_comparison

# -- the tiers file -------------------------------------------------------------------------------------


def tiers_of(text: str, tmp_path: Path) -> TierSet:
    path = tmp_path / "tiers.yaml"
    path.write_text(text)
    return load_tiers(path)


def test_prices_currency_and_budgets_are_checked_where_they_are_written(tmp_path):
    bad = """\
currency: usd
budgets:
  - {repository: acme/models, github_team: acme/ml, monthly: 3}
  - {slack_group: S0ML, monthly: 0}
  - {github_team: acme, monthly: 1}
  - {monthly: 1, contact: "@ada"}
tiers:
  - {name: free, cost_per_hour: 0}
"""
    with pytest.raises(SpecInvalid) as raised:
        tiers_of(bad, tmp_path)
    path = tmp_path / "tiers.yaml"
    assert raised.value.problems == [
        f"{path}:8: tiers[0].cost_per_hour: must be more than 0, not 0 (leave it out on a free tier)",
        f"{path}:1: currency: write a currency as its three capital letters, e.g. USD or EUR, not 'usd'",
        f"{path}:3: budgets[0]: a budget names exactly one of repository, github_team or slack_group "
        "(found repository and github_team)",
        f"{path}:4: budgets[1].monthly: must be more than 0, not 0",
        f"{path}:5: budgets[2].github_team: name the team as org/slug, e.g. acme/ml-platform, not 'acme'",
        f"{path}:6: budgets[3]: a budget names exactly one of repository, github_team or slack_group "
        "(found none)",
    ]
    twice = "budgets: [{repository: acme/Models, monthly: 1}, {repository: acme/models, monthly: 2}]\n"
    with pytest.raises(SpecInvalid, match="one budget per repository, team or group; repeated: repository"):
        tiers_of(twice + "tiers: [{name: local}]\n", tmp_path)
    fine = tiers_of(
        "currency: EUR\ntiers: [{name: local, default: true}, {name: gpu, cost_per_hour: 2.5}]\n", tmp_path
    )
    assert fine.currency == "EUR" and [t.cost_per_hour for t in fine.tiers] == [None, 2.5]


def test_a_budget_applies_to_its_repository_team_or_group_and_asks_for_their_membership():
    ada = Requester(slack_user="U0ADA", slack_groups=("S0ML",), github_teams=("acme/ML",))
    assert Budget(repository="Acme/Models", monthly=1).applies("acme/models", Requester())
    assert not Budget(repository="acme/models", monthly=1).applies("acme/other", ada)
    assert Budget(github_team="acme/ml", monthly=1).applies("anything", ada)
    assert not Budget(github_team="acme/ml", monthly=1).applies("anything", Requester(github_login="x"))
    assert Budget(slack_group="S0ML", monthly=1).applies("anything", ada)
    assert not Budget(slack_group="S0OPS", monthly=1).applies("anything", ada)
    tiers = TierSet(
        tiers=[{"name": "local", "access": {"github_teams": ["acme/infra"]}}],
        budgets=[{"github_team": "acme/ml", "monthly": 5}, {"slack_group": "S0ML", "monthly": 5}],
    )
    assert tiers.github_teams() == {"acme/infra", "acme/ml"} and tiers.slack_groups() == {"S0ML"}


def test_money_and_months_in_peoples_words():
    assert [money(12.5, "USD"), money(1234.5, "CHF"), money(-3, "EUR"), money(0, "GBP")] == [
        "$12.50",
        "1,234.50 CHF",
        "-€3.00",
        "£0.00",
    ]
    assert money(0.001, "USD") == "<$0.01"  # a real cost is never rounded to nothing
    assert month_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(TierbotError, match=r"A month is written YYYY-MM, e\.g\. \d{4}-\d\d; not '2026-13'\."):
        month_bounds("2026-13")


def test_billed_seconds_stand_for_wall_time():
    tiers = TierSet(tiers=[{"name": "gpu", "cost_per_hour": 3.6}])
    run = Run(tier="gpu", started_at=utcnow() - timedelta(hours=1))
    assert actual_cost(tiers, run, billed_seconds=90) == pytest.approx(0.09)  # the backend's word
    assert actual_cost(tiers, run) == pytest.approx(3.6, abs=0.01)  # else the hour it held the tier
    assert actual_cost(tiers, Run(tier="gone", started_at=utcnow())) is None


PER_TYPE = """\
tiers:
  - name: gpu
    backend: sagemaker
    backend_options: {instance_type: ml.g5.2xlarge}
    max_runtime: 2h
    cost_per_hour: {ml.g5.xlarge: 1.5, ml.g5.2xlarge: 3.6}
"""


def test_a_price_per_instance_type_is_the_tiers_instance_types(db: Database, tmp_path: Path):
    tiers = tiers_of(PER_TYPE, tmp_path)
    gpu = tiers.get("gpu")
    assert gpu.hourly_cost == 3.6
    run = Run(tier="gpu", started_at=utcnow() - timedelta(hours=1))
    assert actual_cost(tiers, run, billed_seconds=90) == pytest.approx(0.09)  # at 3.6/h, not 1.5/h
    with db.session() as s:
        assert estimate(s, add_run(s, state=RunState.queued), gpu) == pytest.approx(7.2)  # 2 h at 3.6/h


def test_a_tier_whose_instance_type_has_no_price_is_refused_in_words(tmp_path: Path):
    path = tmp_path / "tiers.yaml"
    unpriced = PER_TYPE.replace("instance_type: ml.g5.2xlarge", "instance_type: ml.p4d.24xlarge")
    with pytest.raises(SpecInvalid) as raised:
        tiers_of(unpriced, tmp_path)
    assert raised.value.problems == [
        f"{path}:2: tiers[0]: tier 'gpu': cost_per_hour has no price for its instance type ml.p4d.24xlarge "
        "(backend_options.instance_type); priced: ml.g5.2xlarge, ml.g5.xlarge"
    ]
    untyped = "tiers:\n  - {name: gpu, cost_per_hour: {ml.g5.xlarge: 1.5}}\n"
    with pytest.raises(SpecInvalid) as raised:
        tiers_of(untyped, tmp_path)
    assert raised.value.problems == [
        f"{path}:2: tiers[0]: tier 'gpu': cost_per_hour gives prices per instance type (ml.g5.xlarge), but "
        "backend_options names no instance_type: give one price (cost_per_hour: 1.2)"
    ]
    free = PER_TYPE.replace("ml.g5.2xlarge: 3.6", "ml.g5.2xlarge: 0")
    with pytest.raises(SpecInvalid) as raised:
        tiers_of(free, tmp_path)
    assert raised.value.problems == [
        f"{path}:6: tiers[0].cost_per_hour: must be more than 0 for ml.g5.2xlarge, not 0 (leave it out on a "
        "free tier)"
    ]


# -- estimates and spend, from the runs in the database ------------------------------------------------


def add_run(s, **fields) -> Run:
    defaults = dict(
        repository="acme/models",
        sha="a" * 40,
        tree_sha="t",
        experiment="iris",
        tier="gpu",
        role="run",
        cache_key="",
        spec={},
        requested_by={},
        state=RunState.succeeded,
    )
    run = Run(**(defaults | fields))
    s.add(run)
    s.flush()
    return run


def ran(seconds: float, **fields) -> dict:
    start = utcnow() - timedelta(hours=2)
    return dict(started_at=start, finished_at=start + timedelta(seconds=seconds), **fields)


def test_the_estimate_is_the_median_of_recent_successes_else_max_runtime(db: Database):
    tiers = TierSet(tiers=[{"name": "gpu", "cost_per_hour": 3.6, "max_runtime": "2h"}])
    with db.session() as s:
        first = add_run(s, state=RunState.queued)
        assert estimate(s, first, tiers.get("gpu")) == pytest.approx(7.2)  # no history: 2 h at 3.6/h
        for seconds in (60, 100, 3000):
            add_run(s, **ran(seconds))
        add_run(s, **ran(9000, state=RunState.failed))  # failures and other experiments say nothing
        add_run(s, **ran(9000, experiment="other"))
        add_run(s, **ran(9000, repository="acme/else"))
        add_run(s, **ran(0, reused_run_id=first.id))  # a reuse took no time: not a duration
        assert estimate(s, first, tiers.get("gpu")) == pytest.approx(0.1)  # the median, 100 s
        assert estimate(s, first, TierSet(tiers=[{"name": "gpu"}]).get("gpu")) is None  # a free tier


def test_spend_counts_what_ended_and_the_estimates_of_what_has_not(db: Database):
    tiers = TierSet(
        tiers=[{"name": "gpu", "cost_per_hour": 1}, {"name": "cpu", "cost_per_hour": 1, "default": True}],
        budgets=[
            {"repository": "acme/models", "monthly": 10, "contact": "@ada"},
            {"github_team": "acme/ml", "monthly": 2},
            {"slack_group": "S0ML", "monthly": 5},
        ],
    )
    ml = Requester(github_login="ada", github_teams=("acme/ml",)).model_dump(mode="json")
    group = Requester(slack_user="U0BOB", slack_groups=("S0ML",)).model_dump(mode="json")
    with db.session() as s:
        add_run(s, estimated_cost=9, actual_cost=1.5, requested_by=ml)  # ended: what it cost
        add_run(s, state=RunState.running, estimated_cost=2, actual_cost=None, requested_by=ml)
        add_run(
            s, state=RunState.queued, estimated_cost=0.5, tier="cpu", repository="acme/b", requested_by=group
        )
        add_run(s, state=RunState.waiting, estimated_cost=4)  # a fork's, until approved
        add_run(s, state=RunState.cancelled, estimated_cost=3, actual_cost=None)  # before it started
        add_run(s, estimated_cost=None, actual_cost=None)  # a free tier's
        last_month = utcnow().replace(day=1) - timedelta(days=3)
        add_run(s, estimated_cost=50, actual_cost=50, created_at=last_month)
    month = month_of(utcnow())
    costs = month_costs(db, tiers, month)
    assert (costs.month, costs.currency, costs.total) == (month, "USD", pytest.approx(4.0))
    assert [(r.name, r.spent, r.runs) for r in costs.repositories] == [
        ("acme/models", pytest.approx(3.5), 4),  # the free one is no priced run
        ("acme/b", pytest.approx(0.5), 1),
    ]
    assert [(t.name, t.spent) for t in costs.tiers] == [
        ("gpu", pytest.approx(3.5)),
        ("cpu", pytest.approx(0.5)),
    ]
    assert [(b.budget, b.spent, b.left, b.contact) for b in costs.budgets] == [
        ("repository acme/models", pytest.approx(3.5), pytest.approx(6.5), "@ada"),
        ("team acme/ml", pytest.approx(3.5), pytest.approx(-1.5), None),  # overran its estimates
        ("group S0ML", pytest.approx(0.5), pytest.approx(4.5), None),
    ]
    last = month_of(last_month)
    assert month_costs(db, tiers, last).total == pytest.approx(50)
    with db.session() as s:
        assert len(charges(s, month)) == 5


# -- through the real pipeline -----------------------------------------------------------------------------


def priced(settings, tmp_path: Path, repo: GitRepo, monthly: float, per_hour: float = 1.2):
    """Settings whose one tier costs `per_hour` (estimates: 30 min before any run succeeded), with a
    budget of `monthly` on the repository."""
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text(
        f"budgets:\n  - {{repository: {repo.path}, monthly: {monthly}, contact: '#ml-platform'}}\n"
        f"tiers:\n  - {{name: local, cost_per_hour: {per_hour}, max_runtime: 30m}}\n"
    )
    return settings.model_copy(update={"tiers_file": tiers})


def drain(pipeline: Pipeline) -> None:
    worker = Worker(pipeline)
    while worker.run_once():
        pass


def runs(pipeline: Pipeline) -> int:
    with pipeline.db.session() as s:
        return s.scalar(select(func.count()).select_from(Run))


def test_a_request_over_budget_is_refused_at_once_and_spend_survives_a_restart(
    settings, simple_repo, tmp_path
):
    pipeline = Pipeline(priced(settings, tmp_path, simple_repo, monthly=1.0))
    repo = str(simple_repo)
    with pytest.raises(BudgetExceeded) as refused:  # branch and baseline: 2 × 30 min at 1.20/h
        pipeline.submit(RunRequest(repository=repo, ref="better", base="main"))
    month = month_of(utcnow())
    assert str(refused.value) == (
        f"Over budget: this request is estimated at $1.20, and the repository {repo} budget has $1.00 left "
        f"of $1.00 for {month} ($0.00 spent so far). Ask #ml-platform to raise it, or run it on a cheaper "
        "tier."
    )
    assert runs(pipeline) == 0  # nothing was queued

    queued = pipeline.submit(RunRequest(repository=repo, ref="better")).head
    assert pipeline.run(queued.id).estimated_cost == pytest.approx(0.6)
    again = Pipeline(pipeline.settings)  # a restart: the spend is in the database
    with pytest.raises(BudgetExceeded, match=r"has \$0\.40 left of \$1\.00 for .* \(\$0\.60 spent so far\)"):
        again.submit(RunRequest(repository=repo, ref="worse"))
    assert runs(again) == 1

    drain(again)  # it ran in about a second: a fraction of a cent, and now the experiment has a history
    done = again.run(queued.id)
    took = (done.finished_at - done.started_at).total_seconds()
    assert done.state == RunState.succeeded and done.actual_cost == pytest.approx(took / 3600 * 1.2, abs=1e-3)
    worse = again.submit(RunRequest(repository=repo, ref="worse")).head
    assert again.run(worse.id).estimated_cost == pytest.approx(done.actual_cost, abs=1e-3)  # its median


def test_replicas_check_requests_against_a_budget_one_after_the_other(
    settings, simple_repo, tmp_path, postgres_url
):
    """Two replicas' requests that each fit the budget, but not both: the second waits for the first's
    transaction, sees its estimate, and is refused. Without the lock it read the spend before the first
    committed, and both were queued."""
    shared = priced(settings, tmp_path, simple_repo, monthly=1.0).model_copy(
        update={"database_url": postgres_url}
    )
    one, two = Pipeline(shared), Pipeline(shared)
    repo, said = str(simple_repo), {}

    def request() -> None:
        try:
            said["queued"] = two.submit(RunRequest(repository=repo, ref="better")).head
        except BudgetExceeded as exc:
            said["refused"] = str(exc)

    second = threading.Thread(target=request)
    with one.db.session() as s:  # replica one, in the middle of a request: charged, not yet committed
        charge(s, one.tiers, [add_run(s, repository=repo, tier="local", state=RunState.queued)])
        second.start()
        second.join(2)
        assert second.is_alive(), "replica two decided without waiting for replica one"
    second.join(60)
    assert "has $0.40 left of $1.00" in said["refused"]  # replica one's $0.60 counted


def test_reports_show_what_each_side_cost_and_a_reuse_costs_nothing(settings, simple_repo, tmp_path):
    pipeline = Pipeline(priced(settings, tmp_path, simple_repo, monthly=10_000, per_hour=3600))  # $1 a second
    request = RunRequest(repository=str(simple_repo), ref="better", base="main")
    first = pipeline.submit(request)
    pending = pipeline.report_context(pipeline.comparison(first.comparison.id))
    assert pending.cost == RunCost(kind="estimate", amount=1800.0) == pending.baseline_cost
    drain(pipeline)
    comparison = pipeline.comparison(first.comparison.id)
    ctx = pipeline.report_context(comparison)
    head, base = pipeline.run(first.head.id), pipeline.run(first.base.id)
    assert ctx.cost == RunCost(kind="actual", amount=head.actual_cost) and head.actual_cost > 0
    assert ctx.baseline_cost == RunCost(kind="actual", amount=base.actual_cost)
    report = Path(comparison.report_path).read_text()
    assert re.search(r"branch run \d+ · cost \$\d+\.\d\d · baseline cost \$\d+\.\d\d</p>", report)

    second = pipeline.submit(request)  # the same tree again: reused, and the baseline too
    assert second.head_reused and second.baseline_reused
    drain(pipeline)
    ctx = pipeline.report_context(pipeline.comparison(second.comparison.id))
    assert ctx.cost == RunCost(kind="reused") and ctx.baseline_cost is None
    assert pipeline.run(second.head.id).actual_cost == 0
    text = render_markdown(representative_comparison(), ctx)
    assert "branch: reused run" in text and "· reused: no cost" in text


def test_spend_per_budget_is_on_metrics(settings, simple_repo, tmp_path):
    pipeline = Pipeline(priced(settings, tmp_path, simple_repo, monthly=5))
    pipeline.submit(RunRequest(repository=str(simple_repo), ref="better"))
    bot = Bot(pipeline)
    try:
        metrics = bot.client.get("/metrics").text
    finally:
        bot.stop()
    budget = f"repository {simple_repo}"
    assert f'tierbot_spend{{budget="{budget}",month="{month_of(utcnow())}"}} 0.6' in metrics


# -- what reports say -----------------------------------------------------------------------------------


def headers(ctx) -> str:
    """The header line of every rendering of a comparison with this context."""
    comparison = representative_comparison()
    console = Console(record=True, width=400)
    render_terminal(comparison, ctx, console)
    slack = render_slack(comparison, ctx)["blocks"]
    renderings = {
        "Markdown": render_markdown(comparison, ctx).splitlines()[2],
        "HTML": re.search(r'<p class="context">.*?</p>', render_html(comparison, ctx), re.DOTALL).group(),
        "terminal": console.export_text().splitlines()[1],
        "Slack": next(b["elements"][0]["text"] for b in slack if b["type"] == "context"),
    }
    return "".join(f"==> {name} <==\n{text}\n" for name, text in renderings.items())


def test_every_report_says_what_the_runs_cost_golden():
    """Pinned: the branch's and the baseline's costs in each rendering's header (`$` escaped in
    Markdown, so that two amounts never read as GitHub's math), a reuse, another currency, a cost
    below a cent; and nothing at all on a free tier."""
    ran = CONTEXT.model_copy(
        update={
            "baseline_reused": False,
            "cost": RunCost(kind="actual", amount=0.42),
            "baseline_cost": RunCost(kind="actual", amount=1234.5),
        }
    )
    reused = CONTEXT.model_copy(update={"head_reused_run_id": 9, "cost": RunCost(kind="reused")})
    tiny = CONTEXT.model_copy(update={"cost": RunCost(kind="actual", amount=0.001, currency="EUR")})
    check_golden(
        "comparison-costs.txt",
        "".join(
            f"#### {name}\n{headers(ctx)}" for name, ctx in (("ran", ran), ("reused", reused), ("tiny", tiny))
        ),
    )
    assert "cost" not in headers(CONTEXT)


def test_run_and_compare_print_the_estimate_before_and_the_cost_after(tierbot, simple_repo, tmp_path):
    tiers = tmp_path / "tiers.yaml"  # each run's estimate: 30 min at $1.20 an hour
    tiers.write_text("tiers:\n  - {name: local, cost_per_hour: 1.2, max_runtime: 30m}\n")
    env, repo = {"TIERBOT_TIERS_FILE": str(tiers)}, ("--repo", str(simple_repo))
    ran = tierbot("run", "better", *repo, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = [" ".join(line.split()) for line in ran.stdout.splitlines()]
    assert re.fullmatch(r"Queued run 1: better @ [0-9a-f]{7} on local · estimated \$0\.60", lines[0])
    assert any(re.fullmatch(r"Run 1 succeeded in [\d.]+s: .* · cost <\$0\.01", line) for line in lines), lines

    compared = tierbot("compare", "better", *repo, env=env)  # the branch reused; main runs
    assert compared.returncode == 0, compared.stdout + compared.stderr
    lines = [" ".join(line.split()) for line in compared.stdout.splitlines()]
    assert any(
        # the median of the experiment's last run, the branch's (a second): less than a cent
        re.fullmatch(r"Baseline run 3: main @ [0-9a-f]{7} \(merge base\) · estimated <\$0\.01", line)
        for line in lines
    ), lines
    assert any("baseline cost <$0.01" in line for line in lines), lines  # the report's header, after
