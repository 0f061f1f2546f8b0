"""`tierbot ci` as a GitHub Actions job runs it: a real `tierbot` process in a checkout made the way
actions/checkout makes one, a real event file and the job's variables, posting to the fake GitHub with
a job's GITHUB_TOKEN (an installation token of GitHub Actions' own App, with the workflow's
permissions). What crossed the wire, the job summary, the step's outputs and the exit status are
asserted; the cache is the test's data dir (the `--cache` default comes from TIERBOT_DATA_DIR)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import GitRepo
from ..fakes.cli import json_document
from ..fakes.fakegithub import FakeGitHub
from ..fakes.github_bot import REPO, open_pull, pull_request, sha_of

NAME = "tierbot: simple (local)"
MARKER = "<!-- tierbot:sticky experiment=simple tier=local -->"
WORKFLOW = Path(__file__).parents[2] / "examples" / "github-actions" / "tierbot.yml"
README = Path(__file__).parents[2] / "README.md"


def checkout(origin: GitRepo, workspace: Path, pull: int | None = None, depth: int | None = None) -> Path:
    """What actions/checkout@v4 leaves: every branch as `origin/…`; for pull request `pull` (head: the
    branch `better`), GitHub's merge commit (`refs/pull/N/merge`) checked out detached; for a push, the
    branch `main` checked out. `depth`: a shallow clone, as without `fetch-depth: 0`."""

    def run(*args: str) -> None:
        subprocess.run(["git", "-C", str(workspace), *args], check=True, capture_output=True)

    workspace.mkdir(parents=True)
    run("init", "-q")
    run("remote", "add", "origin", f"file://{origin.path}")
    shallow = [f"--depth={depth}"] if depth else []
    if pull is None:
        run("fetch", "-q", *shallow, "origin", "+refs/heads/*:refs/remotes/origin/*")
        run("checkout", "-q", "-B", "main", "refs/remotes/origin/main")
        return workspace
    head = origin.git("rev-parse", "better")
    merge = origin.git("commit-tree", f"{head}^{{tree}}", "-p", "main", "-p", head, "-m", "Merge")
    origin.git("update-ref", f"refs/pull/{pull}/merge", merge)
    if not depth:
        run("fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*")
    run("fetch", "-q", *shallow, "origin", f"+refs/pull/{pull}/merge:refs/remotes/pull/{pull}/merge")
    run("checkout", "-q", "--detach", f"refs/remotes/pull/{pull}/merge")
    return workspace


class Job:
    """One GitHub Actions job's files and variables around `tierbot ci`."""

    def __init__(self, tmp_path: Path, name: str, fake: FakeGitHub, token: str, workspace: Path, event: dict):
        self.dir = tmp_path / name
        self.dir.mkdir()
        self.summary, self.outputs = self.dir / "summary.md", self.dir / "outputs"
        (self.dir / "event.json").write_text(json.dumps(event))
        self.env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": "pull_request" if "pull_request" in event else "push",
            "GITHUB_EVENT_PATH": str(self.dir / "event.json"),
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_TOKEN": token,
            "GITHUB_API_URL": fake.url,
            "GITHUB_SERVER_URL": "https://github.example",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_STEP_SUMMARY": str(self.summary),
            "GITHUB_OUTPUT": str(self.outputs),
            "GITHUB_WORKSPACE": str(workspace),
        }


def job_env(cli_env: dict, job: Job, without: tuple[str, ...] = ()) -> dict:
    """The job's variables (but `without`), and none of the caller's GITHUB_*."""
    env = {k: v for k, v in cli_env.items() if not k.startswith("GITHUB_")}
    return env | {k: v for k, v in job.env.items() if k not in without}


@pytest.fixture
def ci(cli_env):
    """`tierbot ci ARGS` in a job."""

    def call(job: Job, *args: str, without: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bot", "ci", *args],
            env=job_env(cli_env, job, without),
            cwd=job.dir,
            capture_output=True,
            text=True,
            timeout=240,
        )

    return call


@pytest.fixture
def token(fake: FakeGitHub) -> str:
    """The job's GITHUB_TOKEN, as the README's workflow grants it."""
    return fake.add_actions_token(REPO, {"contents": "read", "checks": "write", "pull_requests": "write"})


