"""What Slack shows of deployments, pinned by golden files (tests/golden/slack-deploy*.{json,md}): a
deployment's message in each state, with a hostile reason that must stay text; `/run deployments`; the
answer to a rollback. Pure views; the `/run` grammar of deployments and rollbacks; `deploy_access` in
the tiers file."""

import json
from datetime import timedelta

import pytest

from bot.errors import TierbotError
from bot.slack.deploy_views import deploy_message, deployments_text, rolling_back_text
from bot.slack.grammar import USAGE, GrammarError, SlackCommand, parse
from bot.tiers import TierSet, load_tiers

from ..deploy.test_views import AT, HOSTILE, deployment
from ..golden import check_golden

REPORT = "https://tierbot.example/reports/9?token=abc"
STATES = {
    "waiting for its run": deployment(state="waiting", reason=None),
    "deploying": deployment(state="deploying", step="checking", reason=None),
    "live": deployment(requested_by={"name": "maintainer"}),
    "rolled back": deployment(id=7, kind="rollback", source_id=4),
    "failed (a hostile reason)": deployment(state="failed", reason=HOSTILE),
    "refused": deployment(state="refused", reason="3 of 12 replayed requests answered differently"),
    "skipped": deployment(state="skipped", reason="superseded by deployment 7 (abcdef1) before it started"),
    "retired": deployment(state="retired", reason="replaced by deployment 6 (abcdef0)"),
    "down": deployment(
        instance={"down": "2026-12-07T05:00:00+00:00"},
        reason="DOWN since 2026-12-07 05:00 UTC: its model server (pid 4242) is not running, after 3 "
        "restarts in 10 minutes. Left down: deploy a fix, or roll back (tierbot rollback).",
    ),
}


def test_a_deployments_message_in_each_state():
    shown = {what: deploy_message(d, REPORT if d.state != "waiting" else None) for what, d in STATES.items()}
    check_golden("slack-deploy.json", json.dumps(shown, indent=2, ensure_ascii=False) + "\n")
    assert [m["blocks"][-1]["type"] for m in shown.values()].count("actions") == 3  # the live ones
    assert shown["live"]["blocks"][-1]["elements"][0]["value"] == "5"
    file_link = deploy_message(deployment(), "file:///srv/tierbot/reports/9.html")
    assert "Deploy report" not in json.dumps(file_link)  # a file on the bot's machine helps nobody


def test_deployments_listing_and_the_answer_to_a_rollback():
    listed = [
        deployment(id=7, kind="rollback", finished_at=AT + timedelta(hours=2)),
        deployment(id=6, state="failed", reason=HOSTILE, finished_at=AT + timedelta(hours=1)),
        deployment(id=5, state="retired", finished_at=AT),
    ]
    texts = [
        deployments_text("acme/models", None, listed),
        deployments_text("acme/models", "staging", []),
        rolling_back_text(deployment(id=8, kind="rollback", state="waiting"), "C0DEPLOYS"),
        rolling_back_text(deployment(id=8, kind="rollback", state="waiting"), None),
    ]
    check_golden("slack-deploys.md", "\n---\n".join(texts) + "\n")


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("deployments", SlackCommand("deployments")),
        (
            "deployments staging in acme/models",
            SlackCommand("deployments", environment="staging", repository="acme/models"),
        ),
        ("rollback", SlackCommand("rollback")),
        ("rollback to 1a2b3c4", SlackCommand("rollback", to="1a2b3c4")),
        (
            "rollback production in acme/models to 1A2B",
            SlackCommand("rollback", environment="production", repository="acme/models", to="1A2B"),
        ),
    ],
)
def test_the_grammar_of_deployments(text, command):
    assert parse(text) == command


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("rolback", "`rolback` is not a command. Did you mean `rollback`?"),
        ("deployment", "`deployment` is not a command. Did you mean `deployments`?"),
        (
            "rollback to main",
            "`to main`: name the commit by its SHA (4 to 40 hex digits), e.g. `to 1a2b3c4`.",
        ),
        (
            "rollback production staging",
            "I did not understand `staging`. Write `/run rollback [ENV] [to COMMIT] [in OWNER/REPO]`.",
        ),
        (
            "deployments to 1a2b3c4",
            "I did not understand `1a2b3c4`. Write `/run deployments [ENV] [in OWNER/REPO]`.",
        ),
        ("rollback in models", "`in models`: name the repository as OWNER/REPO."),
        ("rollback ../prod", "`../prod` is not an environment's name."),
        ("rollback to 1a2b to 3c4d", "`to` is given twice."),
    ],
)
def test_mistakes_in_deployments_and_rollbacks_are_explained(text, said):
    with pytest.raises(GrammarError) as raised:
        parse(text)
    assert str(raised.value).startswith(said)


def test_the_usage_names_every_verb():
    assert all(f"`/run {verb}" in USAGE for verb in ("deployments", "rollback", "experiment", "status"))


def test_deploy_access_in_the_tiers_file(tmp_path):
    path = tmp_path / "tiers.yaml"
    path.write_text(
        "tiers: [{name: local}]\n"
        "deploy_access:\n"
        "  production: {slack_groups: [S0REL], github_teams: [acme/release]}\n"
    )
    tiers = load_tiers(path)
    assert tiers.deployers("production").describe() == "group S0REL, team acme/release"
    assert not tiers.deployers("staging").restricted  # unset: who may run in the repository may deploy
    assert (
        "S0REL" in tiers.slack_groups() and "acme/release" in tiers.github_teams()
    )  # asked of Slack, GitHub
    assert "deploy_access" in TierSet.model_json_schema()["properties"]
    path.write_text("tiers: [{name: local}]\ndeploy_access:\n  production: {slack_user: [U1]}\n")
    with pytest.raises(TierbotError, match="slack_user"):
        load_tiers(path)
