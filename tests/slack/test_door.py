"""The Slack door on the wire: really signed slash commands and button clicks to a running bot (the
real slack-bolt app), answered through the real slack_sdk against the fake Slack Web API."""

import json
import threading
import time

import httpx
from pydantic import SecretStr

from bot.store import Delivery, Run, RunState
from bot.worker import Worker

from ..conftest import SIMPLE_SPEC
from ..fakes.fakegithub import FakeGitHub
from ..fakes.github_bot import SECRET, Bot, count, pull_request, settle, sha_of
from ..fakes.slack_bot import CHANNEL, click, command, posted_cancel_button, said, signed_post


def test_help_is_answered_at_once_and_privately(bot, slack):
    answer = command(bot, slack, "help")
    assert answer.status_code == 200
    assert (
        answer.json()["response_type"] == "ephemeral" and "/run experiment [BRANCH]" in answer.json()["text"]
    )
    bad = command(bot, slack, "experimnet better")
    assert "Did you mean `experiment`?" in bad.json()["text"]
    assert count(bot.pipeline, Delivery) == 0


def test_experiment_ends_as_one_updated_message_with_the_comparison(bot, slack):
    answer = command(bot, slack, "experiment better", trigger="t1")
    assert answer.status_code == 200
    assert (
        answer.json()["text"]
        == "On it: `/run experiment better`. 0 runs are ahead on tier `local`. Its message follows here."
    )
    settle(bot)
    (message,) = slack.messages(CHANNEL)
    assert message["edits"] >= 2  # queued → running → … → the comparison, in place
    assert len(slack.calls("chat.postMessage")) == 1
    header = message["blocks"][0]["text"]["text"]
    assert "CHANGED" in header and "simple" in header
    buttons = message["blocks"][-1]
    assert [e["action_id"] for e in buttons["elements"]] == ["tierbot_rerun", "tierbot_logs"]
    assert [o["value"] for o in buttons["elements"][0]["options"]] == ["1:local", "1:gpu-small"]
    head = bot.pipeline.run(1)
    assert (head.state, head.requested_by["slack_user"], head.ref) == (RunState.succeeded, "U0BOB", "better")


def test_unknown_and_forbidden_tiers_are_refused_privately_with_what_exists(bot, slack):
    command(bot, slack, "experiment better on gpu-smal", trigger="unknown")
    command(bot, slack, "experiment better on gpu-small", trigger="forbidden")
    command(bot, slack, "experiment bettr", trigger="branch")
    settle(bot)
    assert "There is no branch, tag or commit 'bettr' in acme/models. Did you mean 'better'?" in said(
        slack, "branch"
    )
    assert "There is no tier 'gpu-smal'. Did you mean gpu-small? Tiers you may use: local." in said(
        slack, "unknown"
    )
    assert "restricted to group S0ML" in said(slack, "forbidden")
    assert all(r["response_type"] == "ephemeral" for r in slack.responses("forbidden"))
    assert count(bot.pipeline, Run) == 0 and slack.messages(CHANNEL) == []


def test_a_member_of_the_tiers_group_may_use_it(bot, slack):
    command(bot, slack, "experiment better on gpu-small", user="U0ADA")
    settle(bot)
    assert bot.pipeline.run(1).tier == "gpu-small"
    assert bot.pipeline.run(1).requested_by["slack_groups"] == ["S0ML"]


def test_slacks_retries_start_one_run(bot, slack):
    command(bot, slack, "experiment better", trigger="same")
    again = command(bot, slack, "experiment better", trigger="same", headers={"X-Slack-Retry-Num": "1"})
    assert again.json()["text"].startswith("Already on it")
    settle(bot)
    assert count(bot.pipeline, Run, Run.role == "head") == 1 and len(slack.messages(CHANNEL)) == 1


def test_an_experiment_asked_for_runs_again_though_its_tree_ran_before(bot, slack):
    """`/run experiment` is an explicit request: it never takes an earlier run's outcome (`bot.reuse`)."""
    command(bot, slack, "experiment better", trigger="first")
    settle(bot)
    command(bot, slack, "experiment better", trigger="second")
    settle(bot)
    heads = [r for r in reversed(bot.pipeline.recent_runs(10)) if r.role == "head"]
    assert [(r.state, r.reused_run_id, r.attempts) for r in heads] == [(RunState.succeeded, None, 1)] * 2


def test_cancel_button_cancels_and_the_message_says_so(bot, slack):
    command(bot, slack, "experiment better")
    button = posted_cancel_button(bot, slack)
    assert click(bot, slack, button, user="U0ADA").status_code == 200  # not Ada's run
    for _ in range(2):  # a double click
        assert click(bot, slack, button).status_code == 200
    settle(bot)
    assert "Run 1 is bob's; only they can cancel it." in said(slack, "click")
    assert bot.pipeline.run(1).state == RunState.cancelled
    (message,) = slack.messages(CHANNEL)
    assert "cancelled" in json.dumps(message["blocks"])
    assert count(bot.pipeline, Delivery, Delivery.event == "action") == 2  # Ada's, and Bob's double click


def test_stale_or_unsigned_requests_are_refused(bot, slack):
    stale = command(bot, slack, "experiment better", timestamp=time.time() - 6 * 60)
    assert stale.status_code == 401
    forged = bot.client.post("/slack/events", content="text=help", headers={"X-Slack-Signature": "v0=00"})
    assert forged.status_code == 401
    assert count(bot.pipeline, Delivery) == 0