def pull_job(tmp_path, fake, token, repo: GitRepo, name: str, branch: str = "better") -> Job:
    """Pull request 7 (head `branch`) open on the fake GitHub, its checkout and its job."""
    if branch != "better":
        repo.git("branch", "-f", "better", branch)
    open_pull(fake, repo)
    workspace = checkout(repo, tmp_path / f"{name}-workspace", pull=7)
    return Job(tmp_path, name, fake, token, workspace, pull_request(repo, "synchronize"))


def stickies(fake: FakeGitHub) -> list:
    return [c for c in fake.comments_on(REPO, 7) if c.body.startswith(MARKER)]


def test_a_pull_request_gets_the_bots_check_run_and_sticky_comment(ci, fake, token, simple_repo, tmp_path):
    job = pull_job(tmp_path, fake, token, simple_repo, "job")
    done = ci(job)
    assert done.returncode == 0, done.stderr + done.stdout  # changed: the verdict exits 0
    head = sha_of(simple_repo, "better")
    (check,) = fake.checks_for(REPO, head)
    assert check.name == NAME and check.external_id == "run-1"
    first, last = check.history[0], check.history[-1]
    assert first["status"] == "in_progress", "pending first, while the runs go"
    assert (last["status"], last["conclusion"]) == ("completed", "neutral")
    assert last["title"].startswith("CHANGED") and "accuracy" in last["summary"]
    (comment,) = fake.comments_on(REPO, 7)
    assert comment.user.login == "github-actions[bot]" and comment.body.startswith(MARKER)
    assert f"commit {head}" in comment.body and "CHANGED" in comment.body
    assert "`main @ " in comment.body and "(merge base)" in comment.body  # against main, by name
    run_page = "https://github.example/acme/models/actions/runs/4242"
    assert f"[full report]({run_page})" in comment.body, "the report is an artifact of the run"
    sent = {r.headers["authorization"] for r in fake.calls("POST") + fake.calls("PATCH")}
    assert sent == {f"token {token}"}, "posted with the job's token alone"
    summary = job.summary.read_text()
    assert summary.startswith("🟡 **CHANGED**") and "accuracy" in summary and MARKER not in summary
    outputs = dict(line.split("=", 1) for line in job.outputs.read_text().splitlines())
    assert outputs["verdict"] == "changed" and Path(outputs["report"]).is_file()
    assert "CHANGED" in done.stdout and "accuracy" in done.stdout  # the terminal's report too


def test_a_pull_request_that_changes_no_output_passes(ci, fake, token, simple_repo, tmp_path):
    simple_repo.git("checkout", "-q", "-b", "docs", "main")
    simple_repo.commit({"README.md": "How to run it.\n"})
    simple_repo.git("checkout", "-q", "main")
    job = pull_job(tmp_path, fake, token, simple_repo, "job", branch="docs")
    assert ci(job).returncode == 0
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "docs"))
    assert (check.status, check.conclusion) == ("completed", "success")
    assert job.summary.read_text().startswith("✅ **PASS**")


def test_a_failing_verdict_fails_the_check_and_exits_1(ci, fake, token, simple_repo, tmp_path):
    job = pull_job(tmp_path, fake, token, simple_repo, "job", branch="worse")
    done = ci(job)
    assert done.returncode == 1, done.stderr + done.stdout
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "worse"))
    assert (check.status, check.conclusion) == ("completed", "failure")
    assert "FAIL" in job.summary.read_text() and "FAIL" in stickies(fake)[0].body


def test_a_second_job_reuses_the_baseline_and_edits_the_comment(ci, fake, token, simple_repo, tmp_path):
    first = json_document(ci(pull_job(tmp_path, fake, token, simple_repo, "first"), "--json"))
    head, base = first["runs"]
    assert (first["command"], base["role"], base["reused"]) == ("ci", "baseline", False)
    simple_repo.git("checkout", "-q", "better")
    pushed = simple_repo.commit({"accuracy.txt": "0.96"}, "better still")
    simple_repo.git("checkout", "-q", "main")
    fake.push(REPO, 7, pushed)
    second_job = pull_job(tmp_path, fake, token, simple_repo, "second")
    second = json_document(ci(second_job, "--json"))
    again = second["runs"][1]
    assert (again["id"], again["reused"]) == (base["id"], True), "main is not run again"
    assert second["runs"][0]["sha"] == pushed and second["comparison"]["verdict"] == "changed"
    (comment,) = stickies(fake)
    assert f"commit {pushed}" in comment.body and comment.edits, "one comment, edited in place"
    (check,) = fake.checks_for(REPO, pushed)
    assert (check.status, check.conclusion) == ("completed", "neutral")
    assert "baseline reused" in second_job.summary.read_text()


