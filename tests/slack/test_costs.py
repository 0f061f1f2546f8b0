"""Money in Slack, on the wire: a request over its Slack user group's budget refused in the reply, a
queued run's message with its estimate, and `/run costs` (pinned by tests/golden/slack-costs.md)."""

import pytest
from pydantic import SecretStr

from bot import wiring
from bot.costs import month_of
from bot.store import Run, RunState
from bot.store.models import utcnow

from ..fakes.github_bot import Bot, count, settle
from ..fakes.slack_bot import CHANNEL, SIGNING_SECRET, command, said, slack_settings
from ..golden import check_golden
from .test_access import drain

TIERS = """\
budgets:
  - {slack_group: S0ML, monthly: 3, contact: "#ml-platform"}
  - {repository: acme/models, monthly: 100}
tiers:
  - {name: local, default: true, cost_per_hour: 2, max_runtime: 1h}
"""


@pytest.fixture
def bot(settings, hosted, tmp_path, slack):
    configured = slack_settings(settings, tmp_path, slack, slack_signing_secret=SecretStr(SIGNING_SECRET))
    tiers = tmp_path / "priced.yaml"
    tiers.write_text(TIERS)
    running = Bot(wiring.pipeline(configured.model_copy(update={"tiers_file": tiers})))
    yield running
    running.stop()


def test_a_request_over_the_groups_budget_is_refused_in_the_reply(bot, slack):
    command(bot, slack, "experiment better", user="U0ADA", trigger="ada")  # S0ML: $3 a month
    drain(bot)  # what was asked is handled, nothing runs
    month = month_of(utcnow())
    assert said(slack, "ada") == (
        "Over budget: this request is estimated at $4.00, and the group S0ML budget has $3.00 left of "
        f"$3.00 for {month} ($0.00 spent so far). Ask #ml-platform to raise it, or run it on a cheaper tier."
    )
    assert count(bot.pipeline, Run) == 0 and slack.messages(CHANNEL) == []

    command(bot, slack, "experiment better", trigger="bob")  # Bob is in no group: the repository's $100
    drain(bot)
    (message,) = slack.messages(CHANNEL)
    status = message["blocks"][1]["text"]["text"]
    assert status == "⏳ Queued: #1 on tier local · estimated $2.00"


def test_costs_show_the_months_spend_per_budget_repository_and_tier(bot, slack):
    command(bot, slack, "experiment better", trigger="run")
    drain(bot)
    with bot.pipeline.db.session() as s:  # a run of a repository Slack cannot reach: not listed there
        private = dict(sha="a" * 40, tree_sha="t", experiment="e", tier="local", role="run", cache_key="")
        ended = dict(state=RunState.succeeded, estimated_cost=2.0, actual_cost=0.25)
        s.add(Run(repository="/srv/private", spec={}, requested_by={}, **private, **ended))
    command(bot, slack, "costs", trigger="costs")
    drain(bot)
    month = month_of(utcnow())
    text = said(slack, "costs")
    check_golden("slack-costs.md", text.replace(month, "YYYY-MM") + "\n")
    assert "$4.25 in all" in text and "_… 1 more you may not read_" in text and "/srv/private" not in text

    command(bot, slack, "costs 1999-12", trigger="old")
    command(bot, slack, "costs 2026-13", trigger="bad")
    settle(bot)
    assert "No priced runs in 1999-12." in said(slack, "old")
    assert said(slack, "bad") == f"A month is written YYYY-MM, e.g. {month}; not '2026-13'."
    wrong = command(bot, slack, "costs may").json()["text"]
    assert wrong == "Write `/run costs` for this month, or `/run costs YYYY-MM`, e.g. `/run costs 2026-05`."
