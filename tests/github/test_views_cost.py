"""Money on a pull request (issue 16): the estimate while the run is queued or running, what it cost
once it ended, in the sticky comment and the check run; pinned by tests/golden/github-*-cost.md."""

from bot.costs import RunCost
from bot.github.views import check_view, sticky_body
from bot.store import RunState

from ..golden import check_golden
from ..golden.comparisons import CONTEXT
from ..golden.runs import NOW, OLD_SHA, done, run

ESTIMATE = RunCost(kind="estimate", amount=1.2)
ACTUAL = RunCost(kind="actual", amount=0.42, currency="EUR")


def test_a_queued_run_shows_its_estimate():
    queued = run(RunState.queued)
    body = sticky_body(queued, None, None, NOW, position=2, cost=ESTIMATE)
    check_golden("github-sticky-queued-cost.md", body)
    assert "· estimated \\$1.20." in body  # `$` escaped: GitHub reads $…$ as math
    view = check_view(queued, None, None, NOW, position=2, cost=ESTIMATE)
    assert view.status == "queued" and view.summary.endswith("\n\nestimated \\$1.20")


def test_a_running_run_shows_its_estimate_under_its_last_line():
    running = run(RunState.running, phase="running", last_log_line="epoch 3/10")
    view = check_view(running, None, None, NOW, cost=ESTIMATE)
    check_golden("github-check-running-cost.md", view.summary)
    old = sticky_body(run(RunState.succeeded, sha=OLD_SHA), done(), CONTEXT, NOW)
    body = sticky_body(running, None, None, NOW, previous=old, cost=ESTIMATE)
    assert "> Running" in body and " · estimated \\$1.20; the comparison below is for 9f8e7d6." in body


def test_an_ended_run_shows_what_it_cost():
    failed = run(RunState.failed, reason="exit code 3", log_tail="boom")
    view = check_view(failed, None, None, NOW, cost=ACTUAL)
    check_golden("github-check-failed-cost.md", view.summary)
    assert view.summary.startswith("**The experiment failed: exit code 3** · cost €0.42\n")
    assert "cost €0.42" in sticky_body(failed, None, None, NOW, cost=ACTUAL)


def test_a_free_tier_shows_no_money():
    queued = run(RunState.queued)
    assert (
        "estimated" not in sticky_body(queued, None, None, NOW) + check_view(queued, None, None, NOW).summary
    )
