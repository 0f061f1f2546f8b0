"""FakeSlack behaves like slack.com for the real slack_sdk and slack_bolt: state, auth, limits and faults."""

import json
import time

import httpx
import pytest
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RateLimitErrorRetryHandler, default_retry_handlers
from slack_sdk.webhook import WebhookClient

from ..fakes.fakeslack import FakeSlack

CHANNEL = "C0RUNS"


@pytest.fixture
def fake():
    with FakeSlack() as running:
        yield running
        assert running.errors == []  # no request hit a bug in the fake itself


def client(fake: FakeSlack, **options) -> WebClient:
    return WebClient(token=fake.token, base_url=fake.url + "/api/", **options)


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def slack_error(call) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        call()
    return caught.value


# -- messages ---------------------------------------------------------------------------------------------


def test_a_message_is_posted_then_updated_in_place(fake):
    slack = client(fake)
    posted = slack.chat_postMessage(channel=CHANNEL, text="queued", blocks=[section("*queued*")])
    second = slack.chat_postMessage(channel=CHANNEL, text="other", thread_ts=posted["ts"])
    updated = slack.chat_update(channel=CHANNEL, ts=posted["ts"], text="running")

    assert posted["message"]["text"] == "queued" and posted["message"]["bot_id"] == fake.bot_id
    assert float(second["ts"]) > float(posted["ts"])
    assert updated["ts"] == posted["ts"] and updated["message"]["text"] == "running"
    message = fake.message(CHANNEL, posted["ts"])
    assert message["blocks"] == [section("*queued*")]  # left out of the update: kept, as Slack does
    assert message["edits"] == 1 and message["history"][0]["text"] == "queued"
    assert [m["thread_ts"] for m in fake.messages(CHANNEL)] == [None, posted["ts"]]
    assert [c.content_type for c in fake.calls("chat.*")] == ["application/json"] * 3


def test_updating_an_unknown_message_is_message_not_found(fake):
    error = slack_error(lambda: client(fake).chat_update(channel=CHANNEL, ts="1.000100", text="x"))
    assert error.response["error"] == "message_not_found" and error.response.status_code == 200


def test_an_ephemeral_is_stored_per_channel_and_user(fake):
    answer = client(fake).chat_postEphemeral(channel=CHANNEL, user="U1", text="only you")
    [ephemeral] = fake.ephemerals(CHANNEL)
    assert (ephemeral["user"], ephemeral["text"], ephemeral["ts"]) == ("U1", "only you", answer["message_ts"])
    assert fake.messages(CHANNEL) == []


def test_the_home_view_is_published_per_user(fake):
    view = {"type": "home", "blocks": [section("your runs")] * 100}
    published = client(fake).views_publish(user_id="U1", view=view)
    assert fake.home("U1")["blocks"] == view["blocks"] and published["view"]["id"] == fake.home("U1")["id"]
    too_many = {"type": "home", "blocks": [section("x")] * 101}
    error = slack_error(lambda: client(fake).views_publish(user_id="U1", view=too_many))
    assert error.response["error"] == "invalid_arguments"
    assert error.response["response_metadata"]["messages"] == [
        "[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]"
    ]


# -- limits -----------------------------------------------------------------------------------------------


