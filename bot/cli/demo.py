"""`tierbot demo`: the whole loop on the bundled example, with no accounts and no network.

It copies the example into a new git repository, commits main, makes a branch that changes one
hyperparameter, and compares the branch against main. Identical trees give identical cache keys, so a
second demo reuses the first one's runs of both sides instead of running them again (`bot.reuse`).
"""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from rich.console import Console

from bot.cli.deploy import merge_and_deploy
from bot.cli.progress import execute_and_watch
from bot.compare import Comparison
from bot.pipeline import Pipeline
from bot.render.terminal import render_terminal
from bot.request import RunRequest
from bot.resources import resource_dir

EXAMPLE = "iris"
BRANCH = "feature-x"
CHANGE = {"n_estimators": 5}  # the branch's hyperparameter change, applied to params.json


def run_demo(pipeline: Pipeline, console: Console, keep: bool = False) -> int:
    """Returns the exit code: 0 when the comparison was made (whatever its verdict). The temporary
    repository is removed at the end unless `keep`: the runs, their outputs and the report stay in the
    data dir, and a later demo still reuses them (reuse is by tree, not by repository path). After the
    comparison the branch is merged and deployed (`bot.cli.deploy.merge_and_deploy`)."""
    # Resolved, as the CLI's --repo is: runs store the path, and workers elsewhere must find it.
    repo = Path(tempfile.mkdtemp(prefix="tierbot-demo-")).resolve()
    try:
        code = _compare_example(pipeline, console, repo)
        return code or merge_and_deploy(pipeline, console, repo, BRANCH, keep)
    finally:
        if keep:
            console.print(f"The example repository is kept: {repo}")
        else:
            shutil.rmtree(repo, ignore_errors=True)


def _compare_example(pipeline: Pipeline, console: Console, repo: Path) -> int:
    console.rule("[bold]tierbot demo")
    console.print(f"Example repository: {repo}")
    change = make_repository(repo)
    console.print(f"main: the bundled example · {BRANCH}: {change}")

    submission = pipeline.submit(RunRequest(repository=str(repo), ref=BRANCH, base="main"))
    if submission.baseline_reused:
        console.print(
            f"[green]Baseline reused:[/] run {submission.base.id} already ran main's identical tree "
            f"on tier {submission.base.tier}; main is not run again."
        )
    if submission.head_reused:
        console.print(
            f"[green]Branch reused:[/] run {submission.head.reused_run_id} already ran {BRANCH}'s identical "
            f"tree on tier {submission.head.tier}; {BRANCH} is not run again."
        )
    if not (submission.baseline_reused or submission.head_reused):
        console.print(
            f"Running main (run {submission.base.id}) and {BRANCH} (run {submission.head.id}) on tier "
            f"{submission.head.tier}; the first time builds the example's environment (about a minute)."
        )
    execute_and_watch(pipeline, submission.run_ids, console)

    comparison = pipeline.comparison(submission.comparison.id)
    if comparison.state != "done":
        console.print(f"[red]The demo could not compare:[/] {comparison.reason}")
        return 1
    render_terminal(
        Comparison.model_validate(comparison.result), pipeline.report_context(comparison), console
    )
    console.print(f"\nHTML report: {comparison.report_path}")
    console.print(
        "Run [bold]tierbot demo[/] again: both sides are reused (the same tree, spec, environment and tier "
        "ran before), so nothing runs; [bold]tierbot compare --fresh[/] runs a branch again."
    )
    return 0


def make_repository(repo: Path) -> str:
    """Create main (the example as shipped) and a branch with one hyperparameter changed."""
    shutil.copytree(
        resource_dir("examples") / EXAMPLE,
        repo,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("outputs", "__pycache__"),
    )
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Baseline experiment")
    _git(repo, "checkout", "-q", "-b", BRANCH)
    params_file = repo / "params.json"
    params = json.loads(params_file.read_text())
    described = ", ".join(f"{k} {params.get(k)} → {v}" for k, v in CHANGE.items())
    params.update(CHANGE)
    params_file.write_text(json.dumps(params, indent=2) + "\n")
    _git(repo, "commit", "-q", "-am", f"Try {described}")
    return described


def _git(repo: Path, *args: str) -> None:
    identity = [
        "-c",
        "user.name=tierbot demo",
        "-c",
        "user.email=demo@tierbot.invalid",
        "-c",
        "commit.gpgsign=false",
    ]
    subprocess.run(["git", "-C", str(repo), *identity, *args], check=True, capture_output=True)
