"""`tierbot deploy|deployments|rollback`: merge to deploy from the terminal.

A merge on GitHub deploys through the bot's workers; here the same core (`bot.deploy`) is asked, and
with `--wait` (the default) this process does the work itself: it runs the commit if no run of its
tree can be reused, then takes the deployment through its steps, printing each state as it comes.
"""

import json
import subprocess
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.cli.experiments import (
    RepoOption,
    WaitOption,
    console,
    err,
    interruptible,
    pipeline,
    repository_filter,
)
from bot.cli.outcome import Exit
from bot.cli.progress import execute_and_watch
from bot.deploy.plan import deployments_of, request_deploy, request_rollback
from bot.pipeline import Pipeline
from bot.render.templates import term_text
from bot.spec import Spec
from bot.store.models import Deployment, DeploymentState
from bot.tiers import Requester

EnvOption = Annotated[
    str,
    typer.Option("--env", "-e", metavar="E", help="The environment (deploy.environment in tierbot.yaml)."),
]
COLORS = {"live": "green", "failed": "red", "refused": "red", "deploying": "yellow", "retired": "dim"}


def deploy(
    ref: Annotated[str, typer.Argument(help="The commit (or branch) to deploy.")] = "HEAD",
    repo: RepoOption = ".",
    wait: WaitOption = True,
) -> None:
    """Deploy a commit to the environment its tierbot.yaml names, as a merge to main does."""
    with interruptible():
        pipe = pipeline()
        deployment, new = request_deploy(pipe, repo, ref, Requester(name="terminal"), [])
        if not new:
            console.print(
                f"{deployment.short_sha} is deployment {deployment.id} already ({deployment.state})."
            )
        raise typer.Exit(_outcome(pipe, deployment, wait, console))


def deployments(
    repo: Annotated[
        str | None, typer.Option("--repo", "-C", help="Only this repository's.", callback=repository_filter)
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", "-e", metavar="E", help="Only this environment's.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="How many, newest first.")] = 20,
) -> None:
    """List recent deployments, newest first, and what is live where."""
    found = deployments_of(pipeline()).recent(repo, env, limit)
    if not found:
        console.print("No deployments yet: merging to main (or `tierbot deploy`) deploys.")
        return
    table = Table("id", "environment", "commit", "state", "finished", "url", "what happened")
    for d in found:
        state = (
            f"[{COLORS.get(d.state, 'default')}]{d.state}{' (rollback)' if d.kind == 'rollback' else ''}[/]"
        )
        finished = d.finished_at.strftime("%Y-%m-%d %H:%M") if d.finished_at else "—"
        reason = d.reason if d.state != DeploymentState.deploying else f"step: {d.step}"
        table.add_row(
            str(d.id),
            term_text(d.environment),
            d.short_sha,
            state,
            finished,
            term_text(d.url or "—"),
            term_text(reason or ""),
        )
    console.print(table)


def rollback(
    repo: RepoOption = ".",
    env: EnvOption = "production",
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="COMMIT", help="The commit to serve again (default: the last)."),
    ] = None,
    wait: WaitOption = True,
) -> None:
    """Serve again a release the environment served before (kept since), by blue/green as a deploy."""
    with interruptible():
        pipe = pipeline()
        deployment = request_rollback(pipe, repo, env, to, Requester(name="terminal"))
        console.print(f"Rolling back {env} to {deployment.short_sha} (deployment {deployment.id}).")
        raise typer.Exit(_outcome(pipe, deployment, wait, console))


def _outcome(pipe: Pipeline, deployment: Deployment, wait: bool, out: Console) -> int:
    if not wait:
        out.print(
            f"Deployment {deployment.id} is queued: a worker (`tierbot serve`, `tierbot worker`) takes it."
        )
        return Exit.OK
    deployment = deploy_and_wait(pipe, deployment.id, out)
    color = "green" if deployment.state == DeploymentState.live else "red"
    out.print(
        f"[{color}]Deployment {deployment.id}: {deployment.state}[/] — {term_text(deployment.reason or '')}"
    )
    report = pipe.comparison(deployment.comparison_id).report_path if deployment.comparison_id else None
    if report:
        out.print(f"Deploy report: {term_text(report)}")
    return Exit.OK if deployment.state == DeploymentState.live else Exit.FAIL


def deploy_and_wait(pipe: Pipeline, deployment_id: int, out: Console) -> Deployment:
    """Take the deployment to its end in this process: its run first when it has to run."""
    from bot.deploy.machine import Deployer  # the targets, HTTP clients and checks: only when deploying

    deployer = Deployer(pipe)
    shown = None
    while True:
        deployment = deployer.deployments.get(deployment_id)
        if (deployment.state, deployment.step) != shown:
            shown = (deployment.state, deployment.step)
            step = f" ({deployment.step})" if deployment.step else ""
            err.print(f"deployment {deployment.id}: {deployment.state}{step}")
        if DeploymentState(deployment.state).terminal:
            return deployment
        if deployment.state == DeploymentState.waiting and deployment.run_id is not None:
            run = pipe.run(deployment.run_id)
            if not run.run_state.terminal:
                execute_and_watch(pipe, {run.id}, out)
        if not deployer.once():
            time.sleep(pipe.settings.poll_seconds)


def merge_and_deploy(pipe: Pipeline, out: Console, repo: Path, branch: str, keep: bool) -> int:
    """The demo's last act: `branch` merged into main, the merge deployed as a merge on GitHub deploys
    it, and the smoke request answered at the URL. The model is stopped at the end unless `keep`."""
    import requests  # an HTTP client: only for the demo's request

    from bot.deploy.local import stop_environment
    from bot.deploy.stable_url import environment_dir

    out.rule("[bold]Merge to deploy")
    git = ["git", "-C", str(repo), "-c", "user.name=tierbot demo", "-c", "user.email=demo@tierbot.invalid"]
    subprocess.run([*git, "checkout", "-q", "main"], check=True, capture_output=True)
    subprocess.run(
        [*git, "merge", "-q", "--no-ff", branch, "-m", f"Merge {branch}"], check=True, capture_output=True
    )
    deployment, _ = request_deploy(pipe, str(repo), "main", Requester(name="demo"), [])
    out.print(f"{branch} merged into main ({deployment.short_sha}): deploying it to {deployment.environment}")
    deployment = deploy_and_wait(pipe, deployment.id, out)
    if deployment.state != DeploymentState.live:
        out.print(f"[red]The demo could not deploy:[/] {term_text(deployment.reason or deployment.state)}")
        return Exit.FAIL
    smoke = Spec.model_validate(pipe.run(deployment.run_id).spec).deploy.smoke
    answer = requests.post(f"{deployment.url}/predict", json=smoke, timeout=30)
    out.print(f"[green]Live at {deployment.url}[/]: POST /predict {term_text(json.dumps(smoke))}")
    out.print(f"  → {answer.status_code} {term_text(answer.text)}")
    if keep:
        out.print(f"It keeps serving: curl -d '{json.dumps(smoke)}' {deployment.url}/predict")
    else:
        stop_environment(environment_dir(pipe.settings, str(repo), deployment.environment))
        out.print("The model server is stopped (tierbot demo --keep keeps it serving).")
    return Exit.OK
