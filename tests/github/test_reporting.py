"""The GitHub door's outbound side: PyGithub against a fake GitHub over HTTP (App mode unless said),
fed by really signed deliveries to a running `create_app`."""

import base64
import re
import time
from pathlib import Path

import pytest

from bot import wiring
from bot.errors import TierbotError
from bot.github.views import described_sha
from bot.store import RunState
from bot.worker import Worker

from ..fakes.github_bot import (
    INSTALLATION,
    REPO,
    heads,
    make_bot,
    open_pull,
    pull_request,
    settle,
    sha_of,
)


def test_open_gives_one_sticky_comment_and_a_completed_check_run(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"), delivery="d1")
    settle(bot)
    (comment,) = fake.comments_on(REPO, 7)
    assert comment.user.login == "tierbot[bot]"
    assert "<!-- tierbot:sticky experiment=simple tier=local -->" in comment.body
    assert described_sha(comment.body) == sha_of(simple_repo, "better")
    assert "CHANGED" in comment.body and "accuracy" in comment.body
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "better"))
    statuses = [h["status"] for h in check.history]
    assert statuses[0] == "queued" and "in_progress" in statuses and statuses[-1] == "completed"
    assert check.conclusion == "neutral" and check.name == "tierbot: simple (local)"
    assert check.output["title"].startswith("CHANGED")
    assert [a["identifier"] for a in check.actions] == ["rerun"]
    bot.deliver("pull_request", pull_request(simple_repo, "opened"), delivery="d1")  # redelivery
    settle(bot)
    assert len(fake.comments_on(REPO, 7)) == 1 and len(fake.checks_for(REPO, check.head_sha)) == 1


def test_the_same_event_under_new_delivery_ids_starts_nothing_new(bot, fake, simple_repo):
    """A proxy's retry or a replay brings the event under another id: one run, one check run per name."""
    open_pull(fake, simple_repo)
    for delivery in ("first", "retry-by-a-proxy", "replayed"):
        bot.deliver("pull_request", pull_request(simple_repo, "opened"), delivery=delivery)
        settle(bot)
    assert len(heads(bot)) == 1 and len(fake.comments_on(REPO, 7)) == 1
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "better"))
    assert check.conclusion == "neutral"
    outcome = bot.pipeline.deliveries.get("replayed").outcome
    assert outcome == f"nothing new: #7 @ {check.head_sha[:7]} already has run {heads(bot)[0].id}"
    bot.deliver("pull_request", pull_request(simple_repo, "reopened"), delivery="reopened")
    settle(bot)
    assert len(heads(bot)) == 1  # still the same commit: its run stands


def test_failing_verdict_fails_the_check(bot, fake, simple_repo):
    open_pull(fake, simple_repo, branch="worse")
    bot.deliver("pull_request", pull_request(simple_repo, "opened", branch="worse"))
    settle(bot)
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "worse"))
    assert check.conclusion == "failure" and "accuracy" in check.output["summary"]


def test_push_edits_the_same_comment_and_cancels_the_old_check(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    worker = Worker(bot.pipeline, runs=False)
    while worker.run_once():  # the delivery and the "queued" report, no run yet
        pass
    old_sha = sha_of(simple_repo, "better")
    assert [c.status for c in fake.checks_for(REPO, old_sha)] == ["queued"]
    simple_repo.git("checkout", "-q", "better")
    simple_repo.commit({"accuracy.txt": "0.97"}, "tune")
    simple_repo.git("push", "-q", bot.pipeline.settings.git_url_template.format(full_name=REPO), "better")
    fake.push(REPO, 7, sha_of(simple_repo, "better"))
    bot.deliver("pull_request", pull_request(simple_repo, "synchronize"))
    settle(bot)
    (old,) = fake.checks_for(REPO, old_sha)
    assert (old.status, old.conclusion) == ("completed", "cancelled")
    (comment,) = fake.comments_on(REPO, 7)
    assert comment.edits, "edited in place, not posted again"
    assert described_sha(comment.body) == sha_of(simple_repo, "better")
    assert "0.97" in comment.body


def test_a_502_that_hid_a_success_does_not_post_twice(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    fake.fail_next("POST", f"/repos/{REPO}/issues/7/comments", status=502, applied=True)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    settle(bot)
    assert [c.status for c in fake.calls("POST", f"/repos/{REPO}/issues/7/comments")] == [502]
    (comment,) = fake.comments_on(REPO, 7)
    assert "CHANGED" in comment.body  # found by its marker and edited when the retry came


def test_rate_limit_is_waited_out_and_nothing_is_lost(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    fake.rate_limit_next("POST", f"/repos/{REPO}/check-runs", kind="secondary", retry_after=1)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    settle(bot)
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "better"))
    assert check.status == "completed"
    assert [c.status for c in fake.calls("POST", f"/repos/{REPO}/check-runs")] == [403, 201]


def test_results_are_not_posted_for_a_commit_that_is_no_longer_the_head(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    fake.push(REPO, 7, "f" * 40)  # someone pushed; that delivery has not arrived yet
    settle(bot)
    assert fake.comments_on(REPO, 7) == []
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "better"))
    assert check.status == "completed"  # the check belongs to its own commit


