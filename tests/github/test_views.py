"""What a pull request shows, pinned by golden files in tests/golden/github-*.md (the views are pure: a
run, its comparison and the time in; text out). Rerun with UPDATE_GOLDEN=1 and review the diff."""

from bot.github.comments import Answer
from bot.github.views import check_view, render, sticky_body
from bot.store import RunState
from bot.tiers import BUILTIN

from ..golden import check_golden
from ..golden.comparisons import CONTEXT
from ..golden.runs import NOW, OLD_SHA, done, run


def test_sticky_comment_with_a_comparison():
    body = sticky_body(run(RunState.succeeded), done(), CONTEXT, NOW)
    check_golden("github-sticky.md", body)
    assert len(body) <= 65_536


def test_sticky_comment_keeps_the_old_result_under_a_banner_while_a_new_commit_runs():
    old = sticky_body(run(RunState.succeeded, sha=OLD_SHA), done(), CONTEXT, NOW)
    running = run(RunState.running, phase="running", last_log_line="epoch 3/10")
    body = sticky_body(running, None, None, NOW, previous=old)
    check_golden("github-sticky-banner.md", body)
    assert body.replace(body.split("<!-- /tierbot:banner -->")[0], "") in old  # the result below is kept


def test_sticky_comment_of_a_fork_waiting_for_approval():
    check_golden("github-sticky-waiting.md", sticky_body(run(RunState.waiting), None, None, NOW))


def test_check_summary_of_a_crashed_run_shows_the_log_tail():
    crashed = run(
        RunState.failed, reason="exit code 3", log_tail="Traceback (most recent call last):\n```boom```"
    )
    view = check_view(crashed, None, None, NOW)
    assert (view.status, view.conclusion, view.title) == (
        "completed",
        "failure",
        "The experiment failed: exit code 3",
    )
    check_golden("github-check-failed.md", view.summary)


def test_help_reply():
    text = render("help.md.j2", tiers=BUILTIN.tiers, default_tier=BUILTIN.default)
    body = render(
        "reply.md.j2",
        marker="<!-- tierbot:reply-to=99 -->",
        login="octocat",
        answers=[("/run help", Answer("help", text))],
    )
    check_golden("github-help.md", body)