def test_a_rate_limited_post_is_retried_and_posted_once(bot, slack):
    slack.rate_limit_next("chat.postMessage", retry_after=1)
    command(bot, slack, "experiment better")
    settle(bot)
    assert len(slack.messages(CHANNEL)) == 1
    assert [c.status for c in slack.calls("chat.postMessage")] == [429, 200]


def test_the_message_shows_the_running_runs_last_log_line(bot, slack, simple_repo, hosted):
    slow = "\n".join(
        [
            "import time",
            "for step in (1, 2):",
            "    print('training step', step, flush=True)",
            "    time.sleep(1.5)",
        ]
    )
    simple_repo.git("checkout", "-q", "-b", "slow", "better")
    simple_repo.commit(
        {
            "slow.py": slow,
            "tierbot.yaml": SIMPLE_SPEC.replace("python make.py", "python slow.py && python make.py"),
        },
        "slow",
    )
    simple_repo.git("push", "-q", hosted, "slow")
    bot.pipeline.settings.progress_seconds = 0.2
    stop = threading.Event()
    door = threading.Thread(target=Worker(bot.pipeline, runs=False).run_forever, args=(stop,))
    door.start()  # keeps the message up to date while the run below executes
    try:
        command(bot, slack, "experiment slow")
        settle(bot)
    finally:
        stop.set()
        door.join()
    (message,) = slack.messages(CHANNEL)
    shown = [json.dumps(version["blocks"]) for version in message["history"]]
    assert any("`training step 1`" in text for text in shown)


def event(bot: Bot, body: dict) -> httpx.Response:
    """An Events API request (JSON)."""
    return signed_post(bot, json.dumps(body), "application/json")


def test_status_and_the_app_home_list_the_users_runs(bot, slack):
    bot.pipeline.settings.public_url = bot.url
    command(bot, slack, "status", trigger="empty")
    command(bot, slack, "experiment better")
    settle(bot)
    command(bot, slack, "status", trigger="mine")
    home = {
        "type": "event_callback",
        "team_id": slack.team_id,
        "api_app_id": "A0TIERBOT",
        "event": {
            "type": "app_home_opened",
            "user": "U0BOB",
            "channel": "D0BOB",
            "tab": "home",
            "event_ts": "1.2",
        },
        "event_id": "Ev0HOME",
        "event_time": int(time.time()),
    }
    assert event(bot, home).status_code == 200
    assert event(bot, home).status_code == 200  # Slack's retry of the same event: published once
    settle(bot)
    assert "No runs yet" in said(slack, "empty")
    assert "✅ run 1 · *simple* · `better @ " in said(slack, "mine")
    view = slack.home("U0BOB")
    assert view["blocks"][0]["text"]["text"] == "Your recent runs"
    line = view["blocks"][1]["text"]["text"]
    assert "run 1" in line and " · CHANGED · <" in line and len(slack.calls("views.publish")) == 1
    report = line.split("<", 1)[1].split("|", 1)[0]
    assert report.startswith(f"{bot.url}/reports/1?token=") and bot.client.get(report).status_code == 200


def test_pull_request_verdicts_reach_the_repositorys_channel(bot, slack, simple_repo):
    with FakeGitHub() as github:
        github.add_repo("acme/models", installation_id=1001)
        github.add_pull("acme/models", 7, head_sha=sha_of(simple_repo, "better"), head_ref="better")
        settings = bot.pipeline.settings
        settings.slack_notify = {"acme/models": "C0NOTIFY"}
        settings.github_webhook_secret = SecretStr(SECRET)
        settings.github_api_url, settings.github_token = github.url, SecretStr(github.token)
        bot.deliver("pull_request", pull_request(simple_repo, "opened"))
        settle(bot)
    (message,) = slack.messages("C0NOTIFY")
    assert "CHANGED" in message["blocks"][0]["text"]["text"]
    assert "simple" in message["text"]


def test_a_failed_update_is_retried_as_an_update_never_reposted(bot, slack):
    slack.fail_next("chat.update", error="internal_error", status=500, times=5)
    command(bot, slack, "experiment better")
    settle(bot)
    (message,) = slack.messages(CHANNEL)
    assert "CHANGED" in message["blocks"][0]["text"]["text"]
    assert len(slack.calls("chat.postMessage")) == 1
    assert [c.status for c in slack.calls("chat.update")].count(500) == 5


def test_a_branch_with_a_pull_request_reports_to_it_too(bot, slack, simple_repo):
    with FakeGitHub() as github:
        github.add_repo("acme/models", installation_id=1001)
        github.add_pull("acme/models", 7, head_sha=sha_of(simple_repo, "better"), head_ref="better")
        settings = bot.pipeline.settings
        settings.github_api_url, settings.github_app_id = github.url, github.app_id
        settings.github_private_key = SecretStr(github.app_private_key_pem)
        command(bot, slack, "experiment better")
        settle(bot)
        (sticky,) = github.comments_on("acme/models", 7)
        (check,) = github.checks_for("acme/models", sha_of(simple_repo, "better"))
    assert "CHANGED" in sticky.body and check.conclusion == "neutral"
    (message,) = slack.messages(CHANNEL)
    link = f"<{github.url}/acme/models/pull/7|acme/models#7>"
    assert any(link in json.dumps(block) for block in message["blocks"])
    assert bot.pipeline.run(1).subject == "github:acme/models#7"  # a push to the PR supersedes it
