"""Rate limits are waited out as GitHub and Slack ask: never sooner than `Retry-After` or the limit's
`x-ratelimit-reset`, in request handlers and report syncing alike, whether the client waits in-process
or gives up and the outbox tries again later.

Every gap is measured on the fakes' own records: when the retry arrived minus when the refusal was
answered. Outbox cases ask for 3 s, more than the outbox's own first backoff (2 s + jitter), so only
honouring the answer's headers explains a gap that long.
"""

import time
from email.utils import formatdate

import pytest
from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import wiring
from bot.retry import JITTER, MAX_BACKOFF_SECONDS, asked_wait, backoff
from bot.slack.retry import WaitAsAsked

from ..fakes.github_bot import REPO, Bot, comment, make_bot, open_pull, pull_request, settle
from ..fakes.slack_bot import SIGNING_SECRET, command, slack_settings

OUTBOX_ASKED = 3
CHECK_RUN = f"/repos/{REPO}/check-runs/*"
PULL = f"/repos/{REPO}/pulls/7"


def asked(refusal) -> float:
    """The seconds a recorded refusal asked for: its Retry-After, or until its rate limit's reset."""
    headers = refusal.response_headers
    if "retry-after" in headers:
        return float(headers["retry-after"])
    assert headers["x-ratelimit-remaining"] == "0"
    return float(headers["x-ratelimit-reset"]) - refusal.at


def retried(calls: list) -> tuple:
    """The first refusal among one endpoint's calls, the call that retried it, and the gap between."""
    refusal = next(c for c in calls if c.injected)
    retry = calls[calls.index(refusal) + 1]
    gap = retry.at - refusal.at
    print(f"{refusal.method} {refusal.path}: {refusal.status}, asked {asked(refusal):.3f} s, gap {gap:.3f} s")
    return refusal, retry, gap


def in_process(server, refusal, retry) -> bool:
    """The client itself retried: nothing else reached the server in between (the outbox would start
    the sync over)."""
    return server.requests.index(retry) == server.requests.index(refusal) + 1


@pytest.fixture
def make_github_bot(settings, hosted, tmp_path, fake):
    """Makes a bot whose GitHub client retries as in production (make_bot's does not), with these
    settings changed."""
    made: list[Bot] = []

    def make(**update) -> Bot:
        made.append(make_bot(settings, tmp_path, fake))
        for name, value in ({"github_retries": 3} | update).items():
            setattr(made[-1].pipeline.settings, name, value)
        return made[-1]

    yield make
    for bot in made:
        bot.stop()


@pytest.fixture
def make_slack_bot(settings, hosted, tmp_path, slack):
    """Makes a bot of the Slack door, with these settings changed."""
    made: list[Bot] = []

    def make(**update) -> Bot:
        door = slack_settings(settings, tmp_path, slack, slack_signing_secret=SecretStr(SIGNING_SECRET))
        made.append(Bot(wiring.pipeline(door.model_copy(update=update))))
        return made[-1]

    yield make
    for bot in made:
        bot.stop()


# -- the rule ---------------------------------------------------------------------------------------------


def test_a_wait_is_read_off_every_form_github_and_slack_answer_with():
    now = 1_800_000_000.0
    assert asked_wait({"Retry-After": "1"}, now) == 1.0
    assert asked_wait({"retry-after": ["2.5"]}, now) == 2.5  # slack_sdk's retry handlers see lists
    assert asked_wait({"Retry-After": formatdate(now + 30, usegmt=True)}, now) == 30.0
    assert asked_wait({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now) + 7)}, now) == 7.0
    assert asked_wait({"X-RateLimit-Remaining": "12", "X-RateLimit-Reset": str(int(now) + 7)}, now) is None
    assert asked_wait({"Retry-After": "soon"}, now) is None
    assert asked_wait({"Retry-After": "-5"}, now) == 0.0


def test_the_backoff_is_exponential_capped_never_sooner_than_asked_and_jittered_only_after():
    for failures, own in [(1, 2.0), (3, 8.0), (20, MAX_BACKOFF_SECONDS)]:
        delays = [backoff(failures) for _ in range(200)]
        assert own <= min(delays) and max(delays) <= own * (1 + JITTER) and len(set(delays)) > 1
    assert backoff(1, asked=3600) >= 3600  # an API may ask for longer than the cap