def test_a_fresh_cache_finds_the_sticky_comment_by_its_author(ci, fake, token, simple_repo, tmp_path):
    """Without the cache that remembers its id, the comment is found among github-actions[bot]'s."""
    assert ci(pull_job(tmp_path, fake, token, simple_repo, "first")).returncode == 0
    fake.add_comment(REPO, 7, f"{MARKER}\nquoted by someone", user="octocat")  # not ours: left alone
    job = pull_job(tmp_path, fake, token, simple_repo, "second", branch="worse")
    done = ci(job, "--cache", str(tmp_path / "empty-cache"))
    assert done.returncode == 1, done.stderr
    ours = [c for c in stickies(fake) if c.user.login == "github-actions[bot]"]
    assert len(ours) == 1 and "FAIL" in ours[0].body
    assert fake.calls("GET", "/user")[0].status == 403, "the job's token may not ask who it is"
    assert "403" not in done.stderr, "an expected refusal is no news"


def test_a_token_that_may_not_post_is_warned_about_and_the_verdict_still_exits(
    ci, fake, simple_repo, tmp_path
):
    read_only = fake.add_actions_token(REPO, {"contents": "read"})  # the default of many organizations
    job = pull_job(tmp_path, fake, read_only, simple_repo, "job", branch="worse")
    done = ci(job)
    assert done.returncode == 1, "exits by the verdict, not by GitHub's refusal"
    warning = " ".join(done.stderr.split())
    assert "403: Resource not accessible by integration" in warning
    assert "permissions: checks: write pull-requests: write" in warning
    assert warning.count("Warning:") == 1, "said once"
    assert fake.check_runs == {} and fake.comments_on(REPO, 7) == []
    assert "FAIL" in job.summary.read_text() and "FAIL" in done.stdout


def test_a_cancelled_job_completes_its_check_run_and_exits_4(cli_env, fake, token, simple_repo, tmp_path):
    """GitHub Actions cancels a job with SIGINT (Ctrl-C): the runs are cancelled, and the check run is
    completed as cancelled rather than left pending."""
    simple_repo.git("checkout", "-q", "-b", "slow", "main")
    simple_repo.commit({"make.py": "import time\nprint('started', flush=True)\ntime.sleep(120)\n"})
    simple_repo.git("checkout", "-q", "main")
    job = pull_job(tmp_path, fake, token, simple_repo, "job", branch="slow")
    command = [sys.executable, "-m", "bot", "ci"]
    running = subprocess.Popen(
        command, env=job_env(cli_env, job), cwd=job.dir, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not fake.checks_for(REPO, sha_of(simple_repo, "slow")):
            assert time.monotonic() < deadline and running.poll() is None, "no pending check run"
            time.sleep(0.1)
        running.send_signal(signal.SIGINT)
        _, stderr = running.communicate(timeout=60)
    finally:
        running.kill()
    assert running.returncode == 4, stderr
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "slow"))
    assert [h["status"] for h in check.history] == ["in_progress", "completed"]
    assert check.conclusion == "cancelled"


def test_a_pull_request_with_a_broken_spec_hears_why_and_exits_2(ci, fake, token, simple_repo, tmp_path):
    simple_repo.git("checkout", "-q", "-b", "broken", "main")
    simple_repo.commit({"tierbot.yaml": "name: simple\nrun: {command: python make.py}\ncomapre: {}\n"})
    simple_repo.git("checkout", "-q", "main")
    job = pull_job(tmp_path, fake, token, simple_repo, "job", branch="broken")
    done = ci(job)
    assert done.returncode == 2 and "comapre" in done.stderr
    (check,) = fake.checks_for(REPO, sha_of(simple_repo, "broken"))
    assert (check.status, check.conclusion) == ("completed", "failure")
    assert "comapre" in stickies(fake)[0].body and "comapre" in job.summary.read_text()


