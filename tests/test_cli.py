"""The terminal door, as a user meets it: real `tierbot` processes against a temporary data dir."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import GitRepo


@pytest.fixture
def tierbot(settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
    env |= {"TIERBOT_DATA_DIR": str(settings.data_dir), "TIERBOT_POLL_SECONDS": "0.05", "COLUMNS": "160"}

    def call(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=240,
        )

    return call


def test_compare_prints_verdict_and_reuses_baseline(tierbot, simple_repo: GitRepo):
    first = tierbot("compare", "better", "--repo", str(simple_repo))
    assert first.returncode == 0, first.stderr + first.stdout
    assert "CHANGED" in first.stdout and "accuracy" in first.stdout
    assert "Full report:" in first.stdout
    second = tierbot("compare", "worse", "--repo", str(simple_repo))
    assert second.returncode == 1, "a failing verdict exits 1"
    assert "FAIL" in second.stdout
    assert "reused" in second.stdout


def test_compare_json(tierbot, simple_repo: GitRepo):
    done = tierbot("compare", "better", "--repo", str(simple_repo), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"] == "changed"


def test_run_defaults_to_the_current_branch_and_reports_a_crash(tierbot, simple_repo: GitRepo):
    simple_repo.branch("crash")
    simple_repo.commit({"make.py": "print('about to fail')\nraise SystemExit(4)\n"})
    done = tierbot("run", cwd=simple_repo.path)
    assert done.returncode == 1
    assert "crash @" in done.stdout
    assert "exit code 4" in done.stdout and "about to fail" in done.stdout
    listing = tierbot("runs")
    assert "failed" in listing.stdout and "crash" in listing.stdout
    shown = tierbot("show", "1")
    assert "exit code 4" in shown.stdout


def test_user_errors_are_one_clear_line(tierbot, simple_repo: GitRepo):
    done = tierbot("run", "beter", "--repo", str(simple_repo))
    assert done.returncode == 2
    assert "error:" in done.stderr and "better" in done.stderr
    assert "Traceback" not in done.stderr
    done = tierbot("run", "main", "--repo", str(simple_repo), "--tier", "huge")
    assert done.returncode == 2 and "There is no tier 'huge'" in done.stderr
    done = tierbot("show", "42")
    assert done.returncode == 2 and "There is no run 42" in done.stderr


def test_cancel_a_queued_run(tierbot, simple_repo: GitRepo):
    assert tierbot("run", "main", "--repo", str(simple_repo), "--no-wait").returncode == 0
    done = tierbot("cancel", "1")
    assert done.returncode == 0 and "cancelled" in done.stdout
    assert "cancelled" in tierbot("show", "1").stdout


def test_tiers_and_schema(tierbot):
    assert "local" in tierbot("tiers").stdout
    schema = json.loads(tierbot("schema").stdout)
    assert schema["title"] == "tierbot.yaml"