def test_block_kit_limits_are_enforced(fake):
    slack = client(fake)
    error = slack_error(lambda: slack.chat_postMessage(channel=CHANNEL, text="t", blocks=[section("x")] * 51))
    assert error.response["error"] == "invalid_blocks"
    assert error.response["errors"] == ["no more than 50 items allowed [json-pointer:/blocks]"]

    error = slack_error(
        lambda: slack.chat_postMessage(channel=CHANNEL, text="t", blocks=[section("a" * 3001)])
    )
    assert error.response["errors"] == [
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
    ]

    slack.chat_postMessage(channel=CHANNEL, text="t", blocks=[section("a" * 3000)] * 50)
    assert len(fake.messages(CHANNEL)) == 1


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (
            {"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]},
            "invalid_blocks",
        ),
        (
            {"blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}]},
            "invalid_blocks",
        ),
        (
            {"blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}]},
            "invalid_blocks",
        ),
        ({"blocks": [{"type": "actions", "elements": [{"type": "button"}] * 26}]}, "invalid_blocks"),
        ({"blocks": [{"type": "divider", "block_id": "b" * 256}]}, "invalid_blocks"),
        ({"blocks": [{"type": "carousel"}]}, "invalid_blocks"),
        ({"text": "x" * 40_001}, "msg_too_long"),
        ({}, "no_text"),
    ],
)
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")  # slack_sdk's, for no_text
def test_what_slack_refuses(fake, arguments, error):
    arguments = {"text": "fallback"} | arguments if "blocks" in arguments else arguments
    refused = slack_error(lambda: client(fake).chat_postMessage(channel=CHANNEL, **arguments))
    assert refused.response["error"] == error
    assert fake.messages(CHANNEL) == []


# -- auth and encodings -----------------------------------------------------------------------------------


def test_a_missing_or_wrong_token_is_refused_with_http_200(fake):
    assert slack_error(lambda: WebClient(base_url=fake.url + "/api/").auth_test()).response.data == {
        "ok": False,
        "error": "not_authed",
    }
    wrong = WebClient(token="xoxb-wrong", base_url=fake.url + "/api/")
    error = slack_error(lambda: wrong.chat_postMessage(channel=CHANNEL, text="hi"))
    assert (error.response.status_code, error.response["error"]) == (200, "invalid_auth")
    assert client(fake).auth_test()["user_id"] == fake.bot_user_id


def test_form_encoded_and_json_bodies_are_both_read(fake):
    blocks = json.dumps([section("from a form")])
    client(fake).api_call("chat.postMessage", params={"channel": CHANNEL, "text": "form", "blocks": blocks})
    client(fake).chat_postMessage(channel=CHANNEL, text="json")
    body = {"token": fake.token, "channel": CHANNEL, "text": "token in the form"}
    assert httpx.post(fake.url + "/api/chat.postMessage", data=body).json()["ok"] is True

    assert [m["text"] for m in fake.messages(CHANNEL)] == ["form", "json", "token in the form"]
    assert fake.messages(CHANNEL)[0]["blocks"] == [section("from a form")]
    kinds = [c.content_type for c in fake.calls("chat.postMessage")]
    assert kinds == [
        "application/x-www-form-urlencoded",
        "application/json",
        "application/x-www-form-urlencoded",
    ]


def test_users_groups_and_unknown_methods(fake):
    fake.add_user("U1", name="ada", email="ada@example.com")
    fake.add_usergroup("S123", ["U1", "U2"])
    slack = client(fake)
    assert slack.users_info(user="U1")["user"]["profile"]["email"] == "ada@example.com"
    assert slack.usergroups_users_list(usergroup="S123")["users"] == ["U1", "U2"]
    assert slack_error(lambda: slack.users_info(user="U9")).response["error"] == "user_not_found"
    assert (
        slack_error(lambda: slack.usergroups_users_list(usergroup="S9")).response["error"]
        == "no_such_subteam"
    )
    assert slack_error(lambda: slack.api_call("chat.fly")).response["error"] == "unknown_method"


def test_bolt_verifies_its_token_with_auth_test(fake):
    App(client=client(fake), signing_secret="secret")
    assert [c.status for c in fake.calls("auth.test")] == [200]


# -- faults -----------------------------------------------------------------------------------------------


def test_a_rate_limit_is_retried_after_retry_after_by_the_opt_in_handler(fake):
    fake.rate_limit_next("chat.postMessage", retry_after=1)
    slack = client(fake, retry_handlers=default_retry_handlers() + [RateLimitErrorRetryHandler()])
    started = time.monotonic()
    slack.chat_postMessage(channel=CHANNEL, text="once")
    assert time.monotonic() - started >= 1
    assert len(fake.messages(CHANNEL)) == 1
    calls = fake.calls("chat.postMessage")
    assert [(c.status, c.injected) for c in calls] == [(429, True), (200, False)]


def test_by_default_a_rate_limit_surfaces_at_once(fake):
    fake.rate_limit_next("chat.postMessage", retry_after=30)
    error = slack_error(lambda: client(fake).chat_postMessage(channel=CHANNEL, text="hi"))
    assert (error.response.status_code, error.response["error"]) == (429, "ratelimited")
    assert error.response.headers["Retry-After"] == "30"


def test_a_failure_can_hide_a_success(fake):
    fake.fail_next("chat.postMessage", status=500, applied=True)
    error = slack_error(lambda: client(fake).chat_postMessage(channel=CHANNEL, text="hi"))
    assert (error.response.status_code, error.response["error"]) == (500, "internal_error")
    assert len(fake.messages(CHANNEL)) == 1 and fake.calls()[0].injected


# -- response_url -----------------------------------------------------------------------------------------


def test_a_response_url_records_what_is_posted_to_it(fake):
    url = fake.response_url("run-7")
    answer = httpx.post(url, json={"text": "queued", "response_type": "ephemeral"})
    assert (answer.status_code, answer.text) == (200, "ok")
    sent = WebhookClient(url).send(text="done", replace_original=True, blocks=[section("*done*")])
    assert (sent.status_code, sent.body) == (200, "ok")
    refused = WebhookClient(url).send(text="t", blocks=[section("x")] * 51)
    assert (refused.status_code, refused.body) == (400, "invalid_blocks")

    assert fake.responses("run-7") == [
        {"text": "queued", "response_type": "ephemeral"},
        {"text": "done", "replace_original": True, "blocks": [section("*done*")]},
    ]
    assert [c.status for c in fake.calls("response_url")] == [200, 200, 400]
