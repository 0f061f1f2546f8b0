"""The GitHub door's harness (a pytest plugin, see tests/conftest.py): the bot as `tierbot serve` runs it
(`Bot`: `create_app` on a loopback port, with a client that signs deliveries as GitHub does), payloads
shaped like GitHub's, the fake GitHub it reports to (fixture `fake`, the bot: fixture `github_bot`), and
ways to read what crossed to it.

Fixtures: `fake`, `github_bot` (`bot` in tests/github/). `hosted` and `push_branch` are in tests/conftest.py.
"""

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from bot import wiring
from bot.github.signature import sign
from bot.pipeline import Pipeline
from bot.server import create_app
from bot.store import Delivery, Report
from bot.worker import Worker

from ..conftest import GitRepo
from .fakegithub import FakeGitHub
from .loopback import Loopback

SECRET = "s3cret-current"
REPO = "acme/models"
INSTALLATION = 1001  # what `pull_request()` payloads carry


class Bot:
    """A running `create_app` on a loopback port, and a client that signs like GitHub."""

    def __init__(self, pipeline: Pipeline, workers: int = 0):
        self.pipeline = pipeline
        self.loopback = Loopback(create_app(pipeline, workers=workers), "the bot", lifespan="on")
        self.url = self.loopback.url
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def deliver(
        self,
        event: str,
        payload: dict,
        delivery: str | None = None,
        secret: str | None = SECRET,
        body: bytes | None = None,
    ) -> httpx.Response:
        body = body if body is not None else json.dumps(payload).encode()
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/test",
        }
        if secret:
            headers["X-Hub-Signature-256"] = sign(body, secret)
        return self.client.post("/github/webhook", content=body, headers=headers)

    def drain(self) -> None:
        worker = Worker(self.pipeline)
        while worker.run_once():
            pass

    def stop(self) -> None:
        self.client.close()
        self.loopback.stop()


def settle(bot: Bot, timeout: float = 30) -> None:
    """Work until nothing is queued and every report is synced (waiting out retry backoffs)."""
    worker = Worker(bot.pipeline)
    deadline = time.monotonic() + timeout
    while True:
        while worker.run_once():
            pass
        with bot.pipeline.db.session() as s:
            pending = list(s.scalars(select(Report).where(Report.synced_version < Report.version)))
            unhandled = s.scalars(select(Delivery).where(Delivery.state.in_(["pending", "processing"])))
            pending += [f"delivery {d.id}: {d.outcome}" for d in unhandled]
        if not pending:
            return
        assert time.monotonic() < deadline, [getattr(r, "error", r) for r in pending]
        time.sleep(0.2)


def count(pipeline: Pipeline, model, *where) -> int:
    with pipeline.db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


# -- what GitHub sends ----------------------------------------------------------------------------------


def sha_of(repo: GitRepo, ref: str) -> str:
    return repo.git("rev-parse", ref)


def pull_request(
    repo: GitRepo,
    action: str,
    branch: str = "better",
    number: int = 7,
    draft: bool = False,
    fork: bool = False,
) -> dict:
    """A `pull_request` payload with the fields GitHub sends that tierbot reads (and some it does not)."""
    full_name = "acme/models"
    head_repo = "someone/models" if fork else full_name
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{full_name}/pulls/{number}",
            "html_url": f"https://github.com/{full_name}/pull/{number}",
            "number": number,
            "state": "closed" if action == "closed" else "open",
            "draft": draft,
            "title": f"Try {branch}",
            "user": {"login": "octocat", "id": 1, "type": "User"},
            "head": {
                "label": f"acme:{branch}",
                "ref": branch,
                "sha": sha_of(repo, branch),
                "repo": {"full_name": head_repo, "fork": fork},
            },
            "base": {
                "label": "acme:main",
                "ref": "main",
                "sha": sha_of(repo, "main"),
                "repo": {"full_name": full_name},
            },
            "merged": False,
        },
        "repository": {
            "id": 42,
            "full_name": full_name,
            "name": "models",
            "private": True,
            "owner": {"login": "acme"},
            "default_branch": "main",
            "clone_url": f"https://github.com/{full_name}.git",
        },
        "sender": {"login": "octocat", "id": 1},
        "installation": {"id": INSTALLATION},
    }


