"""What a GitHub webhook request gets, decided without HTTP (`bot.github.webhook.triage`); the same on
the wire: tests/github/test_webhook.py."""

import json

import pytest

from bot.github.signature import sign
from bot.github.webhook import triage

SECRET = "webhook-secret"


def headers(body: bytes, event: str | None = "pull_request", secret: str | None = SECRET, **more) -> dict:
    found = {"X-GitHub-Event": event, "X-GitHub-Delivery": "d-1", **more}
    if secret:
        found["X-Hub-Signature-256"] = sign(body, secret)
    return {k: v for k, v in found.items() if v is not None}


OPENED = json.dumps({"action": "opened", "number": 7}).encode()


@pytest.mark.parametrize(
    ("given", "secrets", "expected"),
    [
        (headers(OPENED), [], ("refused", 503)),
        (headers(OPENED, secret=None), [SECRET], ("refused", 401)),
        (headers(OPENED, secret="another"), [SECRET], ("refused", 403)),
        (headers(OPENED, event=None), [SECRET], ("malformed", 400)),
        (headers(OPENED, secret="old") | {"X-GitHub-Event": "issues"}, ["old", SECRET], ("ignored", 202)),
        (headers(OPENED), ["old", SECRET], ("record", 202)),
    ],
    ids=["no secret set", "unsigned", "bad signature", "no event", "unhandled event", "rotated secret"],
)
def test_requests_are_refused_before_anything_is_parsed_and_handled_events_recorded(given, secrets, expected):
    answer = triage(given, OPENED, secrets)
    assert (answer.result, answer.status) == expected
    if answer.result == "record":
        assert answer.delivery == ("d-1", "github", "pull_request", "opened", OPENED.decode())
    else:
        assert answer.delivery is None


@pytest.mark.parametrize(
    "body", [b"\xff\xfe", b"not json", b"[1, 2]"], ids=["not text", "not json", "a list"]
)
def test_a_signed_body_that_is_not_a_json_object_is_malformed(body):
    answer = triage(headers(body), body, [SECRET])
    assert (answer.result, answer.status, answer.delivery) == ("malformed", 400, None)


def test_ping_is_answered_with_pong():
    body = json.dumps({"zen": "Keep it logically awesome."}).encode()
    answer = triage(headers(body, event="ping"), body, [SECRET])
    assert (answer.result, answer.fields) == ("pong", {"zen": "Keep it logically awesome."})
