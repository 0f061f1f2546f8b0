"""PR commands, fork approval and reruns, on the wire: really signed `issue_comment` and `check_run`
deliveries to a running bot, answered through PyGithub against the fake GitHub."""

import textwrap
from pathlib import Path

import pytest

from bot.github.commands import Command, parse
from bot.store import RunState
from bot.worker import Worker

from ..conftest import SIMPLE_SPEC, push_branch
from ..fakes.github_bot import (
    REPO,
    comment,
    fork_pull,
    heads,
    make_bot,
    open_pull,
    ours,
    pull_request,
    pull_request_shape,
    replies,
    settle,
    sha_of,
)

# -- the grammar (pure) ---------------------------------------------------------------------------------


def test_commands_are_read_from_prose_only():
    body = textwrap.dedent(
        """\
        Looks good. /run experiment in the middle of a line is prose.
        /run experiment on gpu-small
        > /run cancel (a quote)
        `/run approve` inline code
            /run approve (indented code)
        ```
        /run cancel
        ```
        <!-- /run cancel -->
        /RUN   help
        /run help
        /running is not /run
        """
    )
    assert parse(body) == [
        Command("experiment", "/run experiment on gpu-small", tier="gpu-small"),
        Command("help", "/RUN   help"),  # once, though asked twice
    ]


def test_bad_commands_say_why():
    (bad,) = parse("/run deploy")
    assert (bad.verb, bad.problem) == ("invalid", "tierbot does not know `/run deploy`.")
    (extra,) = parse("/run experiment gpu")
    assert "`/run experiment on TIER`" in extra.problem
    assert parse("/run")[0].verb == "help"
    assert len(parse("\n".join(f"/run experiment on t{n}" for n in range(9)))) == 5


# -- on the wire ----------------------------------------------------------------------------------------

TIERS = """\
tiers:
  - name: local
    default: true
  - name: big
    description: the big machine
    access: {github_teams: [acme/ml]}
  - name: admins
    access: {github_role: admin}
"""


@pytest.fixture
def bot(settings, hosted, tmp_path, fake):
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text(TIERS)
    running = make_bot(settings.model_copy(update={"tiers_file": tiers}), tmp_path, fake)
    yield running
    running.stop()


