"""Who may do what from Slack, on the wire: signed slash commands and clicks to a running bot, the
askers' GitHub roles asked of the fake GitHub through the App's installation, identities linked
through GitHub's device flow, and real git repositories."""

import re
import time

import pytest
from pydantic import SecretStr

from bot import wiring
from bot.checkout import CodeCache
from bot.store import Run
from bot.store.models import SlackLink
from bot.worker import Worker

from ..fakes.fakegithub import FakeGitHub
from ..fakes.fakegithub_device import authorize
from ..fakes.github_bot import REPO, SECRET, Bot, count, pull_request, settle, sha_of
from ..fakes.slack_bot import SIGNING_SECRET, click, command, said, slack_settings

BOB, CAROL, MALLORY = "U0BOB", "U0CAROL", "U0MAL"  # write (vouched for), read (links), nobody


@pytest.fixture
def github():
    with FakeGitHub() as fake:
        fake.add_repo(REPO, installation_id=1001)
        fake.set_permission(REPO, "bob", "write")
        fake.set_permission(REPO, "carol", "read")
        fake.device_interval = 1  # GitHub's is 5 s
        yield fake
        assert fake.errors == []


@pytest.fixture
def bot(settings, hosted, tmp_path, slack, github):
    configured = slack_settings(settings, tmp_path, slack, slack_signing_secret=SecretStr(SIGNING_SECRET))
    configured = configured.model_copy(
        update={
            "github_api_url": github.url,
            "github_app_id": github.app_id,
            "github_private_key": SecretStr(github.app_private_key_pem),
            "github_webhook_secret": SecretStr(SECRET),
            "github_oauth_client_id": "Iv1.tierbot",
            "slack_github_logins": {BOB: "bob"},
            "slack_open_repositories": {},
        }
    )
    running = Bot(wiring.pipeline(configured))
    yield running
    running.stop()


def drain(bot: Bot) -> None:
    """Handle what is recorded, without waiting for anything due later."""
    worker = Worker(bot.pipeline, runs=False)
    while worker.run_once():
        pass


def test_an_unknown_slack_user_is_told_how_to_link_and_nothing_runs(bot, slack):
    command(bot, slack, "experiment better", user=MALLORY, trigger="run")
    settle(bot)
    assert "tierbot must know who you are on GitHub. Link your GitHub account with `/run link`." in said(
        slack, "run"
    )
    assert count(bot.pipeline, Run) == 0


def test_linking_through_githubs_device_flow_gives_the_githubs_role(bot, slack, github):
    command(bot, slack, "link", user=CAROL, trigger="link")
    drain(bot)
    told = said(slack, "link")
    assert f"open {github.url}/login/device and enter the code" in told
    code = re.search(r"code `([0-9A-F]{4}-[0-9A-F]{4})`", told).group(1)
    drain(bot)  # GitHub: authorization_pending, asked again after its interval
    authorize(github, code, "carol")
    settle(bot)
    assert "Linked: you are `@carol` on GitHub." in said(slack, "link")
    with bot.pipeline.db.session() as s:
        assert s.get(SlackLink, CAROL).github_login == "carol"
    polls = github.calls("POST", "/login/oauth/access_token")
    assert len(polls) >= 2 and all(p.json["client_id"] == "Iv1.tierbot" for p in polls)
    assert max(b.at - a.at for a, b in zip(polls, polls[1:], strict=False)) >= 0.9  # GitHub's interval
    assert len(github.tokens) > 0 and not any(t in str(s) for t in github.tokens for s in _stored(bot))

    command(bot, slack, "experiment better", user=CAROL, trigger="run")  # carol may read, not run
    settle(bot)
    assert "`@carol` has the read role on `acme/models`; to run experiments takes write access." in said(
        slack, "run"
    )
    assert count(bot.pipeline, Run) == 0


def _stored(bot: Bot) -> list:
    """Every report target and memo the bot keeps: where a token would hide if it were kept."""
    from bot.store import Report

    with bot.pipeline.db.session() as s:
        return [(r.target, r.memo) for r in s.query(Report)]


def test_a_denied_link_says_so(bot, slack, github):
    command(bot, slack, "link", user=CAROL, trigger="link")
    drain(bot)
    code = re.search(r"code `([^`]+)`", said(slack, "link")).group(1)
    authorize(github, code, "carol", deny=True)
    time.sleep(1)
    settle(bot)
    assert "GitHub did not link your account: access_denied. Type `/run link` to try again." in said(
        slack, "link"
    )
    with bot.pipeline.db.session() as s:
        assert s.get(SlackLink, CAROL) is None


