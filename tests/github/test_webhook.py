"""The GitHub door's inbound side, on the wire: a real uvicorn server on loopback, really signed
deliveries shaped like GitHub's, repositories served from local bare repos (TIERBOT_GIT_URL_TEMPLATE)."""

import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bot import inbox, wiring
from bot.github.signature import sign
from bot.store import Delivery, Run, RunState
from bot.worker import Worker

from ..fakes.github_bot import SECRET, Bot, count, pull_request, sha_of

OLD_SECRET = "s3cret-previous"


@pytest.fixture
def bot(settings, hosted, tmp_path: Path):
    """Here the bot has no GitHub credentials (nothing is reported back) and two webhook secrets."""
    settings = settings.model_copy(
        update={
            "git_url_template": f"file://{tmp_path}/git/{{full_name}}.git",
            "github_webhook_secret": SecretStr(f"{SECRET}, {OLD_SECRET}"),
        }
    )
    running = Bot(wiring.pipeline(settings))
    yield running
    running.stop()


def test_opened_pull_request_queues_and_completes_a_comparison(bot, simple_repo):
    answer = bot.deliver("pull_request", pull_request(simple_repo, "opened"), delivery="d-1")
    assert answer.status_code == 202 and answer.json() == {"result": "queued", "delivery": "d-1"}
    assert count(bot.pipeline, Run) == 0  # nothing slow happens inside the request
    bot.drain()
    delivery = bot.pipeline.deliveries.get("d-1")
    assert delivery.state == "done" and delivery.outcome.startswith("queued run 1 for #7")
    head = bot.pipeline.run(1)
    assert (head.state, head.subject, head.sha) == (
        RunState.succeeded,
        "github:acme/models#7",
        sha_of(simple_repo, "better"),
    )
    assert head.report_to == [
        {
            "github": {
                "repository": "acme/models",
                "pull_request": 7,
                "head_sha": head.sha,
                "installation": 1001,
                "url": "https://github.com/acme/models/pull/7",
                "gating": True,
            }
        }
    ]
    assert head.requested_by["github_login"] == "octocat"
    assert count(bot.pipeline, Run, Run.role == "baseline", Run.state == RunState.succeeded) == 1


def test_redelivery_starts_nothing_new(bot, simple_repo):
    payload = pull_request(simple_repo, "opened")
    assert bot.deliver("pull_request", payload, delivery="same").status_code == 202
    again = bot.deliver("pull_request", payload, delivery="same")
    assert again.status_code == 200 and again.json()["result"] == "duplicate"
    bot.drain()
    assert bot.deliver("pull_request", payload, delivery="same").json()["result"] == "duplicate"
    bot.drain()
    assert count(bot.pipeline, Run, Run.role == "head") == 1


def test_push_cancels_the_superseded_run_and_close_cancels_the_rest(bot, simple_repo):
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    worker = Worker(bot.pipeline)
    worker.handle_delivery()  # queued, not yet run
    first = bot.pipeline.recent_runs()[-1]
    simple_repo.git("checkout", "-q", "better")
    simple_repo.commit({"accuracy.txt": "0.97"}, "tune")
    subprocess.run(
        [
            "git",
            "-C",
            str(simple_repo.path),
            "push",
            "-q",
            bot.pipeline.settings.git_url_template.format(full_name="acme/models"),
            "better",
        ],
        check=True,
    )
    bot.deliver("pull_request", pull_request(simple_repo, "synchronize"))
    worker.handle_delivery()
    assert bot.pipeline.run(first.id).state == RunState.cancelled
    assert "superseded" in bot.pipeline.run(first.id).reason
    latest = [r for r in bot.pipeline.recent_runs() if r.role == "head"][0]
    assert latest.sha == sha_of(simple_repo, "better") and latest.state == RunState.queued
    bot.deliver("pull_request", pull_request(simple_repo, "closed"))
    worker.handle_delivery()
    assert bot.pipeline.run(latest.id).state == RunState.cancelled


def test_drafts_run_nothing_and_forks_wait_for_approval(forks_bot, simple_repo):
    bot = forks_bot
    bot.deliver("pull_request", pull_request(simple_repo, "opened", draft=True), delivery="draft")
    assert bot.pipeline.deliveries.get("draft") is not None
    bot.drain()
    assert count(bot.pipeline, Run) == 0
    assert "draft" in bot.pipeline.deliveries.get("draft").outcome
    bot.deliver("pull_request", pull_request(simple_repo, "opened", fork=True, number=8), delivery="fork")
    bot.drain()
    assert "waiting for approval" in bot.pipeline.deliveries.get("fork").outcome
    (head,) = [r for r in bot.pipeline.recent_runs() if r.role == "head"]
    assert (head.state, head.trusted, head.started_at) == (RunState.waiting, False, None)
    (base,) = [r for r in bot.pipeline.recent_runs() if r.role == "baseline"]
    assert (base.state, base.trusted) == (RunState.succeeded, True)  # main's own code needs no approval


