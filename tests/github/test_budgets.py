"""Money on a pull request, on the wire (really signed deliveries, the fake GitHub): a push whose runs
would take the repository past its budget ends in a completed check run and the sticky comment saying
the spend, the budget, the estimate and who to ask; a team's budget refuses a member's `/run experiment`;
and a comparison within budget says what its runs cost."""

import re

import pytest

from bot.costs import month_of
from bot.store import Run
from bot.store.models import utcnow

from ..fakes.github_bot import (
    REPO,
    comment,
    count,
    make_bot,
    open_pull,
    ours,
    pull_request,
    replies,
    settle,
    sha_of,
)

TIERS = "tiers:\n  - {name: local, cost_per_hour: 1.2, max_runtime: 30m}\n"


def priced_bot(settings, tmp_path, fake, tiers: str):
    path = tmp_path / "tiers.yaml"
    path.write_text(tiers)
    return make_bot(settings.model_copy(update={"tiers_file": path}), tmp_path, fake)


@pytest.fixture
def bot(settings, hosted, tmp_path, fake):
    """$1.20 an hour, 30 minutes at most (each run's estimate: $0.60); acme/models may spend $1 a month."""
    budget = "{repository: acme/models, monthly: 1, contact: '@acme/ml-leads'}"
    running = priced_bot(settings, tmp_path, fake, f"budgets:\n  - {budget}\n{TIERS}")
    yield running
    running.stop()


def test_a_push_over_the_repositorys_budget_is_refused_on_the_pull_request(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    settle(bot)
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "better"))
    # Someone else must act (the budget's contact, or the calendar): not a failure of the push.
    assert (check.status, check.conclusion, check.actions) == ("completed", "action_required", [])
    reason = (
        "Over budget: this request is estimated at $1.20, and the repository acme/models budget has $1.00 "
        f"left of $1.00 for {month_of(utcnow())} ($0.00 spent so far). Ask @acme/ml-leads to raise it, or "
        "run it on a cheaper tier."
    )
    assert check.output["title"] == f"Not started: {reason}"[:200]
    assert reason in check.output["summary"]  # whole, in a code block: the mention notifies nobody
    (sticky,) = ours(fake, 7)
    assert reason in sticky.body and "Nothing runs until the budget allows it" in sticky.body
    assert count(bot.pipeline, Run, Run.estimated_cost.is_not(None)) == 0  # nothing queued, nothing spent


def test_a_teams_budget_refuses_its_members_request(settings, hosted, tmp_path, fake, simple_repo):
    team = priced_bot(settings, tmp_path, fake, f"budgets: [{{github_team: acme/ml, monthly: 0.5}}]\n{TIERS}")
    try:
        open_pull(fake, simple_repo)
        fake.add_team("acme", "ml", members=["octocat"])  # no tier names the team: the budget does
        comment(team, fake, "/run experiment")
        settle(team)
    finally:
        team.stop()
    (reply,) = replies(fake)
    assert "Over budget" in reply and "the team acme/ml budget has $0.50 left of $0.50" in reply
    assert "Ask the operators who keep tierbot's tiers file to raise it" in reply  # no contact named


def test_a_comparison_within_budget_says_what_its_runs_cost(settings, hosted, tmp_path, fake, simple_repo):
    running = priced_bot(settings, tmp_path, fake, "tiers:\n  - {name: local, cost_per_hour: 3600}\n")
    try:
        open_pull(fake, simple_repo)
        running.deliver("pull_request", pull_request(simple_repo, "opened"))
        settle(running)
    finally:
        running.stop()
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "better"))
    (sticky,) = ours(fake, 7)
    said = r"· cost \\\$\d+\.\d\d · baseline cost \\\$\d+\.\d\d ·"  # `$` escaped: no math on GitHub
    assert re.search(said, check.output["summary"]) and re.search(said, sticky.body)
