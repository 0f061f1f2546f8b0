"""The terminal door, as a user meets it: real `tierbot` processes against a temporary data dir."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..conftest import GitRepo
from ..fakes.cli import UNAVAILABLE, UNAVAILABLE_TIERS, json_document, stderr_of


def test_compare_prints_verdict_and_reuses_baseline(tierbot, simple_repo: GitRepo):
    first = tierbot("compare", "better", "--repo", str(simple_repo))
    assert first.returncode == 0, first.stderr + first.stdout
    assert "CHANGED" in first.stdout and "accuracy" in first.stdout
    assert "Full report:" in first.stdout
    shown = tierbot("show", "1").stdout  # the branch's run: its log's end, its comparison and report
    assert "done, accuracy 0.95" in shown
    assert re.search(r"comparison 1 against run 2: CHANGED · report /\S+\.html", shown), shown
    second = tierbot("compare", "worse", "--repo", str(simple_repo))
    assert second.returncode == 1, "a failing verdict exits 1"
    assert "FAIL" in second.stdout
    assert "reused" in second.stdout


def test_compare_json_is_one_document_with_runs_comparison_and_numbers(tierbot, simple_repo: GitRepo):
    done = tierbot("compare", "better", "--repo", str(simple_repo), "--json")
    assert done.returncode == 0, done.stderr
    document = json_document(done)
    assert (document["command"], document["tierbot"]) == ("compare", 1)
    head, base = document["runs"]
    better = simple_repo.git("rev-parse", "better")
    assert (head["role"], head["ref"], head["sha"]) == ("head", "better", better)
    assert head["tree"] == simple_repo.git("rev-parse", "better^{tree}") and head["tier"] == "local"
    assert (base["role"], base["reused"], base["exit_code"]) == ("baseline", False, 0)
    comparison = document["comparison"]
    assert (comparison["state"], comparison["verdict"]) == ("done", "changed")
    assert Path(comparison["report_path"]).is_file() and comparison["report_url"] is None
    (accuracy,) = [m for m in comparison["result"]["metrics"] if m["name"] == "accuracy"]
    assert (accuracy["base"], accuracy["head"]) == (0.9, 0.95)  # numbers as numbers
    shown = json_document(tierbot("show", str(head["id"]), "--json"))
    assert shown["comparison"] == comparison
    again = json_document(tierbot("compare", "worse", "--repo", str(simple_repo), "--json"))
    verdict, reused = again["comparison"]["verdict"], again["runs"][1]["reused"]
    assert (again["exit_code"], verdict, reused) == (1, "fail", True)


def test_compare_and_run_reuse_the_branchs_run_unless_fresh(tierbot, simple_repo: GitRepo):
    repo = ["--repo", str(simple_repo)]
    assert tierbot("compare", "better", *repo).returncode == 0  # run 1 the branch, run 2 the baseline
    again = tierbot("compare", "better", *repo)
    assert again.returncode == 0, again.stderr
    better = simple_repo.git("rev-parse", "--short=7", "better")
    said = f"Branch run 3: better @ {better} on local, reused run 1 (same tree, spec, environment and tier)"
    assert said in again.stdout
    assert "baseline reused (run 2) · branch: reused run 1" in again.stdout
    fresh = json_document(tierbot("compare", "better", *repo, "--fresh", "--json"))
    head, base = fresh["runs"]
    assert (head["id"], head["reused"], head["reused_run"], base["reused"]) == (4, False, None, True)
    (reused,) = json_document(tierbot("run", "better", *repo, "--json"))["runs"]
    assert (reused["role"], reused["reused"], reused["reused_run"]) == ("run", True, 4)  # the newest
    assert "reused run 4" in reused["reason"]
    (ran,) = json_document(tierbot("run", "better", *repo, "--fresh", "--json"))["runs"]
    assert (ran["reused"], ran["reused_run"], ran["state"]) == (False, None, "succeeded")


def test_run_show_and_runs_speak_the_same_json(tierbot, simple_repo: GitRepo):
    ran = json_document(tierbot("run", "main", "--repo", str(simple_repo), "--json"))
    (run,) = ran["runs"]
    assert (ran["command"], ran["exit_code"], ran["comparison"]) == ("run", 0, None)
    assert run["state"] == "succeeded"
    (shown,) = json_document(tierbot("show", str(run["id"]), "--json"))["runs"]
    assert {o["path"] for o in shown["outputs"]} == {"metrics.json", "notes.txt"}
    assert shown["reports"] == [] and shown["sha"] == run["sha"]
    assert json_document(tierbot("runs", "--json"))["runs"] == [run]


def test_run_defaults_to_the_current_branch_and_reports_a_crash(tierbot, simple_repo: GitRepo):
    simple_repo.branch("crash")
    simple_repo.commit({"make.py": "print('about to fail')\nraise SystemExit(4)\n"})
    done = tierbot("run", cwd=simple_repo.path)
    assert done.returncode == 3, "the experiment itself failed"
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


def test_the_json_shape_is_documented_in_the_repository(tierbot):
    """schemas/cli-output.schema.json is what `tierbot schema --output` prints (UPDATE_GOLDEN=1 rewrites
    it after a deliberate change of the shape)."""
    printed = tierbot("schema", "--output").stdout
    committed = Path(__file__).parents[2] / "schemas" / "cli-output.schema.json"
    if os.environ.get("UPDATE_GOLDEN"):
        committed.write_text(printed)
    assert json.loads(printed) == json.loads(committed.read_text())
    assert json.loads(printed)["title"] == "CliOutput"


SLOW = "import time\nprint('started', flush=True)\ntime.sleep(120)\n"


def test_ctrl_c_cancels_the_commands_runs_and_exits_4(tierbot, cli_env, simple_repo: GitRepo):
    simple_repo.branch("slow")
    simple_repo.commit({"make.py": SLOW})
    running = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "slow", "--repo", str(simple_repo), "--json"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_running(tierbot, 1)
        running.send_signal(signal.SIGINT)
        out, _ = running.communicate(timeout=60)
    finally:
        running.kill()
    assert running.returncode == 4
    (run,) = json.loads(out)["runs"]
    assert (run["state"], run["reason"]) == ("cancelled", "cancelled")


def test_a_run_cancelled_elsewhere_exits_4(tierbot, cli_env, simple_repo: GitRepo):
    simple_repo.branch("slow")
    simple_repo.commit({"make.py": SLOW})
    running = subprocess.Popen(
        [sys.executable, "-m", "bot", "compare", "slow", "--repo", str(simple_repo)],
        env=cli_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_running(tierbot, 1)
        assert tierbot("cancel", "1").returncode == 0
        assert running.wait(timeout=60) == 4
    finally:
        running.kill()


def _wait_until_running(tierbot, run_id: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = tierbot("show", str(run_id), "--json")
        if done.returncode == 0 and json_document(done)["runs"][0]["state"] == "running":
            return
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} never started")


def test_a_local_repository_is_stored_absolute_and_found_by_a_worker_started_elsewhere(
    tierbot, cli_env, settings, simple_repo: GitRepo, tmp_path: Path
):
    (tmp_path / "link").symlink_to(simple_repo.path)
    assert tierbot("run", "main", "--no-wait", cwd=simple_repo.path).returncode == 0  # --repo . (default)
    assert tierbot("run", "better", "--no-wait", "--repo", "link", cwd=tmp_path).returncode == 0
    real = str(simple_repo.path.resolve())
    assert all(real in tierbot("show", run).stdout for run in ("1", "2"))
    assert tierbot("runs", env={"COLUMNS": "400"}).stdout.count(real) == 2

    # Another repository where the worker starts: "." resolved there would run the wrong code.
    elsewhere = GitRepo(tmp_path / "elsewhere")
    elsewhere.commit({"tierbot.yaml": "name: other\nrun: {command: exit 9, outputs: out}\n"})
    worker = subprocess.Popen(
        [sys.executable, "-m", "bot", "worker"], env=cli_env, cwd=elsewhere.path, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 180
        while any(state in (listing := tierbot("runs").stdout) for state in ("queued", "running")):
            assert time.monotonic() < deadline, listing
            time.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=60)
    for run, accuracy in ((1, "0.9"), (2, "0.95")):
        shown = tierbot("show", str(run)).stdout
        assert "succeeded" in shown and "metrics.json" in shown, shown
        assert f"done, accuracy {accuracy}" in (settings.logs_dir / f"run-{run}.log").read_text()


def test_owner_name_and_urls_are_stored_as_given(tierbot, simple_repo: GitRepo, tmp_path: Path):
    bare = tmp_path / "git" / "acme" / "models.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(simple_repo.path), str(bare)], check=True)
    env = {"TIERBOT_GIT_URL_TEMPLATE": f"file://{tmp_path}/git/{{full_name}}.git"}
    for run, repository in enumerate(("acme/models", bare.as_uri()), start=1):
        queued = tierbot("run", "main", "--no-wait", "--repo", repository, cwd=tmp_path, env=env)
        assert queued.returncode == 0, queued.stderr
        assert f" · {repository} · main @ " in tierbot("show", str(run)).stdout


def test_a_tier_this_installation_cannot_run_is_marked_and_refused_before_queueing(
    tierbot, simple_repo: GitRepo, tmp_path: Path
):
    tiers_file = tmp_path / "tiers.yaml"
    tiers_file.write_text(UNAVAILABLE_TIERS)
    env = {"TIERBOT_TIERS_FILE": str(tiers_file)}
    reason = UNAVAILABLE
    listed = tierbot("tiers", env=env)
    assert listed.returncode == 0 and f"Tier gpu-small is unavailable: {reason}." in " ".join(
        listed.stdout.split()
    )
    refused = tierbot("run", "main", "--repo", str(simple_repo), "--tier", "gpu-small", env=env)
    assert refused.returncode == 2
    assert f"Tier 'gpu-small' is unavailable: {reason}. Tiers you may use: local." in stderr_of(refused)
    assert "main @" not in tierbot("runs", env=env).stdout  # nothing was queued

    gpu_small_default = UNAVAILABLE_TIERS.replace("    default: true\n", "") + "    default: true\n"
    tiers_file.write_text(gpu_small_default)
    listed = tierbot("tiers", env=env)
    assert f"The default tier gpu-small is unavailable: {reason}." in " ".join(listed.stdout.split())
    refused = tierbot("run", "main", "--repo", str(simple_repo), env=env)
    assert refused.returncode == 2
    assert f"The default tier 'gpu-small' is unavailable: {reason}" in stderr_of(refused)


def test_piped_output_is_not_wrapped_at_80_columns(tierbot, simple_repo: GitRepo):
    assert tierbot("run", "main", "--repo", str(simple_repo), "--no-wait").returncode == 0
    listing = tierbot("runs", env={"COLUMNS": ""}).stdout  # piped, as to grep or a CI log
    assert str(simple_repo.path) in listing  # the whole repository on one line, not folded
    assert max(len(line) for line in listing.splitlines()) > 80


def test_outside_a_repository_the_error_says_so(tierbot, tmp_path: Path):
    for command in ("run", "compare"):
        done = tierbot(command, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert f"{tmp_path} is not a git repository" in " ".join(done.stderr.split())


def test_compare_defaults_to_the_repositorys_default_branch(tierbot, simple_repo: GitRepo):
    simple_repo.git("branch", "-m", "main", "master")
    document = json_document(tierbot("compare", "better", "--repo", str(simple_repo), "--json"))
    assert document["runs"][1]["ref"] == "master"


def test_runs_are_listed_by_repository_branch_and_state(tierbot, simple_repo: GitRepo, tmp_path: Path):
    assert tierbot("run", "main", "--repo", str(simple_repo), "--no-wait").returncode == 0
    assert tierbot("run", "better", "--repo", str(simple_repo), "--no-wait").returncode == 0
    assert tierbot("cancel", "2").returncode == 0
    listed = json_document(tierbot("runs", "--branch", "better", "--json"))["runs"]
    assert [(r["id"], r["state"]) for r in listed] == [(2, "cancelled")]
    listed = json_document(tierbot("runs", "--state", "queued", "--repo", str(simple_repo), "--json"))["runs"]
    assert [r["id"] for r in listed] == [1]
    assert json_document(tierbot("runs", "--repo", str(tmp_path), "--json"))["runs"] == []


def test_uncommitted_changes_are_said_and_run_only_when_asked(tierbot, simple_repo: GitRepo):
    simple_repo.git("checkout", "-q", "better")
    (simple_repo.path / "accuracy.txt").write_text("0.99")  # changed, not committed
    (simple_repo.path / "notes.md").write_text("new, not added")
    done = tierbot("compare", "--repo", str(simple_repo), "--json")
    assert "Not part of this run (uncommitted): accuracy.txt, notes.md" in " ".join(done.stderr.split())
    head = json_document(done)["runs"][0]
    assert (head["ref"], head["sha"]) == ("better", simple_repo.git("rev-parse", "better"))
    snap = json_document(tierbot("compare", "--repo", str(simple_repo), "--include-uncommitted", "--json"))
    head, accuracy = snap["runs"][0], snap["comparison"]["result"]["metrics"][0]
    assert head["sha"] != simple_repo.git("rev-parse", "better") and accuracy["head"] == 0.99
    assert simple_repo.git("rev-parse", f"refs/tierbot/snapshots/{head['sha']}") == head["sha"]
    assert simple_repo.git("status", "--porcelain") != ""  # the working tree is left as it was
    refused = tierbot("run", "main", "--repo", str(simple_repo), "--include-uncommitted")
    assert refused.returncode == 2 and "takes no REF" in refused.stderr