def test_a_push_runs_the_commit_alone(ci, fake, token, simple_repo, tmp_path):
    main = sha_of(simple_repo, "main")
    event = {"ref": "refs/heads/main", "before": "0" * 40, "after": main, "repository": {"full_name": REPO}}
    job = Job(tmp_path, "push", fake, token, checkout(simple_repo, tmp_path / "workspace"), event)
    done = ci(job, "--json")
    assert done.returncode == 0, done.stderr
    (run,) = json_document(done)["runs"]
    assert (run["role"], run["ref"], run["sha"], run["state"]) == ("run", "main", main, "succeeded")
    summary = job.summary.read_text()  # `@` as GitHub cannot take it for a mention
    assert f"**main ＠ {main[:7]} ran on tier local: 2 output files**" in summary
    assert fake.calls("POST") == [] and fake.calls("PATCH") == [], "a push has no pull request to tell"
    again = json_document(ci(job, "--json"))["runs"][0]
    assert again["reused_run"] == run["id"], "kept in the cache: the same tree does not run again"


def test_a_push_to_main_is_the_baseline_of_pull_requests(ci, fake, token, simple_repo, tmp_path):
    event = {"ref": "refs/heads/main", "after": sha_of(simple_repo, "main"), "repository": {}}
    push = Job(tmp_path, "push", fake, token, checkout(simple_repo, tmp_path / "workspace"), event)
    assert ci(push).returncode == 0
    pulled = json_document(ci(pull_job(tmp_path, fake, token, simple_repo, "pull"), "--json"))
    assert pulled["runs"][1]["reused"], "main's commit ran in the push's job"


@pytest.mark.parametrize(
    ("without", "said"),
    [
        ("GITHUB_EVENT_PATH", "GITHUB_EVENT_PATH is not set"),
        ("GITHUB_REPOSITORY", "GITHUB_REPOSITORY is not set"),
        ("GITHUB_TOKEN", "GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}"),
    ],
)
def test_a_missing_variable_is_named_with_what_to_write(
    ci, fake, token, simple_repo, tmp_path, without, said
):
    job = pull_job(tmp_path, fake, token, simple_repo, "job")
    done = ci(job, without=(without,))
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert fake.requests == [], "nothing is asked of GitHub"


def test_a_broken_event_file_or_a_shallow_checkout_is_said_plainly(ci, fake, token, simple_repo, tmp_path):
    job = pull_job(tmp_path, fake, token, simple_repo, "job")
    Path(job.env["GITHUB_EVENT_PATH"]).write_text("{not json")
    broken = ci(job)
    assert broken.returncode == 2 and "not JSON" in broken.stderr
    assert f"GITHUB_EVENT_PATH names {job.env['GITHUB_EVENT_PATH']}" in " ".join(broken.stderr.split())
    shallow = Job(
        tmp_path,
        "shallow",
        fake,
        token,
        checkout(simple_repo, tmp_path / "shallow-workspace", pull=7, depth=1),
        pull_request(simple_repo, "synchronize"),
    )
    done = ci(shallow)
    assert done.returncode == 2 and "shallow clone" in done.stderr and "fetch-depth: 0" in done.stderr
    assert fake.requests == []


def test_the_readme_shows_the_example_workflow_as_it_is():
    """README's "CI mode" workflow is examples/github-actions/tierbot.yml, byte for byte."""
    readme = README.read_text()
    start = readme.index("```yaml\n# .github/workflows/tierbot.yml") + len("```yaml\n")
    assert readme[start : readme.index("```\n", start)] == WORKFLOW.read_text()
    assert "fetch-depth: 0" in WORKFLOW.read_text() and "tierbot ci" in WORKFLOW.read_text()


def test_the_example_workflow_runs_tierbot_ci_with_what_it_needs():
    """The permissions the warnings name, the history, the cache where `--cache` finds it."""
    import yaml

    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["permissions"] == {"contents": "read", "checks": "write", "pull-requests": "write"}
    (job,) = workflow["jobs"].values()
    steps = {step.get("uses", step.get("run", "")).split("@")[0]: step for step in job["steps"]}
    assert steps["actions/checkout"]["with"]["fetch-depth"] == 0
    assert steps["tierbot ci"]["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    cached = steps["actions/cache/restore"]["with"]["path"]
    assert job["env"]["TIERBOT_DATA_DIR"].endswith(cached) and steps["actions/cache/save"]["if"] == "always()"