def pull_request_shape(number: int) -> dict:
    """What an `issue_comment` payload says of the pull request it is on."""
    return {
        "issue": {"number": number, "title": "Try", "pull_request": {"url": f"/repos/{REPO}/pulls/{number}"}},
        "repository": {"full_name": REPO, "name": "models", "owner": {"login": "acme"}},
        "installation": {"id": INSTALLATION},
    }


def comment(bot, fake: FakeGitHub, body: str, user: str = "octocat", number: int = 7, delivery=None):
    """A comment as `user` wrote it, and its `issue_comment` delivery."""
    posted = fake.add_comment(REPO, number, body, user=user)
    payload = pull_request_shape(number) | {
        "action": "created",
        "comment": {"id": posted.id, "body": body, "user": {"login": user, "id": 5, "type": "User"}},
        "sender": {"login": user, "id": 5},
    }
    assert bot.deliver("issue_comment", payload, delivery=delivery).status_code == 202
    return posted, payload


def fork_pull(fake: FakeGitHub, repo, sha: str | None = None) -> dict:
    """Pull request 8 from a stranger's fork, on the fake GitHub; its `opened` payload."""
    head = sha or sha_of(repo, "better")
    fake.add_pull(REPO, 8, head_sha=head, head_ref="better", user="stranger", fork=True)
    payload = pull_request(repo, "opened", fork=True, number=8)
    payload["pull_request"]["head"]["sha"] = head
    payload["pull_request"]["user"]["login"] = "stranger"
    return payload


# -- the fake GitHub, and the bot that reports to it ----------------------------------------------------


@pytest.fixture
def fake():
    """The fake GitHub, with acme/models installed (App installation `INSTALLATION`)."""
    with FakeGitHub() as running:
        running.add_repo(REPO, installation_id=INSTALLATION)
        yield running
        assert running.errors == []


def make_bot(settings, tmp_path: Path, fake: FakeGitHub, app: bool = True, mirror: bool = True) -> Bot:
    """`mirror=False`: code is fetched from the fake GitHub itself (see `FakeGitHub.add_git`)."""
    credentials = (
        {"github_app_id": fake.app_id, "github_private_key": SecretStr(fake.app_private_key_pem)}
        if app
        else {"github_token": SecretStr(fake.token)}
    )
    settings = settings.model_copy(
        update={
            "git_url_template": f"file://{tmp_path}/git/{{full_name}}.git" if mirror else None,
            "github_webhook_secret": SecretStr(SECRET),
            "github_api_url": fake.url,
            "github_retries": 0,
            **credentials,
        }
    )
    return Bot(wiring.pipeline(settings))  # as `tierbot serve` builds it: GitHub's credentials plugged in


@pytest.fixture
def github_bot(settings, hosted, tmp_path, fake):
    """The bot of the GitHub door (App mode), fetching acme/models from `hosted`, reporting to `fake`."""
    running = make_bot(settings, tmp_path, fake)
    yield running
    running.stop()


def open_pull(fake: FakeGitHub, repo: GitRepo, branch: str = "better", number: int = 7) -> None:
    fake.add_pull(REPO, number, head_sha=sha_of(repo, branch), head_ref=branch, base_ref="main")


# -- what crossed to GitHub -----------------------------------------------------------------------------


def ours(fake: FakeGitHub, number: int = 7) -> list:
    return [c for c in fake.comments_on(REPO, number) if c.user.login == "tierbot[bot]"]


def replies(fake: FakeGitHub, number: int = 7) -> list[str]:
    return [c.body for c in ours(fake, number) if "tierbot:reply" in c.body]


def heads(bot) -> list:
    return [r for r in reversed(bot.pipeline.recent_runs(100)) if r.role == "head"]


def without_code(markdown: str) -> str:
    """The Markdown outside code blocks, code spans and `<code>` elements, where markup would take effect."""
    markdown = re.sub(r"^(`{3,})[^\n]*\n.*?^\1$", "", markdown, flags=re.MULTILINE | re.DOTALL)
    markdown = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", markdown)
    return re.sub(r"<code>.*?</code>", "", markdown)
