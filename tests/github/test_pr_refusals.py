"""Nothing is silent on a pull request: whatever keeps its run from starting (a broken tierbot.yaml, an
unknown or forbidden tier, a missing base branch, a repository that cannot be fetched) ends in a
completed check run and the sticky comment saying what to fix; the push that fixes it reuses both."""

from ..conftest import SIMPLE_SPEC, push_branch
from ..fakes.github_bot import INSTALLATION, REPO, open_pull, pull_request, settle, sha_of

BROKEN = SIMPLE_SPEC.replace("direction: higher", "direction: sideways")


def test_a_broken_spec_fails_the_check_and_the_fix_reuses_comment_and_check_name(
    bot, fake, simple_repo, hosted
):
    broken = push_branch(simple_repo, hosted, "broken", {"tierbot.yaml": BROKEN})
    open_pull(fake, simple_repo, branch="broken")
    bot.deliver("pull_request", pull_request(simple_repo, "opened", branch="broken"))
    settle(bot)
    (check,) = fake.checks_for(REPO, broken)
    assert (check.name, check.status, check.conclusion) == ("tierbot: simple (local)", "completed", "failure")
    assert check.output["title"].startswith("Not started: tierbot.yaml")
    where = f"tierbot.yaml ({broken[:7]}):9: compare.metrics[0].metrics.accuracy.direction: must be"
    assert where in check.output["summary"] and check.actions == []
    (comment,) = fake.comments_on(REPO, 7)
    assert "direction" in comment.body and "Fix this and push again" in comment.body

    fixed = push_branch(simple_repo, hosted, "broken", {"tierbot.yaml": SIMPLE_SPEC, "accuracy.txt": "0.95"})
    fake.push(REPO, 7, fixed)
    bot.deliver("pull_request", pull_request(simple_repo, "synchronize", branch="broken"))
    settle(bot)
    (again,) = fake.comments_on(REPO, 7)
    assert again.id == comment.id and "CHANGED" in again.body and "direction" not in again.body
    (check,) = fake.checks_for(REPO, fixed)
    assert (check.name, check.conclusion) == ("tierbot: simple (local)", "neutral")


def test_unknown_tier_missing_base_and_unfetchable_repository_fail_with_the_reason(
    bot, fake, simple_repo, hosted
):
    unknown = push_branch(simple_repo, hosted, "typo", {"tierbot.yaml": SIMPLE_SPEC + "tier: gpu-huge\n"})
    open_pull(fake, simple_repo, branch="typo", number=1)
    bot.deliver("pull_request", pull_request(simple_repo, "opened", branch="typo", number=1))
    open_pull(fake, simple_repo, branch="better", number=2)
    no_base = pull_request(simple_repo, "opened", branch="better", number=2)
    no_base["pull_request"]["base"]["ref"] = "release-9"
    bot.deliver("pull_request", no_base)
    fake.add_repo("acme/ghost", installation_id=INSTALLATION)  # on GitHub, but not where code is fetched
    fake.add_pull("acme/ghost", 3, head_sha="a" * 40, head_ref="x", base_ref="main")
    ghost = pull_request(simple_repo, "opened", branch="better", number=3)
    ghost["repository"]["full_name"] = ghost["pull_request"]["base"]["repo"]["full_name"] = "acme/ghost"
    ghost["pull_request"]["head"] |= {"sha": "a" * 40, "repo": {"full_name": "acme/ghost"}}
    bot.deliver("pull_request", ghost)
    settle(bot)

    (typo,) = fake.checks_for(REPO, unknown)
    assert typo.conclusion == "failure" and "gpu-huge" in typo.output["title"]
    (base,) = fake.checks_for(REPO, sha_of(simple_repo, "better"))
    assert base.conclusion == "failure" and "release-9" in base.output["title"]
    (unfetchable,) = fake.checks_for("acme/ghost", "a" * 40)
    assert unfetchable.conclusion == "failure" and unfetchable.name == "tierbot: experiment (local)"
    assert "acme/ghost" in unfetchable.output["summary"]
    for repo, number in ((REPO, 1), (REPO, 2), ("acme/ghost", 3)):
        (comment,) = fake.comments_on(repo, number)
        assert "Not started" in comment.body