def test_bad_signatures_are_refused_without_side_effects(bot, simple_repo):
    payload = pull_request(simple_repo, "opened")
    assert bot.deliver("pull_request", payload, secret=None).status_code == 401
    assert bot.deliver("pull_request", payload, secret="wrong").status_code == 403
    tampered = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": "t",
        "X-Hub-Signature-256": sign(tampered, SECRET),
    }
    assert bot.client.post("/github/webhook", content=tampered + b" ", headers=headers).status_code == 403
    assert count(bot.pipeline, Delivery) == 0
    assert bot.deliver("pull_request", payload, secret=OLD_SECRET).status_code == 202  # rotation


def test_concurrent_deliveries_beyond_one_batch_each_answered_once(bot, simple_repo, monkeypatch):
    """More deliveries at once than one transaction takes: every one is recorded once and answered."""
    monkeypatch.setattr(inbox, "MAX_BATCH", 3)
    ids = [f"burst-{n}" for n in range(30)] + [f"burst-{n}" for n in range(0, 30, 5)]  # 6 sent twice
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda i: bot.deliver("pull_request", pull_request(simple_repo, "opened"), i), ids)
        )
    results = {}
    for delivery_id, answer in zip(ids, answers, strict=True):
        results.setdefault(delivery_id, []).append((answer.status_code, answer.json()["result"]))
    assert all(sorted(r) == [(202, "queued")] for i, r in results.items() if int(i.split("-")[1]) % 5)
    assert all(
        sorted(r) == [(200, "duplicate"), (202, "queued")]
        for i, r in results.items()
        if not int(i.split("-")[1]) % 5
    )
    with bot.pipeline.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Delivery)) == 30


def test_malformed_and_unknown_deliveries(bot, simple_repo):
    assert bot.deliver("pull_request", {}, body=b"{not json").status_code == 400
    assert bot.deliver("pull_request", {}, body=b"[1, 2]").status_code == 400
    assert bot.deliver("pull_request", {}, body=b'{"action": "opened\xff"}').status_code == 400  # not UTF-8
    ignored = bot.deliver("pull_request", pull_request(simple_repo, "labeled"))
    assert ignored.status_code == 202 and ignored.json()["result"] == "ignored"
    assert bot.deliver("star", {"action": "created"}).json()["result"] == "ignored"
    assert bot.deliver("ping", {"zen": "Keep it simple."}).json() == {
        "result": "pong",
        "zen": "Keep it simple.",
    }
    assert count(bot.pipeline, Delivery) == 0


def test_a_broken_payload_fails_its_delivery_not_the_worker(bot):
    assert bot.deliver("pull_request", {"action": "opened"}, delivery="broken").status_code == 202
    bot.drain()
    delivery = bot.pipeline.deliveries.get("broken")
    assert delivery.state == "failed" and "KeyError" in delivery.outcome


def test_unconfigured_secret_refuses_everything(settings):
    running = Bot(wiring.pipeline(settings))
    try:
        answer = running.deliver("pull_request", {"action": "opened"})
        assert answer.status_code == 503 and "TIERBOT_GITHUB_WEBHOOK_SECRET" in answer.json()["detail"]
    finally:
        running.stop()


def test_health_and_metrics(bot, simple_repo):
    assert bot.client.get("/healthz").json()["status"] == "ok"
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    bot.deliver("pull_request", pull_request(simple_repo, "opened"), secret="wrong")
    bot.drain()
    metrics = bot.client.get("/metrics").text
    assert 'tierbot_webhook_deliveries_total{result="queued",source="github"} 1.0' in metrics
    assert 'tierbot_webhook_deliveries_total{result="refused",source="github"} 1.0' in metrics
    assert 'tierbot_runs{state="succeeded"} 2.0' in metrics


def test_serve_with_workers_and_replay(settings, hosted, simple_repo, tmp_path):
    """The in-process workers pick up a delivery sent by `tierbot replay`."""
    settings = settings.model_copy(
        update={
            "git_url_template": f"file://{tmp_path}/git/{{full_name}}.git",
            "github_webhook_secret": SecretStr(SECRET),
        }
    )
    running = Bot(wiring.pipeline(settings), workers=1)
    try:
        payload_file = tmp_path / "opened.json"
        payload_file.write_text(json.dumps(pull_request(simple_repo, "opened")))
        env = {
            "PATH": "/usr/bin:/bin",
            "TIERBOT_GITHUB_WEBHOOK_SECRET": SECRET,
            "TIERBOT_DATA_DIR": str(tmp_path / "unused"),
        }
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot",
                "replay",
                str(payload_file),
                "--event",
                "pull_request",
                "--url",
                f"{running.url}/github/webhook",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("202 ")
        deadline = time.monotonic() + 60
        while count(running.pipeline, Run, Run.state == RunState.succeeded) < 2:
            assert time.monotonic() < deadline, "the in-process worker did not run the PR"
            time.sleep(0.1)
    finally:
        running.stop()


def test_show_tells_when_a_run_could_not_be_reported(bot, simple_repo, settings):
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    bot.drain()  # the run ends; its report to GitHub fails: no credentials are configured
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
    env |= {"TIERBOT_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}
    shown = subprocess.run(
        [sys.executable, "-m", "bot", "show", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    behind = r"reported to github: behind \(\d+ failed attempts: TierbotError: No GitHub credentials"
    assert re.search(behind, shown.stdout), shown.stdout