def test_a_run_whose_worker_died_is_finalized(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    Worker(bot.pipeline, runs=False).run_once()  # the delivery: runs queued
    dead = bot.pipeline.queue.claim("dead-worker")
    assert dead is not None and dead.state == RunState.running
    time.sleep(bot.pipeline.settings.lease_seconds + 0.5)
    settle(bot)
    assert bot.pipeline.run(dead.id).state == RunState.succeeded
    assert all(c.status == "completed" for c in fake.checks_for(REPO, dead.sha))


def test_token_mode_posts_the_comment_without_check_runs(settings, hosted, tmp_path, fake, simple_repo):
    running = make_bot(settings, tmp_path, fake, app=False)
    try:
        open_pull(fake, simple_repo)
        running.deliver("pull_request", pull_request(simple_repo, "opened"))
        settle(running)
        (comment,) = fake.comments_on(REPO, 7)
        assert comment.user.login == fake.token_login and "CHANGED" in comment.body
        assert fake.calls("*", f"/repos/{REPO}/check-runs*") == []
    finally:
        running.stop()


def test_the_comment_links_the_full_report_served_by_the_bot(bot, fake, simple_repo):
    bot.pipeline.settings.public_url = bot.url + "/"
    open_pull(fake, simple_repo)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    settle(bot)
    (comment,) = fake.comments_on(REPO, 7)
    link = re.search(r"\[full report\]\((http://[^)]+)\)", comment.body).group(1)
    assert link.startswith(f"{bot.url}/reports/1?token=")
    page = bot.client.get(link)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "simple" in page.text and "accuracy" in page.text
    assert bot.client.get(f"{bot.url}/reports/1?token=0000").status_code == 404
    assert bot.client.get(f"{bot.url}/reports/2?token={link.rsplit('=', 1)[1]}").status_code == 404


@pytest.mark.parametrize("app", [True, False], ids=["app", "token"])
def test_code_is_fetched_from_github_with_a_token_that_is_not_kept(
    settings, hosted, tmp_path, fake, simple_repo, app
):
    fake.add_git(REPO, Path(hosted))
    running = make_bot(settings, tmp_path, fake, app=app, mirror=False)
    try:
        open_pull(fake, simple_repo)
        running.deliver("pull_request", pull_request(simple_repo, "opened"))
        settle(running)
        assert running.pipeline.run(1).state == RunState.succeeded
        fetches = fake.calls("GET", f"/{REPO}.git/*")
        assert fetches and {f.status for f in fetches} <= {200, 404}  # 404: objects git probes for
        user, _, token = (
            base64.b64decode(fetches[0].headers["authorization"].split()[1]).decode().partition(":")
        )
        assert user == "x-access-token" and fake.tokens[token].valid()
        assert (fake.tokens[token].installation_id == INSTALLATION) is app
        mirror = running.pipeline.code.mirror_of(REPO)
        assert token not in (mirror / "config").read_text()  # it travelled in the environment only
    finally:
        running.stop()


def test_without_credentials_a_private_repository_cannot_be_fetched(
    settings, hosted, tmp_path, fake, simple_repo
):
    fake.add_git(REPO, Path(hosted))
    pipeline = wiring.pipeline(settings.model_copy(update={"github_api_url": fake.url}))
    with pytest.raises(TierbotError, match="Cannot fetch"):
        pipeline.code.resolve(REPO, "main")
    assert [c.status for c in fake.calls("GET", f"/{REPO}.git/*")][:1] == [401]
