"""Deployments in Slack, on the wire: really signed merges (GitHub's `pull_request` closed, merged) to the
running bot, real model servers behind the local proxy, and what crossed to the fake Slack: a message
per deployment in the repository's channel, posted then updated in place; the *Rollback* button and
`/run rollback`, `/run deployments` as Slack signs them; refusals and mistakes answered privately."""

import pytest
from pydantic import SecretStr

from bot.deploy.plan import deployments_of, request_deploy
from bot.tiers import Requester

from ..deploy.conftest import BROKEN_SERVE, predict, scaler, stop_deployed  # noqa: F401  (fixtures)
from ..deploy.test_github_deploys import PUBLIC_URL, bare, merged  # noqa: F401  (fixtures)
from ..fakes.github_bot import REPO, make_bot, settle
from ..fakes.slack_bot import CHANNEL, SIGNING_SECRET, TIERS, click, command, said, slack_settings

NOTIFY = "C0DEPLOYS"  # acme/models' channel (TIERBOT_SLACK_NOTIFY)
DEPLOYERS = TIERS + "deploy_access:\n  production: {slack_users: [U0ADA]}\n"


def deploying_bot(settings, tmp_path, fake, slack, notify: dict):
    """Both doors: GitHub's merges deploy acme/models, Slack hears it where `notify` says; Ada may deploy."""
    configured = slack_settings(
        settings,
        tmp_path,
        slack,
        slack_signing_secret=SecretStr(SIGNING_SECRET),
        slack_notify=notify,
        public_url=PUBLIC_URL,
    )
    (tmp_path / "deployers.yaml").write_text(DEPLOYERS)
    return make_bot(configured.model_copy(update={"tiers_file": tmp_path / "deployers.yaml"}), tmp_path, fake)


@pytest.fixture
def bot(settings, bare, tmp_path, fake, slack):  # noqa: F811
    """acme/models' deployments show in NOTIFY."""
    running = deploying_bot(settings, tmp_path, fake, slack, {REPO: NOTIFY})
    yield running
    running.stop()


@pytest.fixture
def quiet_bot(settings, bare, tmp_path, fake, slack):  # noqa: F811
    """acme/models has no channel: its deployments show in Slack only where a rollback was asked."""
    running = deploying_bot(settings, tmp_path, fake, slack, {})
    yield running
    running.stop()


def merge(bot, fake, scaler, bare, files: dict, number: int) -> str:  # noqa: F811
    """Pull request `number` merged (its `closed` event delivered) and everything worked off; its commit."""
    payload = merged(fake, scaler, bare, files, number=number)
    assert bot.deliver("pull_request", payload).status_code == 202
    settle(bot, timeout=120)
    return payload["pull_request"]["merge_commit_sha"]


def text_of(message: dict) -> str:
    return "\n".join(
        block.get("text", {}).get("text", "") if block["type"] == "section" else str(block)
        for block in message["blocks"]
    )


def button_of(message: dict) -> dict:
    (button,) = message["blocks"][-1]["elements"]
    assert button["action_id"] == "tierbot_rollback"
    return {"action_id": "tierbot_rollback", "type": "button", "value": button["value"]}


def ask(bot, slack, text: str, user: str = "U0ADA") -> str:
    """`/run TEXT` as `user`; what it was answered privately once the workers handled it."""
    trigger = f"t-{abs(hash((text, user))) % 10**8}-{len(slack.requests)}"
    assert command(bot, slack, text, user=user, trigger=trigger).status_code == 200
    settle(bot, timeout=120)
    return said(slack, trigger)


def clicked(bot, slack, button: dict, user: str) -> dict:
    """The button clicked by `user`; the private answer it got."""
    before = len(slack.responses("click"))
    assert click(bot, slack, button, user=user).status_code == 200
    settle(bot, timeout=120)
    answers = slack.responses("click")[before:]
    assert len(answers) == 1, answers
    return answers[0]


def test_a_merge_is_posted_in_the_repository_channel_then_updated_to_live(bot, fake, slack, scaler, bare):  # noqa: F811
    sha = merge(bot, fake, scaler, bare, {"scale.txt": "3"}, number=7)

    (deployment,) = deployments_of(bot.pipeline).recent()
    (message,) = slack.messages(NOTIFY)
    (posted,) = [c for c in slack.calls("chat.postMessage") if c.args["channel"] == NOTIFY]
    updates = slack.calls("chat.update")
    assert "Waiting for run" in text_of(posted.args)  # the merge commit had to run first
    assert updates and {u.args["ts"] for u in updates} == {message["ts"]}
    said_anew = [u.args["blocks"] != v.args["blocks"] for u, v in zip(updates, updates[1:], strict=False)]
    assert all(said_anew), "an update that says nothing new"
    text = text_of(message)
    assert f"🚀 *Deploy* of `{sha[:7]}` to *production* · `acme/models` · deployment {deployment.id}" in text
    assert f"✅ Live at <{deployment.url}|{deployment.url}>" in text
    assert (
        f"<{PUBLIC_URL}/reports/{deployment.comparison_id}?token=" in text and "asked by maintainer" in text
    )
    assert button_of(message)["value"] == str(deployment.id)
    assert predict(deployment.url, {"x": [1]}).json() == {"y": [3.0]}

    listed = ask(bot, slack, "deployments", user="U0BOB")  # reading takes read access only
    assert listed.startswith("*Deployments of `acme/models`*, newest first\n")
    assert f"✅ deployment {deployment.id} · *production* · `{sha[:7]}` · live · " in listed
    assert f"<{deployment.url}|{deployment.url}>" in listed


