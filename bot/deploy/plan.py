"""What a deployment deploys: the commit's `deploy:` section, and the artifact of a run of exactly that
tree, spec, environment and tier.

A deployment asks for its run through the pipeline like any door (`RunRequest`, automatic, not fresh),
so the pipeline's reuse gives it the outcome of the run that ran the same tree before (a merge commit,
squashed or not, usually has the tree its pull request's head ran), joins the one in flight, or runs the
commit first. What is deployed is then exactly what was compared: the very blob of the artifact.
"""

from bot import targets
from bot.artifacts import ArtifactUnavailable
from bot.deploy import DeployFailed, Release
from bot.deploy.deployments import KEPT_RELEASES, PRUNED, Deployments
from bot.errors import TierbotError
from bot.manifest import FileEntry
from bot.pipeline import AlreadyRequested, Pipeline
from bot.render.run_states import ref_label
from bot.request import RunRequest
from bot.spec import SPEC_FILE, DeploySection, Spec, parse_spec
from bot.store import Run, RunState
from bot.store.models import Deployment, DeploymentState
from bot.targets import Target
from bot.tiers import Requester

DEPLOY_RUN = "deploy:"  # the `once` of a deployment's run, then its id


def is_deploy_run(request: RunRequest) -> bool:
    """Whether the request is a deployment's run: doors that show deployments subscribe to it."""
    return (request.once or "").startswith(DEPLOY_RUN)


class NothingToDeploy(TierbotError):
    """The commit's tierbot.yaml has no `deploy:` section (or there is no tierbot.yaml)."""


def deploy_section(pipeline: Pipeline, repository: str, sha: str) -> DeploySection:
    text = pipeline.code.read(repository, sha, SPEC_FILE)
    if text is None:
        raise NothingToDeploy(f"{sha[:7]} has no {SPEC_FILE}: nothing to deploy")
    spec = parse_spec(text, f"{SPEC_FILE} ({ref_label(sha, sha)})")
    if spec.deploy is None:
        raise NothingToDeploy(f"{SPEC_FILE} at {sha[:7]} has no deploy: section: nothing to deploy")
    return spec.deploy


def deployments_of(pipeline: Pipeline) -> Deployments:
    settings = pipeline.settings
    return Deployments(pipeline.db, settings.lease_seconds, settings.max_attempts)


def request_deploy(
    pipeline: Pipeline, repository: str, ref: str, requester: Requester, report_to: list[Target]
) -> tuple[Deployment, bool]:
    """Record the deployment of `ref`'s commit to the environment its spec names (once: a deployment
    recorded before is found, with `report_to` added); whether it is new. Raises TierbotError."""
    sha = pipeline.code.resolve(repository, ref)
    deploy = deploy_section(pipeline, repository, sha)
    return deployments_of(pipeline).record(
        repository,
        deploy.environment,
        sha,
        deploy.target,
        requester.model_dump(mode="json"),
        targets.stored(report_to),
    )


def submit_run(pipeline: Pipeline, deployment: Deployment) -> Run:
    """The run that holds the deployment's artifact: reused, joined, or queued now."""
    request = RunRequest(
        repository=deployment.repository,
        ref=deployment.sha,
        requester=Requester.model_validate(deployment.requested_by),
        report_to=targets.loaded(deployment.report_to),
        once=f"{DEPLOY_RUN}{deployment.id}",
    )
    try:
        return pipeline.submit(request).head
    except AlreadyRequested as earlier:  # asked before a crash
        return earlier.run
    except TierbotError as exc:
        raise DeployFailed(f"{deployment.short_sha} cannot be run: {exc}") from None


def run_section(run: Run) -> DeploySection:
    """The `deploy:` section the run ran with: what the deployment follows, to the letter."""
    if run.state != RunState.succeeded:
        raise DeployFailed(f"run {run.id} of {run.short_sha} {run.state}: {run.reason}; nothing was deployed")
    deploy = Spec.model_validate(run.spec).deploy
    if deploy is None:
        raise DeployFailed(f"{SPEC_FILE} at {run.short_sha} has no deploy: section")
    return deploy


def release(pipeline: Pipeline, deployment: Deployment, run: Run, deploy: DeploySection) -> Release:
    """The release of `run`'s artifact, its blob fetched here."""
    outputs = {o.path: o for o in pipeline.outputs(run.id)}
    found = outputs.get(deploy.artifact)
    if found is None:
        made = ", ".join(sorted(outputs)[:10]) or "no files"
        raise DeployFailed(f"run {run.id} made no {deploy.artifact} among its outputs (it made {made})")
    entry = FileEntry(path=found.path, size=found.size, hash=found.hash)
    try:
        pipeline.artifacts.fetch([entry])
    except ArtifactUnavailable as exc:
        raise DeployFailed(f"the artifact {deploy.artifact} of run {run.id} cannot be read: {exc}") from None
    return Release(
        deployment_id=deployment.id,
        repository=deployment.repository,
        environment=deployment.environment,
        sha=deployment.sha,
        run_id=run.reused_run_id or run.id,
        predict=deploy.predict,
        artifact=pipeline.blob_path(entry),
        artifact_name=deploy.artifact,
        artifact_hash=entry.hash,
        requirements=Spec.model_validate(run.spec).environment.requirements,
        deployed_at=deployment.started_at.isoformat() if deployment.started_at else "",
    )


def request_rollback(
    pipeline: Pipeline,
    repository: str,
    environment: str,
    to: str | None,
    requester: Requester,
    report_to: list[Target] | None = None,
) -> Deployment:
    """Queue a rollback of the environment to a release it served before: the one `to` names (a commit,
    or a prefix of one), else the newest replaced one of another commit than the live one. It reports
    where the release's deployment did, and to `report_to` (the door it was asked at) too."""
    deployments = deployments_of(pipeline)
    live = deployments.live(repository, environment)
    if live is None:
        raise TierbotError(f"nothing is live in {environment} of {repository}: there is nothing to roll back")
    replaced = [
        d
        for d in deployments.recent(repository, environment, limit=200)
        if d.state == DeploymentState.retired and d.instance
    ]
    kept = [d for d in replaced if not d.instance.get(PRUNED)]
    named = (lambda d: d.sha.startswith(to.lower())) if to is not None and len(to) >= 4 else None
    if to is None:
        source = next((d for d in kept if d.sha != live.sha), None)
    else:
        source = next(filter(named, kept), None) if named else None
    if source is None:
        known = ", ".join(dict.fromkeys(d.short_sha for d in kept)) or "none"
        pruned = next(filter(named, replaced), None) if named else None
        if pruned is not None:
            raise TierbotError(
                f"the release of {pruned.short_sha} is no longer kept in {environment}: the newest "
                f"{KEPT_RELEASES} are kept beside the live one ({live.short_sha}; kept: {known})"
            )
        which = f"to {to}" if to else "to"
        raise TierbotError(
            f"no release {which} roll back to in {environment} (live: {live.short_sha}; kept: {known})"
        )
    return deployments.record_rollback(
        source, requester.model_dump(mode="json"), targets.stored(report_to or [])
    )