def test_reading_needs_read_and_acting_needs_write_on_the_runs_repository(bot, slack):
    command(bot, slack, "experiment better", user=BOB)
    settle(bot)
    with bot.pipeline.db.session() as s:
        s.add(SlackLink(slack_user=CAROL, github_login="carol"))
    for user in (CAROL, MALLORY):
        command(bot, slack, "status 1", user=user, trigger=f"status-{user}")
        click(bot, slack, {"action_id": "tierbot_logs", "type": "button", "value": "1"}, user=user)
        command(bot, slack, "cancel 1", user=user, trigger=f"cancel-{user}")
        rerun = {
            "action_id": "tierbot_rerun",
            "type": "static_select",
            "selected_option": {"value": "1:local"},
        }
        click(bot, slack, rerun, user=user)
    settle(bot)
    assert "run 1" in said(slack, f"status-{CAROL}")  # read: the run and its report link
    assert "`@carol` has the read role on `acme/models`; to cancel runs takes write access." in said(
        slack, f"cancel-{CAROL}"
    )
    assert "To see runs in `acme/models`, tierbot must know who you are" in said(slack, f"status-{MALLORY}")
    assert "To cancel runs in `acme/models`" in said(slack, f"cancel-{MALLORY}")
    clicks = said(slack, "click")
    assert "To see logs in `acme/models`" in clicks and "To rerun in `acme/models`" in clicks
    assert "`@carol` has the read role on `acme/models`; to rerun takes write access." in clicks
    assert count(bot.pipeline, Run, Run.role == "head") == 1  # no rerun happened


def test_a_commit_outside_the_repositorys_branches_never_runs_from_slack(bot, slack, simple_repo, hosted):
    simple_repo.git("checkout", "-q", "-b", "fork-work", "better")
    fork = simple_repo.commit({"steal.py": "import os; print(os.environ)"}, "a fork's commit")
    simple_repo.git("push", "-q", hosted, "HEAD:refs/pull/8/head")  # how GitHub keeps a fork PR's head
    command(bot, slack, f"experiment {fork} in {REPO}", user=BOB, trigger="fork")
    settle(bot)
    assert f"{fork[:7]} is not on any branch of {REPO}" in said(slack, "fork")
    assert "runs only from its pull request, once someone with write access approves it" in said(
        slack, "fork"
    )
    assert count(bot.pipeline, Run) == 0


def test_local_paths_are_not_repositories_outside_the_cli(bot, slack, tmp_path, monkeypatch):
    answer = command(bot, slack, "experiment better in ../somedir", user=BOB)
    assert "name the repository as OWNER/REPO" in answer.json()["text"]
    assert "Write `/run use OWNER/REPO`" in command(bot, slack, "use ../somedir", user=BOB).json()["text"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "acme" / "models").mkdir(parents=True)  # a directory that looks like owner/name
    code = CodeCache(tmp_path / "m", tmp_path / "w", "file:///srv/git/{full_name}.git")
    assert code.url_for("acme/models") == "file:///srv/git/acme/models.git"
    assert code.url_for("./acme/models") == str(tmp_path / "acme" / "models")


def test_another_base_from_slack_reports_beside_the_prs_gating_check(bot, slack, github, simple_repo, hosted):
    github.add_pull(REPO, 7, head_sha=sha_of(simple_repo, "better"), head_ref="better")
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    settle(bot)
    (sticky,) = github.comments_on(REPO, 7)
    before = sticky.body
    simple_repo.git("push", "-q", hosted, "better:refs/heads/feature")
    command(bot, slack, "experiment better vs feature", user=BOB)
    settle(bot)
    checks = {c.name: c for c in github.checks_for(REPO, sha_of(simple_repo, "better"))}
    assert checks["tierbot: simple (local)"].conclusion == "neutral"  # the PR's own: CHANGED
    assert checks["tierbot: simple (local) vs feature"].conclusion == "success"  # nothing changed
    assert [c.body for c in github.comments_on(REPO, 7)] == [before]  # the sticky verdict stays
    assert bot.pipeline.run(3).subject is None  # neither supersedes the PR's runs nor is superseded
