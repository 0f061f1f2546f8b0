"""The pre-push hook, installed by `tierbot hooks install` and run by a real `git push`."""

from ..conftest import GitRepo


def remote_has(run, branch: str) -> bool:
    return branch in run("git", "ls-remote", "origin").stdout


def test_install_then_push_prints_verdict_without_blocking(pushing):
    installed = pushing("tierbot", "hooks", "install")
    assert installed.returncode == 0, installed.stderr
    done = pushing("git", "push", "-q", "origin", "worse")
    assert done.returncode == 0
    assert "FAIL" in done.stdout + done.stderr
    assert "pushing anyway" in done.stderr
    assert remote_has(pushing, "worse")


def test_block_on_fail_refuses_the_push_and_can_be_skipped(pushing):
    assert pushing("tierbot", "hooks", "install", "--block-on-fail").returncode == 0
    blocked = pushing("git", "push", "-q", "origin", "worse")
    assert blocked.returncode != 0
    assert "push blocked" in blocked.stderr
    assert not remote_has(pushing, "worse")
    assert pushing("git", "push", "-q", "origin", "better").returncode == 0, "a passing branch goes through"
    skipped = pushing("git", "push", "-q", "origin", "worse", extra={"TIERBOT_SKIP": "1"})
    assert skipped.returncode == 0 and "skipped" in skipped.stderr
    assert remote_has(pushing, "worse")


def test_install_refuses_to_clobber_a_foreign_hook(pushing, simple_repo: GitRepo):
    hook = simple_repo.path / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\necho mine\n")
    refused = pushing("tierbot", "hooks", "install")
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert pushing("tierbot", "hooks", "install", "--force").returncode == 0
    assert "tierbot pre-push hook" in hook.read_text()


def test_a_branch_whose_experiment_crashes_is_blocked_too(pushing, simple_repo):
    simple_repo.branch("crash")
    simple_repo.commit({"make.py": "raise SystemExit('boom')\n"}, "crash")
    assert pushing("tierbot", "hooks", "install", "--block-on-fail").returncode == 0
    blocked = pushing("git", "push", "-q", "origin", "crash")
    assert blocked.returncode != 0
    assert "push blocked: the comparison or the experiment failed" in blocked.stderr
    assert not remote_has(pushing, "crash")
