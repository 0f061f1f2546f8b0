"""`tierbot deploy`, `tierbot deployments` and `tierbot rollback` as a user runs them: real processes on
the test's data dir, the work done in the command's own process, the model served after it exits."""

import re

import pytest
import requests
from rich.console import Console

from bot.cli.deploy import merge_and_deploy

from .conftest import predict


def test_deploy_list_and_roll_back_from_the_terminal(tierbot, scaler):
    repo = str(scaler.path)
    first = tierbot("deploy", "--repo", repo)
    assert first.returncode == 0, first.stderr
    assert "Deployment 1: live — live at http://127.0.0.1:" in " ".join(first.stdout.split())
    url = first.stdout.split("live at ")[1].split(",")[0]
    assert predict(url, {"x": [1]}).json() == {"y": [2.0]}

    scaler.commit({"scale.txt": "3"}, "scale 3")
    assert tierbot("deploy", "--repo", repo).returncode == 0
    assert predict(url, {"x": [1]}).json() == {"y": [3.0]}

    again = tierbot("deploy", "--repo", repo)
    assert f"{scaler.git('rev-parse', 'HEAD')[:7]} is deployment 2 already (live)." in again.stdout

    back = tierbot("rollback", "--repo", repo)
    assert back.returncode == 0, back.stderr
    assert (
        f"Rolling back production to {scaler.git('rev-parse', 'HEAD~1')[:7]} (deployment 3)." in back.stdout
    )
    assert predict(url, {"x": [1]}).json() == {"y": [2.0]}

    listed = tierbot("deployments", "--repo", repo)
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in listed.stdout.splitlines()]
    states = [(row[0], row[3]) for row in rows if row and row[0].isdigit()]
    assert states == [("3", "live (rollback)"), ("2", "retired"), ("1", "retired")]


def test_a_rollback_with_nothing_to_roll_back_to_says_so(tierbot, scaler):
    repo = str(scaler.path)
    nothing = tierbot("rollback", "--repo", repo)
    assert nothing.returncode == 2
    assert "nothing is live in production" in " ".join(nothing.stderr.split())
    assert tierbot("deploy", "--repo", repo).returncode == 0
    unknown = tierbot("rollback", "--repo", repo, "--to", "abcdef1")
    assert unknown.returncode == 2
    sha = scaler.git("rev-parse", "HEAD")[:7]
    assert f"no release to abcdef1 roll back to in production (live: {sha}; kept: none)" in " ".join(
        unknown.stderr.split()
    )


def test_the_demo_ends_with_the_merge_deployed_and_a_prediction_answered(pipeline, scaler):
    scaler.git("checkout", "-q", "-b", "feature-x")
    scaler.commit({"scale.txt": "3"}, "scale 3")
    out = Console(record=True, width=200)

    assert merge_and_deploy(pipeline, out, scaler.path, "feature-x", keep=False) == 0

    shown = out.export_text()
    url = re.search(r"Live at (http://127\.0\.0\.1:\d+)", shown).group(1)
    assert 'POST /predict {"x": [1, 2]}\n  → 200 {"y": [3.0, 6.0]}' in shown
    assert "The model server is stopped (tierbot demo --keep keeps it serving)." in shown
    with pytest.raises(requests.ConnectionError):
        predict(url, {"x": [1]})