def test_a_failed_merge_says_why_and_bad_rollbacks_are_answered(bot, fake, slack, scaler, bare):  # noqa: F811
    merge(bot, fake, scaler, bare, {"scale.txt": "3"}, number=7)
    broken = merge(bot, fake, scaler, bare, {"serve.py": BROKEN_SERVE}, number=8)

    first, second = slack.messages(NOTIFY)
    assert "✅ Live at" in text_of(first) and button_of(first)
    assert "to *production*" in text_of(second) and f"`{broken[:7]}`" in text_of(second)
    assert "❌ Failed: the model server exited with code 3: tierbot model server: cannot" in text_of(second)
    assert "The version that was live keeps serving." in text_of(second)
    assert all(block["type"] != "actions" for block in second["blocks"])  # nothing to roll back there

    assert ask(bot, slack, "rollback") == (
        "no release to roll back to in production (live: "
        + deployments_of(bot.pipeline).live(REPO, "production").short_sha
        + "; kept: none)"
    )
    assert ask(bot, slack, "rollback producton") == (
        "`acme/models` has no environment `producton`. Did you mean `production`? Its environments: "
        "`production`."
    )
    assert ask(bot, slack, "rollback to deadbeef").startswith(
        "no release to deadbeef roll back to in production"
    )
    assert ask(bot, slack, "deployments staging") == (
        "`acme/models` has no environment `staging`. Its environments: `production`."
    )
    assert len(slack.messages(NOTIFY)) == 2  # nothing was rolled back, nothing new was said there
    queued, _ = request_deploy(bot.pipeline, REPO, "feature", Requester(name="test"), [])
    assert ask(bot, slack, "rollback") == (  # answered before a worker takes the deployment
        f"Deployment {queued.id} ({queued.short_sha}) is queued in production now; roll back once it has "
        "ended (`/run deployments production` shows how it went)."
    )


def test_rollback_by_button_and_by_command_for_those_allowed(bot, fake, slack, scaler, bare):  # noqa: F811
    first_sha = merge(bot, fake, scaler, bare, {"scale.txt": "3"}, number=7)
    second_sha = merge(bot, fake, scaler, bare, {"scale.txt": "4"}, number=8)
    first, second = slack.messages(NOTIFY)
    assert "💤 Retired: replaced by deployment 2" in text_of(first)
    assert all(block["type"] != "actions" for block in first["blocks"])  # only a live one rolls back
    live = deployments_of(bot.pipeline).live(REPO, "production")

    refused = clicked(bot, slack, button_of(second), user="U0BOB")
    assert refused["response_type"] == "ephemeral"
    assert refused["text"] == (
        "Deploying to production of `acme/models` is restricted to @U0ADA (deploy_access in the tiers "
        "file); nothing was rolled back."
    )
    assert deployments_of(bot.pipeline).live(REPO, "production").id == live.id
    assert slack.messages(NOTIFY)[1] == second  # nothing changed

    answer = clicked(bot, slack, button_of(second), user="U0ADA")
    rollback = deployments_of(bot.pipeline).live(REPO, "production")
    assert answer["text"] == (
        f"Rolling back *production* of `acme/models` to `{first_sha[:7]}` (deployment {rollback.id}). "
        f"Its message follows in <#{NOTIFY}>."
    )
    assert (rollback.kind, rollback.sha) == ("rollback", first_sha)
    assert predict(rollback.url, {"x": [1]}).json() == {"y": [3.0]}
    first, second, third = slack.messages(NOTIFY)
    assert f"💤 Retired: replaced by deployment {rollback.id} ({first_sha[:7]})" in text_of(second)
    assert f"↩️ *Rollback* of *production* to `{first_sha[:7]}`" in text_of(third)
    assert "✅ Live at" in text_of(third)
    assert button_of(third)["value"] == str(rollback.id)

    stale = clicked(bot, slack, button_of(third) | {"value": "1"}, user="U0ADA")  # an old view
    assert (
        stale["text"].startswith("Deployment 1 (")
        and "is no longer live in production (retired: " in stale["text"]
    )

    assert ask(
        bot, slack, f"rollback production to {second_sha[:10]} in acme/models", user="U0BOB"
    ).startswith("Deploying to production of `acme/models` is restricted to @U0ADA")
    assert ask(bot, slack, f"rollback to {second_sha[:10]}").startswith(
        f"Rolling back *production* of `acme/models` to `{second_sha[:7]}`"
    )
    forward = deployments_of(bot.pipeline).live(REPO, "production")
    assert (forward.kind, forward.sha) == ("rollback", second_sha)
    assert predict(forward.url, {"x": [1]}).json() == {"y": [4.0]}
    assert "✅ Live at" in text_of(slack.messages(NOTIFY)[-1])


def test_a_rollback_asked_in_slack_is_shown_where_it_was_asked(quiet_bot, fake, slack, scaler, bare):  # noqa: F811
    first_sha = merge(quiet_bot, fake, scaler, bare, {"scale.txt": "3"}, number=7)
    merge(quiet_bot, fake, scaler, bare, {"scale.txt": "4"}, number=8)
    assert slack.calls("chat.postMessage") == []  # no channel hears acme/models' merges

    answer = ask(quiet_bot, slack, "rollback production")
    rollback = deployments_of(quiet_bot.pipeline).live(REPO, "production")
    assert answer == (
        f"Rolling back *production* of `acme/models` to `{first_sha[:7]}` (deployment {rollback.id}). "
        f"Its message follows in <#{CHANNEL}>."
    )
    (message,) = slack.messages(CHANNEL)  # the rollback's alone: the release's own deployment is history
    assert f"↩️ *Rollback* of *production* to `{first_sha[:7]}`" in text_of(message)
    assert "✅ Live at" in text_of(message) and button_of(message)["value"] == str(rollback.id)