# -- waited out in-process --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["secondary", "429", "primary"])
def test_a_limit_while_syncing_a_report_is_waited_out_as_asked(make_github_bot, fake, simple_repo, kind):
    bot = make_github_bot()
    open_pull(fake, simple_repo)
    fake.rate_limit_next("PATCH", CHECK_RUN, kind=kind, retry_after=1)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    settle(bot)
    refusal, retry, gap = retried(fake.calls("PATCH", CHECK_RUN))
    assert (refusal.status, retry.status) == (429 if kind == "429" else 403, 200)
    assert in_process(fake, refusal, retry)
    assert gap >= asked(refusal) > 0  # a primary limit asks until its reset: now + 1 s, in whole seconds


def test_a_limit_in_a_request_handler_is_waited_out_no_sooner_than_asked(make_github_bot, fake, simple_repo):
    bot = make_github_bot()
    open_pull(fake, simple_repo)
    fake.rate_limit_next("GET", PULL, kind="secondary", retry_after=1)
    comment(bot, fake, "/run help")  # its handler reads the pull request first
    settle(bot)
    refusal, retry, gap = retried(fake.calls("GET", PULL))
    assert in_process(fake, refusal, retry) and retry.status == 200
    assert gap >= asked(refusal) == 1.0


@pytest.mark.parametrize("method", ["chat.postMessage", "chat.update"])
def test_a_slack_rate_limit_is_waited_out_no_sooner_than_asked(make_slack_bot, slack, method):
    bot = make_slack_bot()
    slack.rate_limit_next(method, retry_after=1)
    command(bot, slack, "experiment better")
    settle(bot)
    refusal, retry, gap = retried(slack.calls(method))
    assert (refusal.status, retry.status) == (429, 200)
    assert in_process(slack, refusal, retry)
    assert gap >= asked(refusal) == 1.0


def test_slack_asking_for_longer_than_the_longest_wait_is_not_waited_out(slack):
    client = WebClient(slack.token, base_url=slack.url + "/api/", retry_handlers=[WaitAsAsked(3, max_wait=1)])
    slack.rate_limit_next("chat.postMessage", retry_after=30)
    started = time.monotonic()
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="C1", text="hi")
    assert time.monotonic() - started < 1 and raised.value.response.headers["retry-after"] == "30"


# -- given up by the client, tried again by the outbox ----------------------------------------------------


@pytest.mark.parametrize(
    "method, path, update",
    [
        ("POST", f"/repos/{REPO}/check-runs", {}),  # a POST is never retried blindly
        ("PATCH", CHECK_RUN, {"github_retries": 0}),  # retries exhausted
        ("PATCH", CHECK_RUN, {"github_max_wait_seconds": 1.0}),  # longer than a client may wait
    ],
    ids=["post", "exhausted", "longer-than-max-wait"],
)
def test_the_outbox_syncs_again_no_sooner_than_asked(
    make_github_bot, fake, simple_repo, method, path, update
):
    bot = make_github_bot(**update)
    open_pull(fake, simple_repo)
    fake.rate_limit_next(method, path, kind="secondary", retry_after=OUTBOX_ASKED)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    settle(bot)
    refusal, retry, gap = retried(fake.calls(method, path))
    assert not in_process(fake, refusal, retry) and retry.status in (200, 201)
    assert gap >= asked(refusal) == OUTBOX_ASKED


def test_a_request_handler_given_up_on_is_handled_again_no_sooner_than_asked(
    make_github_bot, fake, simple_repo
):
    bot = make_github_bot(github_retries=0)
    open_pull(fake, simple_repo)
    fake.rate_limit_next("GET", PULL, kind="429", retry_after=OUTBOX_ASKED)
    comment(bot, fake, "/run help", delivery="limited")
    settle(bot)
    assert bot.pipeline.deliveries.get("limited").state == "done"
    refusal, retry, gap = retried(fake.calls("GET", PULL))
    assert gap >= asked(refusal) == OUTBOX_ASKED


@pytest.mark.parametrize("method", ["chat.postMessage", "usergroups.users.list"])  # a report; a handler's
def test_a_slack_limit_given_up_on_is_tried_again_no_sooner_than_asked(make_slack_bot, slack, method):
    bot = make_slack_bot(slack_retries=0)
    slack.rate_limit_next(method, retry_after=OUTBOX_ASKED)
    command(bot, slack, "experiment better")
    settle(bot)
    refusal, retry, gap = retried(slack.calls(method))
    assert retry.status == 200 and gap >= asked(refusal) == OUTBOX_ASKED
