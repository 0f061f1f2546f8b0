"""A deployment's view on GitHub: a GitHub deployment of its commit in its environment, its statuses,
and a line on the merged pull request.

The GitHub deployment is found by the id remembered, else by the tierbot id in its payload, before one
is created. Its statuses follow the deployment: `queued` while its run is awaited, `in_progress` through
the steps, then `success` (with `environment_url`, and `log_url` to the deploy report when tierbot has
a public URL) or `failure`; a deployment replaced later, or skipped, goes `inactive` (GitHub inactivates
earlier deployments by itself only in non-production environments). A status is posted only when the
latest one says something else, so a sync repeated after a crash posts nothing twice. The merged pull
request gets one comment per environment, edited in place (`PullComments`).
"""

from github.Deployment import Deployment as GitHubDeployment
from github.Repository import Repository

from bot.deploy.plan import deployments_of
from bot.deploy.report import report_link
from bot.github.client import GitHubApi
from bot.github.deployments import DeploymentTarget
from bot.github.reporter import PullComments
from bot.pipeline import Pipeline
from bot.render.templates import template
from bot.store import Report
from bot.store.models import Deployment, DeploymentState

MAX_DESCRIPTION = 140  # GitHub refuses a longer deployment status description
STATUS = {
    DeploymentState.queued: "queued",
    DeploymentState.waiting: "queued",
    DeploymentState.deploying: "in_progress",
    DeploymentState.live: "success",
    DeploymentState.failed: "failure",
    DeploymentState.refused: "failure",
    DeploymentState.retired: "inactive",
    DeploymentState.skipped: "inactive",
}


class GitHubDeployments:
    """Syncs the deployments a run reports (its own, and rollbacks to its release) to GitHub."""

    def __init__(self, api: GitHubApi):
        self.api = api

    def sync(self, pipeline: Pipeline, report: Report) -> dict:
        memo = dict(report.memo)
        for deployment in deployments_of(pipeline).of_run(report.run_id):
            target = _target_of(deployment)
            if target is None:  # asked elsewhere (the CLI), for a repository GitHub does not host
                continue
            repo = self.api.repo(target.installation, target.repository)
            found = self._deployment(repo, deployment, memo)
            link = report_link(pipeline, deployment)
            link = link if link and link.startswith("http") else None  # a file here helps nobody on GitHub
            self._status(found, deployment, link)
            if target.pull_request is not None:
                self._comment(pipeline, repo, target, deployment, link)
        return memo

    @staticmethod
    def _deployment(repo: Repository, deployment: Deployment, memo: dict) -> GitHubDeployment:
        """Its GitHub deployment: by the id remembered, else by the id in the payload, else created."""
        key = str(deployment.id)
        if key in memo:
            return repo.get_deployment(memo[key])
        for found in repo.get_deployments(sha=deployment.sha, environment=deployment.environment):
            if (found.payload or {}).get("tierbot_deployment") == deployment.id:
                memo[key] = found.id
                return found
        created = repo.create_deployment(
            ref=deployment.sha,
            task="deploy",
            auto_merge=False,
            required_contexts=[],  # the commit's checks ran on its pull request; tierbot deploys it
            payload={"tierbot_deployment": deployment.id, "kind": deployment.kind},
            environment=deployment.environment,
            description=f"tierbot {deployment.kind} {deployment.id}",
            production_environment=deployment.environment == "production",
        )
        memo[key] = created.id
        return created

    @staticmethod
    def _status(found: GitHubDeployment, deployment: Deployment, report: str | None) -> None:
        state = "error" if deployment.down else STATUS[DeploymentState(deployment.state)]
        description = _description(deployment)
        latest = next(iter(found.get_statuses()), None)
        if latest is not None and (latest.state, latest.description) == (state, description):
            return
        fields = {"state": state, "description": description, "auto_inactive": False}
        if deployment.url and state in ("in_progress", "success"):
            fields["environment_url"] = deployment.url
        if report:
            fields["log_url"] = report
        # PyGithub's create_status has no log_url: the same POST, through the client's requester.
        found.requester.requestJsonAndCheck("POST", f"{found.url}/statuses", input=fields)

    def _comment(
        self,
        pipeline: Pipeline,
        repo: Repository,
        target: DeploymentTarget,
        deployment: Deployment,
        link: str | None,
    ) -> None:
        pull = repo.get_pull(target.pull_request)
        login = self.api.bot_login(target.installation)
        comments = PullComments(pipeline.db, target.repository, pull, login)
        marker = f"<!-- tierbot:deploy environment={deployment.environment} -->"
        body = template("github/deploy.md.j2", "md").render(marker=marker, d=deployment, report=link)
        comment = comments.find(marker)
        if comment is None:
            comments.post(marker, body)
        elif comment.body != body:
            comment.edit(body)


def _description(deployment: Deployment) -> str:
    if deployment.state == DeploymentState.deploying:
        text = f"tierbot: {deployment.step or 'deploying'}"
    elif deployment.state in (DeploymentState.queued, DeploymentState.waiting):
        text = f"tierbot: waiting for run {deployment.run_id}" if deployment.run_id else "tierbot: queued"
    else:
        text = deployment.reason or deployment.state
    return text if len(text) <= MAX_DESCRIPTION else text[: MAX_DESCRIPTION - 1] + "…"


def _target_of(deployment: Deployment) -> DeploymentTarget | None:
    for entry in deployment.report_to:
        if DeploymentTarget.outbox in entry:
            return DeploymentTarget.model_validate(entry[DeploymentTarget.outbox])
    return None
