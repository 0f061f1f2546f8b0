"""The Slack door's harness (a pytest plugin, see tests/conftest.py): the fake Slack (fixture `slack`),
the bot of the Slack door over HTTP (fixture `slack_bot`; `bot` in tests/slack/), and requests signed
as Slack signs them: slash commands, button clicks, events.

The bot itself is tests/fakes/github_bot.py's `Bot`: one app, whichever door a request comes through.
"""

import json
import time
import uuid
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from bot import wiring
from bot.worker import Worker

from .fakeslack import FakeSlack
from .github_bot import Bot

SIGNING_SECRET = "slack-signing-secret"
CHANNEL = "C0RUNS"
TIERS = """\
tiers:
  - name: local
    default: true
  - name: gpu-small
    description: one small GPU
    access: {slack_groups: [S0ML]}
"""


@pytest.fixture
def slack():
    """The fake Slack, with the user group S0ML (Ada)."""
    with FakeSlack() as running:
        running.add_usergroup("S0ML", ["U0ADA"])  # TIERS' gpu-small group
        yield running
        assert running.errors == []


def slack_settings(settings, tmp_path, slack: FakeSlack, **slack_auth):
    """Settings of a bot that talks to the fake Slack, runs acme/models, and has a restricted tier."""
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text(TIERS)
    return settings.model_copy(
        update={
            "tiers_file": tiers,
            "git_url_template": f"file://{tmp_path}/git/{{full_name}}.git",
            "slack_bot_token": SecretStr(slack.token),
            "slack_api_url": slack.url + "/api/",
            "slack_default_repository": "acme/models",
            "slack_open_repositories": {"acme/models": "write"},  # see tests/slack/test_access.py
            **slack_auth,
        }
    )


@pytest.fixture
def slack_bot(settings, hosted, tmp_path, slack):
    """The bot of the Slack door over HTTP, running acme/models from `hosted`, answering on `slack`."""
    configured = slack_settings(settings, tmp_path, slack, slack_signing_secret=SecretStr(SIGNING_SECRET))
    running = Bot(wiring.pipeline(configured))
    yield running
    running.stop()


# -- what Slack sends -----------------------------------------------------------------------------------


def signed_post(
    bot: Bot, body: str, content_type: str, timestamp: float | None = None, headers: dict | None = None
) -> httpx.Response:
    """A request signed as Slack signs: v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")."""
    stamp = str(int(timestamp if timestamp is not None else time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
    headers = {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
        **(headers or {}),
    }
    return bot.client.post("/slack/events", content=body, headers=headers)


def post(bot: Bot, form: dict, **kw) -> httpx.Response:
    """A form-encoded request (slash commands, interactivity)."""
    return signed_post(bot, urlencode(form), "application/x-www-form-urlencoded", **kw)


def command(bot: Bot, slack: FakeSlack, text: str, user: str = "U0BOB", trigger: str | None = None, **kw):
    trigger = trigger or uuid.uuid4().hex
    form = {
        "token": "deprecated-verification-token",
        "team_id": slack.team_id,
        "team_domain": "acme",
        "channel_id": CHANNEL,
        "channel_name": "ml-runs",
        "user_id": user,
        "user_name": {"U0ADA": "ada", "U0BOB": "bob"}.get(user, "someone"),
        "command": "/run",
        "text": text,
        "api_app_id": "A0TIERBOT",
        "response_url": slack.response_url(trigger),
        "trigger_id": trigger,
    }
    return post(bot, form, **kw)


def block_actions(slack: FakeSlack, action: dict, user: str = "U0BOB") -> dict:
    """A button click or a menu choice, as Slack sends it."""
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "bob", "name": "bob", "team_id": slack.team_id},
        "api_app_id": "A0TIERBOT",
        "team": {"id": slack.team_id, "domain": "acme"},
        "channel": {"id": CHANNEL, "name": "ml-runs"},
        "container": {"type": "message", "channel_id": CHANNEL, "is_ephemeral": False},
        "trigger_id": uuid.uuid4().hex,
        "response_url": slack.response_url("click"),
        "actions": [{"action_ts": f"{time.time():.6f}", "block_id": "b", **action}],
    }


def click(bot: Bot, slack: FakeSlack, action: dict, user: str = "U0BOB") -> httpx.Response:
    return post(bot, {"payload": json.dumps(block_actions(slack, action, user))})


# -- what crossed to Slack ------------------------------------------------------------------------------


def said(slack: FakeSlack, trigger: str) -> str:
    return "\n".join(r.get("text", "") for r in slack.responses(trigger))


def posted_cancel_button(bot: Bot, slack: FakeSlack) -> dict:
    """Once a recorded command is handled (the message posted; nothing runs yet): its Cancel button."""
    door = Worker(bot.pipeline, runs=False)
    while door.run_once():
        pass
    (message,) = slack.messages(CHANNEL)
    cancel = message["blocks"][-1]["elements"][0]
    assert cancel["action_id"] == "tierbot_cancel"
    return {"action_id": "tierbot_cancel", "type": "button", "value": cancel["value"]}