def test_help_is_acknowledged_and_answered_once_through_a_502(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    fake.fail_next("POST", f"/repos/{REPO}/issues/7/comments", applied=True)  # posted, but a 502 said not
    asked, payload = comment(bot, fake, "/run help", delivery="c1")
    settle(bot)
    assert [r.content for r in asked.reactions] == ["eyes"]
    (reply,) = replies(fake)
    assert "@octocat" in reply and "`/run approve`" in reply
    assert "Tiers you may use:\n- `local`\n" in reply and "`big`" not in reply  # octocat: no team, no admin
    assert bot.deliver("issue_comment", payload, delivery="c1").json()["result"] == "duplicate"
    settle(bot)
    assert len(replies(fake)) == 1 and len(asked.reactions) == 1


def test_a_command_whose_github_read_failed_is_handled_again_later(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    fake.fail_next("GET", f"/repos/{REPO}/pulls/7", status=502)
    _, payload = comment(bot, fake, "/run experiment", delivery="flaky")
    settle(bot)
    delivery = bot.pipeline.deliveries.get("flaky")
    assert (delivery.state, delivery.attempts) == ("done", 2)
    assert [r.state for r in heads(bot)] == [RunState.succeeded]  # one run, not two


def test_experiment_on_an_unknown_or_forbidden_tier_is_refused_with_the_usable_tiers(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    fake.set_permission(REPO, "octocat", "write")
    comment(bot, fake, "/run experiment on bigg")
    comment(bot, fake, "/run experiment on admins")
    settle(bot)
    unknown, forbidden = replies(fake)
    assert "There is no tier 'bigg'. Did you mean big? Tiers you may use: local." in unknown
    assert "restricted to collaborators with the admin role or above" in forbidden
    assert heads(bot) == []


def test_experiment_on_a_team_tier_runs_for_a_member(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    fake.add_team("acme", "ml", members=["octocat"])
    comment(bot, fake, "/run experiment on big")
    settle(bot)
    (run,) = heads(bot)
    assert (run.tier, run.state, run.requested_by["github_teams"]) == ("big", RunState.succeeded, ["acme/ml"])
    assert replies(fake) == []  # the 👀, the sticky comment and the check run say it all
    (sticky,) = ours(fake, 7)
    assert "tier=big" in sticky.body
    assert [c.name for c in fake.checks_for(REPO, run.sha)] == ["tierbot: simple (big)"]


def test_strangers_cannot_run_or_cancel(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    comment(bot, fake, "/run experiment\n/run cancel", user="stranger")
    settle(bot)
    (reply,) = replies(fake)
    assert reply.count("Only the pull request's author and collaborators with write access") == 2
    assert heads(bot) == []


def test_cancel_cancels_the_prs_runs(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    Worker(bot.pipeline, runs=False).handle_delivery()  # queued, not yet run
    comment(bot, fake, "/run cancel")
    Worker(bot.pipeline, runs=False).handle_delivery()
    assert [r.state for r in heads(bot)] == [RunState.cancelled]
    settle(bot)
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "better"))
    assert check.conclusion == "cancelled"


def test_a_fork_waits_for_approval_of_each_commit(forks_bot, fake, simple_repo):
    bot = forks_bot
    bot.deliver("pull_request", fork_pull(fake, simple_repo))
    settle(bot)
    first = sha_of(simple_repo, "better")
    (waiting,) = heads(bot)
    assert (waiting.state, waiting.started_at) == (RunState.waiting, None)
    (check,) = fake.checks_for(REPO, first)
    assert (check.status, check.conclusion) == ("completed", "action_required")
    assert "/run approve" in check.output["summary"] and check.details_url.endswith(f"/{REPO}/pull/8")
    (sticky,) = ours(fake, 8)
    assert "Waiting for approval" in sticky.body

    comment(bot, fake, "/run approve", user="stranger", number=8)  # the author cannot approve
    fake.set_permission(REPO, "reviewer", "read")
    comment(bot, fake, "/run approve", user="reviewer", number=8)
    settle(bot)
    assert [r.state for r in heads(bot)] == [RunState.waiting]
    assert all("Only collaborators with write access can approve" in r for r in replies(fake, 8))

    fake.set_permission(REPO, "maintainer", "maintain")
    comment(bot, fake, "/run approve", user="maintainer", number=8)
    settle(bot)
    (approved,) = heads(bot)
    assert approved.state == RunState.succeeded and not approved.trusted
    checks = sorted(fake.checks_for(REPO, first), key=lambda c: c.id)
    assert [(c.status, c.conclusion) for c in checks] == [
        ("completed", "action_required"),
        ("completed", "neutral"),
    ]  # a completed check cannot be reopened: a new one took its place

    simple_repo.git("checkout", "-q", "better")
    (simple_repo.path / "note.txt").write_text("a new push\n")
    simple_repo.git("add", "-A")
    simple_repo.git("commit", "-qm", "push")
    simple_repo.git("push", "-q", str(Path(hosted_path(bot))), "better")
    second = sha_of(simple_repo, "better")
    fake.push(REPO, 8, second)
    payload = fork_pull(fake, simple_repo, second) | {"action": "synchronize"}
    bot.deliver("pull_request", payload)
    settle(bot)
    assert [r.state for r in heads(bot)] == [RunState.succeeded, RunState.waiting]  # a new commit waits
    (check,) = fake.checks_for(REPO, second)
    assert check.conclusion == "action_required"


def hosted_path(bot) -> str:
    return bot.pipeline.settings.git_url_template.removeprefix("file://").format(full_name=REPO)


def test_rerun_buttons_run_the_same_request_again(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    settle(bot)
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "better"))
    for action, extra in (
        ("rerequested", {}),
        ("requested_action", {"requested_action": {"identifier": "rerun"}}),
    ):
        payload = {
            "action": action,
            "check_run": {
                "id": check.id,
                "external_id": "run-1",
                "head_sha": check.head_sha,
                "name": check.name,
            },
            "repository": {"full_name": REPO},
            "installation": {"id": 1001},
            "sender": {"login": "octocat"},
        } | extra
        assert bot.deliver("check_run", payload).status_code == 202
        settle(bot)
    assert [r.state for r in heads(bot)] == [RunState.succeeded] * 3
    assert [r.reused_run_id for r in heads(bot)] == [None] * 3  # asked for: run again, not reused
    assert len(fake.checks_for(REPO, check.head_sha)) == 3
    assert len(ours(fake, 7)) == 1  # still the one sticky comment


def test_the_bots_own_comments_and_issue_comments_are_ignored(bot, fake, simple_repo):
    open_pull(fake, simple_repo)
    payload = pull_request_shape(7) | {
        "action": "created",
        "comment": {"id": 1, "body": "/run experiment", "user": {"login": "tierbot[bot]", "type": "Bot"}},
    }
    bot.deliver("issue_comment", payload, delivery="own")
    issue = pull_request_shape(7)
    del issue["issue"]["pull_request"]
    bot.deliver(
        "issue_comment",
        issue | {"action": "created", "comment": payload["comment"] | {"user": {"login": "x"}}},
        delivery="issue",
    )
    settle(bot)
    assert "a bot's comment" in bot.pipeline.deliveries.get("own").outcome
    assert "not on a pull request" in bot.pipeline.deliveries.get("issue").outcome
    assert heads(bot) == [] and ours(fake, 7) == []


def test_a_pull_request_asking_for_a_forbidden_tier_asks_for_a_person(bot, fake, simple_repo, hosted):
    sha = push_branch(simple_repo, hosted, "big", {"tierbot.yaml": SIMPLE_SPEC + "tier: big\n"})
    open_pull(fake, simple_repo, branch="big")
    bot.deliver("pull_request", pull_request(simple_repo, "opened", branch="big"))
    settle(bot)
    (check,) = fake.checks_for(REPO, sha)
    assert (check.name, check.conclusion) == ("tierbot: simple (big)", "action_required")
    assert "`/run experiment on big`" in check.output["summary"]


def test_a_push_of_the_same_tree_reuses_the_run_and_run_experiment_runs_again(bot, fake, simple_repo, hosted):
    """A push that changes no file (an amended message, a rebase onto the same content) gets its own
    check run and the sticky comment at once, from the run of that tree before (`bot.reuse`); someone
    asking with `/run experiment` gets a run."""
    open_pull(fake, simple_repo)
    bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    settle(bot)
    (first,) = heads(bot)
    simple_repo.git("checkout", "-q", "better")
    simple_repo.git("commit", "-q", "--allow-empty", "-m", "reworded")
    simple_repo.git("push", "-q", hosted, "better")
    simple_repo.git("checkout", "-q", "main")
    pushed = sha_of(simple_repo, "better")
    fake.push(REPO, 7, pushed)
    bot.deliver("pull_request", pull_request(simple_repo, "synchronize"))
    settle(bot)
    _, reused = heads(bot)
    assert (reused.sha, reused.state, reused.reused_run_id, reused.attempts) == (
        pushed,
        RunState.succeeded,
        first.id,
        0,  # never claimed by a worker: it did not run
    )
    (check,) = fake.checks_for(REPO, pushed)
    assert (check.status, check.conclusion) == ("completed", "neutral")
    assert f"branch: reused run {first.id}" in check.output["summary"]
    (sticky,) = ours(fake, 7)
    assert f"branch: reused run {first.id}" in sticky.body and f"tierbot:sha={pushed}" in sticky.body

    comment(bot, fake, "/run experiment")
    settle(bot)
    *_, asked = heads(bot)
    assert (asked.sha, asked.state, asked.reused_run_id, asked.attempts) == (
        pushed,
        RunState.succeeded,
        None,
        1,
    )
    (sticky,) = ours(fake, 7)
    assert "branch: reused run" not in sticky.body and "baseline reused" in sticky.body
