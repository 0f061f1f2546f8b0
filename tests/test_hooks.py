"""The pre-push hook, installed by `tierbot hooks install` and run by a real `git push`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import GitRepo


@pytest.fixture
def pushing(settings, simple_repo: GitRepo, tmp_path: Path):
    """simple_repo with a bare remote, and a `tierbot` on PATH that uses the test's data dir."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    simple_repo.git("remote", "add", "origin", str(remote))
    simple_repo.git("push", "-q", "origin", "main")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "tierbot"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m bot "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
    env |= {"TIERBOT_DATA_DIR": str(settings.data_dir), "PATH": f"{bin_dir}:{env['PATH']}"}

    def run(*args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args),
            cwd=simple_repo.path,
            env=env | (extra or {}),
            capture_output=True,
            text=True,
            timeout=240,
        )

    return run


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
