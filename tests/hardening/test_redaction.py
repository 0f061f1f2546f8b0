"""Secrets never leave: a leaky experiment prints every kind of credential (and the bot's own secrets) on
main and on its branches; nothing of them crosses to the fake GitHub or the fake Slack, while an
ordinary line beside them does. The redactor itself, on plain text: tests/core/test_redact.py."""

import json
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot import wiring
from bot.worker import Worker

from ..conftest import GitRepo
from ..fakes.fakegithub import FakeGitHub
from ..fakes.fakeslack import FakeSlack
from ..fakes.github_bot import REPO, SECRET, Bot, pull_request, settle, sha_of
from ..fakes.slack_bot import SIGNING_SECRET, click, command

LEAKY = """\
import json, os, pathlib, sys, time
v = open("variant.txt").read().strip()
key_line = open("key_line.txt").read().strip()
lines = [
    "GITHUB_TOKEN=ghp_" + v * 36,
    "git clone https://x-access-token:ghs_" + v * 36 + "@github.com/acme/models.git",
    "AWS_ACCESS_KEY_ID=AKIA" + v.upper() * 16,
    "aws_secret_access_key = " + v * 40,
    "curl -H 'Authorization: token gho_" + v * 36 + "'",
    "slack said xoxb-1234-" + v * 24,
    v + " the webhook secret is " + os.environ.get("LEAK", "%(webhook)s"),
    v + " and the signing secret %(signing)s",
    v + " a line of the App's key: " + key_line,
    "-----BEGIN RSA PRIVATE KEY-----",
    "MIIEow" + v * 58,
    "-----END RSA PRIVATE KEY-----",
    "ordinary line: variant " + v,
]
out = pathlib.Path("out")
out.mkdir(exist_ok=True)
(out / "log.txt").write_text("\\n".join(lines) + "\\n")
(out / "metrics.json").write_text(json.dumps({"accuracy": 0.9}))
for line in lines:
    print(line, flush=True)
    time.sleep(0.15)
sys.exit(1 if os.path.exists("crash") else 0)
"""
SPEC = """\
name: leaky
run:
  command: python leaky.py
  outputs: out
"""


def secrets_of(variant: str, key_line: str) -> list[str]:
    """What must never cross: every credential the experiment printed, in a form no escaping hides."""
    return [variant * 20, variant.upper() * 16, SECRET, SIGNING_SECRET, key_line, "x-access-token"]


@pytest.fixture
def leaky(tmp_path: Path, fake: FakeGitHub) -> tuple[GitRepo, str]:
    """acme/models: main (variant a) and branches `leaky` (b, succeeds) and `crashy` (c, exits 1)."""
    key_line = fake.app_private_key_pem.splitlines()[5]
    script = LEAKY % {"webhook": SECRET, "signing": SIGNING_SECRET}
    repo = GitRepo(tmp_path / "repo")
    base = {"tierbot.yaml": SPEC, "leaky.py": script, "key_line.txt": key_line, "variant.txt": "a"}
    repo.commit(base, "main")
    for branch, variant, extra in (("leaky", "b", {}), ("crashy", "c", {"crash": ""})):
        repo.branch(branch)
        repo.commit({"variant.txt": variant, **extra}, branch)
        repo.git("checkout", "-q", "main")
    bare = tmp_path / "git" / "acme" / "models.git"
    bare.parent.mkdir(parents=True)
    repo.git("clone", "-q", "--bare", str(repo.path), str(bare))
    return repo, key_line


@pytest.fixture
def slack():
    with FakeSlack() as running:
        yield running
        assert running.errors == []


@pytest.fixture
def bot(settings, tmp_path, fake, slack):
    settings = settings.model_copy(
        update={
            "git_url_template": f"file://{tmp_path}/git/{{full_name}}.git",
            "github_webhook_secret": SecretStr(SECRET),
            "github_api_url": fake.url,
            "github_app_id": fake.app_id,
            "github_private_key": SecretStr(fake.app_private_key_pem),
            "github_retries": 0,
            "slack_bot_token": SecretStr(slack.token),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_api_url": slack.url + "/api/",
            "slack_default_repository": REPO,
            "slack_open_repositories": {REPO: "write"},
            "public_url": "http://tierbot.test",
            "progress_seconds": 0.2,
            "lease_seconds": 0.6,  # a heartbeat every 0.2 s: the running log line reaches the doors
        }
    )
    running = Bot(wiring.pipeline(settings))
    yield running
    running.stop()


def crossed(fake: FakeGitHub, slack: FakeSlack) -> list[str]:
    """Every request body GitHub and Slack received, as text."""
    bodies = [json.dumps(r.json, ensure_ascii=False) for r in fake.requests]
    return bodies + [json.dumps(r.args, ensure_ascii=False) for r in slack.requests]


def test_nothing_secret_crosses_to_github_or_slack(bot, fake, slack, leaky):
    repo, key_line = leaky
    for number, branch in ((7, "leaky"), (8, "crashy")):
        fake.add_pull(REPO, number, head_sha=sha_of(repo, branch), head_ref=branch, base_ref="main")
    stop = threading.Event()
    door = threading.Thread(target=Worker(bot.pipeline, runs=False).run_forever, args=(stop,))
    door.start()  # syncs the check runs and messages while the experiments print
    try:
        for number, branch in ((7, "leaky"), (8, "crashy")):
            bot.deliver("pull_request", pull_request(repo, "opened", branch=branch, number=number))
        command(bot, slack, "experiment crashy vs main", trigger="crashy")
        settle(bot, timeout=120)
        crashy = max(r.id for r in bot.pipeline.recent_runs() if r.sha == sha_of(repo, "crashy"))
        click(bot, slack, {"action_id": "tierbot_logs", "value": str(crashy)})
        settle(bot)
    finally:
        stop.set()
        door.join()

    bodies = crossed(fake, slack)
    everything = "\n".join(bodies)
    for variant in "abc":
        for secret in secrets_of(variant, key_line):
            assert secret not in everything, secret
    # What was redacted says so, and what was not still crossed: in the PR's diff, in the crashed run's
    # log tail on the PR and in Slack's Logs answer, and as a running check run's progress.
    assert "‹redacted:github-token›" in everything
    assert "‹redacted:TIERBOT_GITHUB_WEBHOOK_SECRET›" in everything
    (leaky_comment,) = fake.comments_on(REPO, 7)
    assert "ordinary line: variant b" in leaky_comment.body and "‹redacted:private-key›" in leaky_comment.body
    (crashy_comment,) = fake.comments_on(REPO, 8)
    assert "ordinary line: variant c" in crashy_comment.body
    assert "ordinary line: variant c" in json.dumps(slack.responses("click"))
    progress = [r.json["output"]["summary"] for r in fake.requests if _status(r.json) == "in_progress"]
    assert any("‹redacted:" in summary for summary in progress), progress

    # Stored redacted too: the log file, and the full report as served.
    log = Path(bot.pipeline.run(crashy).log_path).read_text()
    assert "ordinary line: variant c" in log and not any(s in log for s in secrets_of("c", key_line))
    head = max(r.id for r in bot.pipeline.recent_runs() if r.sha == sha_of(repo, "leaky"))
    link = bot.pipeline.report_context(bot.pipeline.comparison_for(head)).report_url
    page = bot.client.get(link.removeprefix("http://tierbot.test"))
    assert page.status_code == 200 and "ordinary line: variant b" in page.text
    assert not any(s in page.text for v in "ab" for s in secrets_of(v, key_line))


def _status(body: object) -> str | None:
    return body.get("status") if isinstance(body, dict) else None
