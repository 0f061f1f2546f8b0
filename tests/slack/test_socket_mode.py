"""The Slack door over Socket Mode: a running bot with an app-level token opens a websocket to the fake
Slack (no public URL), and slash commands, clicks and events pushed down it are acked and handled by the
same bolt app and pipeline as over HTTP."""

import json
import logging
import time
import uuid

import pytest
from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from bot import wiring
from bot.store import RunState

from ..fakes.fakeslack import FakeSlack
from ..fakes.fakeslack_socket import FakeSocketMode
from ..fakes.github_bot import Bot, settle
from ..fakes.slack_bot import CHANNEL, block_actions, posted_cancel_button, slack_settings


@pytest.fixture
def socket_mode(slack):
    with FakeSocketMode(slack) as running:
        yield running
        assert running.errors == []


@pytest.fixture
def bot(settings, hosted, tmp_path, slack, socket_mode):
    # An app token and no signing secret: Socket Mode alone.
    settings = slack_settings(settings, tmp_path, slack, slack_app_token=SecretStr(slack.app_token))
    running = Bot(wiring.pipeline(settings))  # its lifespan opens the link before the server starts
    yield running
    running.stop()


def slash_command(slack: FakeSlack, text: str, trigger: str | None = None) -> dict[str, str]:
    """The fields of a slash command, as Slack puts them in a `slash_commands` envelope's payload."""
    trigger = trigger or uuid.uuid4().hex
    return {
        "token": "deprecated-verification-token",
        "team_id": slack.team_id,
        "team_domain": "acme",
        "channel_id": CHANNEL,
        "channel_name": "ml-runs",
        "user_id": "U0BOB",
        "user_name": "bob",
        "command": "/run",
        "text": text,
        "api_app_id": "A0FAKE",
        "is_enterprise_install": "false",
        "response_url": slack.response_url(trigger),
        "trigger_id": trigger,
    }


def test_a_slash_command_is_acked_on_the_socket_then_ends_as_the_comparison(bot, slack, socket_mode, caplog):
    caplog.set_level(logging.INFO)
    socket_mode.link()
    (opened,) = slack.calls("apps.connections.open")  # on the bolt app's client: slack_api_url
    assert opened.status == 200 and opened.headers["authorization"] == f"Bearer {slack.app_token}"

    envelope_id = socket_mode.slash_command(slash_command(slack, "experiment better", trigger="t1"))
    text = "On it: `/run experiment better`. 0 runs are ahead on tier `local`. Its message follows here."
    assert socket_mode.ack(envelope_id) == {
        "envelope_id": envelope_id,
        "payload": {"response_type": "ephemeral", "text": text},
    }
    settle(bot)
    (message,) = slack.messages(CHANNEL)
    assert message["edits"] >= 2 and len(slack.calls("chat.postMessage")) == 1
    header = message["blocks"][0]["text"]["text"]
    assert "CHANGED" in header and "simple" in header
    head = bot.pipeline.run(1)
    assert (head.state, head.requested_by["slack_user"], head.ref) == (RunState.succeeded, "U0BOB", "better")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert bot.client.post("/slack/events", content="x").status_code == 404  # no public route needed


def test_a_wrong_app_token_stops_the_start_with_a_clear_error(settings, slack, socket_mode, capfd):
    settings = settings.model_copy(
        update={
            "slack_bot_token": SecretStr(slack.token),
            "slack_app_token": SecretStr("xapp-1-wrong"),
            "slack_api_url": slack.url + "/api/",
        }
    )
    with pytest.raises(RuntimeError, match="did not start"):
        Bot(wiring.pipeline(settings))
    logged = capfd.readouterr().err  # uvicorn's log of the failed startup
    assert "Slack refused TIERBOT_SLACK_APP_TOKEN for Socket Mode (invalid_auth)" in logged


def test_a_click_and_an_event_over_the_socket_are_acked_and_handled(bot, slack, socket_mode):
    socket_mode.ack(socket_mode.slash_command(slash_command(slack, "experiment better")))  # recorded
    click = block_actions(slack, posted_cancel_button(bot, slack))
    clicked = socket_mode.interactive(click)
    home = {"type": "app_home_opened", "user": "U0BOB", "channel": "D0BOB", "tab": "home", "event_ts": "1.2"}
    opened = socket_mode.event(home)
    assert socket_mode.ack(clicked) == {"envelope_id": clicked}  # an empty ack(): no payload
    assert socket_mode.ack(opened) == {"envelope_id": opened}
    settle(bot)
    assert bot.pipeline.run(1).state == RunState.cancelled
    assert "cancelled" in json.dumps(slack.messages(CHANNEL)[0]["blocks"])
    assert slack.home("U0BOB")["blocks"][0]["text"]["text"] == "Your recent runs"


def test_shutdown_closes_the_link_and_the_bot_stops_at_once(bot, slack, socket_mode, caplog):
    link = socket_mode.link()
    started = time.monotonic()
    bot.stop()
    assert not bot.loopback.thread.is_alive() and time.monotonic() - started < 8
    # slack_sdk's close() drops the TCP connection without a close frame: 1006, as Slack would see it
    assert socket_mode.closed(link) == 1006
    time.sleep(0.5)  # a client that reconnected would have asked for a new URL by now
    assert socket_mode.links == [link] and len(slack.calls("apps.connections.open")) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_when_slack_asks_for_a_refresh_the_bot_moves_to_a_new_link(bot, slack, socket_mode):
    old = socket_mode.refresh()
    new = socket_mode.link(after=old)
    assert socket_mode.closed(old) == 1006 and len(slack.calls("apps.connections.open")) == 2
    assert new.ticket != old.ticket
    envelope_id = socket_mode.slash_command(slash_command(slack, "help"))
    assert "/run experiment [BRANCH]" in socket_mode.ack(envelope_id)["payload"]["text"]


def test_apps_connections_open_wants_the_app_token_and_its_url_works_once(slack, socket_mode):
    web = WebClient(base_url=slack.url + "/api/")
    with pytest.raises(SlackApiError) as refused:
        web.apps_connections_open(app_token=slack.token)
    assert refused.value.response["error"] == "not_allowed_token_type"
    with pytest.raises(SlackApiError) as refused:
        web.auth_test(token=slack.app_token)
    assert refused.value.response["error"] == "not_allowed_token_type"

    url = web.apps_connections_open(app_token=slack.app_token)["url"]
    assert url.startswith(socket_mode.url + "?ticket=")
    with connect(url) as websocket:
        assert json.loads(websocket.recv(timeout=5))["type"] == "hello"
    with pytest.raises(InvalidStatus) as again:
        connect(url)
    assert again.value.response.status_code == 401
