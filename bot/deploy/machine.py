"""The deploy steps, as a state machine a worker drives and another worker resumes.

    planning → (waiting for the run) → starting → checking → switching → draining → live
                                     ↘ failed | refused: the version that was live keeps serving

`step` is saved before each step's work, so a worker that takes over a dead one's deployment knows
where it was: before the switch it stops whatever new version was half started and starts again (the
checks are idempotent); at the switch it switches (again) if the route does not name the new version
yet; after it, it only stops the old version and records the new one live. A deployment taken over
more than `max_attempts` times fails instead, the old version still serving: never one `deploying`
forever. A rollback is the same steps on a kept release (`restarting`), with no prediction diff: what
it serves again was live before.
"""

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from bot.aws_options import NOT_INSTALLED as AWS_NOT_INSTALLED
from bot.backends.docker_options import NOT_INSTALLED
from bot.deploy import DeployFailed, Target, Version, checks
from bot.deploy.deployments import KEPT_RELEASES, Deployments, State
from bot.deploy.local import LocalTarget
from bot.deploy.local_options import stable_address
from bot.deploy.plan import deployments_of, release, run_section, submit_run
from bot.deploy.report import Attempt, write_report
from bot.deploy.stable_url import StableUrl
from bot.pipeline import Pipeline
from bot.spec import Spec
from bot.store.models import Deployment
from bot.store.queue import LeaseLost

log = logging.getLogger(__name__)


class Refused(DeployFailed):
    """The prediction diff changed more answers than `deploy.max_changed` allows."""


def live_reason(d: Deployment) -> str:
    """What a live deployment's reason says first."""
    return f"live at {d.url}, {'rolled back to' if d.kind == 'rollback' else 'serving'} {d.short_sha}"


class Deployer:
    """Takes deployments through their steps, one claim per `once` (workers call it as they sync
    reports). `target_for` builds the target a deployment names (tests may give their own)."""

    def __init__(self, pipeline: Pipeline, target_for: Callable[[Deployment], Target] | None = None):
        self.pipeline = pipeline
        self.deployments = deployments_of(pipeline)
        self.target_for = target_for or self._target

    def _target(self, deployment: Deployment) -> Target:
        if deployment.target == "docker":
            try:  # the docker SDK is the `tierbot[docker]` extra: imported by docker deployments only
                from bot.deploy.docker_target import docker_target
            except ImportError:
                raise DeployFailed(NOT_INSTALLED) from None
            return docker_target(self.pipeline, deployment)
        if deployment.target == "sagemaker":
            try:  # boto3 is the `tierbot[aws]` extra: imported by sagemaker deployments only
                from bot.deploy.sagemaker_target import sagemaker_target
            except ImportError:
                raise DeployFailed(AWS_NOT_INSTALLED) from None
            return sagemaker_target(self.pipeline, deployment)
        if deployment.target != "local":
            raise DeployFailed(
                f"deploy target {deployment.target!r} is unknown: use local, docker or sagemaker"
            )
        settings, code = self.pipeline.settings, self.pipeline.code
        address = stable_address(self.pipeline.tiers, deployment.environment, "local")
        return LocalTarget(settings, code, deployment.repository, deployment.environment, address)

    def once(self) -> bool:
        """Work on one deployment, if one is due; whether there was anything to do."""
        claim = self.deployments.claim()
        self._touch([d.run_id for d in claim.skipped])
        if claim.deployment is not None:
            self.execute(claim.deployment)
        return claim.deployment is not None or bool(claim.skipped)

    def execute(self, deployment: Deployment) -> None:
        attempt = Attempt()
        beat = _Heartbeat(self.deployments, deployment.id, self.pipeline.settings.lease_seconds / 3)
        self._touch([deployment.run_id])
        try:
            if deployment.attempts > 1:
                stopped = f"resumed at step {deployment.step} (attempt {deployment.attempts})"
                attempt.steps(f"{stopped}: the worker taking it before stopped")
            if deployment.attempts > self.deployments.max_attempts and deployment.step != "draining":
                times = deployment.attempts - 1
                raise DeployFailed(
                    f"gave up: the bot stopped mid-deploy {times} time{'s' if times > 1 else ''}"
                )
            self._steps(deployment, attempt)
        except LeaseLost:
            log.warning("deployment %s: lost to another worker", deployment.id)
        except DeployFailed as exc:
            self._fail(
                deployment.id, attempt, str(exc), State.refused if isinstance(exc, Refused) else State.failed
            )
        except Exception as exc:  # a bug must fail the deployment visibly, not kill the worker
            log.exception("deployment %s failed inside tierbot", deployment.id)
            self._fail(deployment.id, attempt, f"internal error in tierbot: {exc!r}", State.failed)
        finally:
            beat.stop()

    # -- the steps ------------------------------------------------------------------------------------

    def _steps(self, d: Deployment, attempt: Attempt) -> None:
        save = lambda **fields: self.deployments.save(d.id, **fields)  # noqa: E731
        if d.step == "planning":
            save(step="planning")
            run = submit_run(self.pipeline, d)
            if not run.run_state.terminal:
                attempt.steps(f"waiting for run {run.id} of {d.short_sha}")
                self.deployments.wait_for_run(d.id, run.id)
                self._touch([run.id])
                return
            d.run_id, d.step = run.id, "starting"
            save(run_id=run.id, step="starting")
        run = self.pipeline.run(d.run_id)
        deploy = attempt.deploy = run_section(run)
        attempt.tolerance = deploy.compare or Spec.model_validate(run.spec).compare.json_tolerance
        previous = self._previous(d)
        save(previous_id=previous.id if previous else None)  # before the URL: its failure keeps the old
        d.previous_id = previous.id if previous else None
        target = self.target_for(d)
        d.url = target.url()
        save(url=d.url)
        if d.step in ("starting", "restarting", "checking"):
            version = self._start(d, target, attempt, run)
            self._check(d, version, previous, target, attempt)
            d.step = "switching"
            save(step="switching")
        if d.step == "switching":
            self._switch(d, target, attempt)
        if previous is not None:  # its handle now: the supervisor may have restarted it since
            previous = self.deployments.get(previous.id)
        if previous is not None and previous.instance and previous.instance != d.instance:
            attempt.steps(
                f"draining and stopping deployment {previous.id} ({previous.short_sha}); its release is kept"
            )
            target.stop(previous.instance)
        self._prune(d, target, attempt)
        self._end(d, attempt, State.live, live_reason(d))

    def _prune(self, d: Deployment, target: Target, attempt: Attempt) -> None:
        """Releases on this machine beyond the new one and the newest KEPT_RELEASES others deleted (the
        sagemaker target prunes its own)."""
        if not isinstance(target, StableUrl):
            return
        others = [x for x in self.deployments.releases(d.repository, d.environment) if x.target == d.target]
        names = [Path(x.instance["release"]).name for x in [d, *others]]
        kept = list(dict.fromkeys(names))[: KEPT_RELEASES + 1]
        removed = target.prune(set(kept))
        self.deployments.pruned([x.id for x, name in zip(others, names[1:], strict=True) if name not in kept])
        if removed:
            attempt.steps(
                f"releases of deployments {', '.join(removed)} deleted: the newest {KEPT_RELEASES} are kept "
                "beside the live one"
            )

    def _switch(self, d: Deployment, target: Target, attempt: Attempt) -> None:
        """New traffic to the new version (unless a dead attempt switched it already), then `draining`."""
        problem = target.problem(d.instance)
        if problem is not None:
            raise DeployFailed(f"the new version stopped before the switch: {problem}")
        if target.routed() != d.instance:
            target.switch(Version(url=d.instance["url"], handle=d.instance))
        attempt.steps(f"switched {d.url} to the new version")
        d.step = "draining"
        self.deployments.save(d.id, step="draining")

    def _previous(self, d: Deployment) -> Deployment | None:
        """What was live when the deployment began (kept through a resume)."""
        if d.previous_id is not None:
            return self.deployments.get(d.previous_id)
        return self.deployments.live(d.repository, d.environment)

    def _start(self, d: Deployment, target: Target, attempt: Attempt, run) -> Version:
        if d.instance and target.routed() != d.instance:  # a dead attempt's half-started version
            target.stop(d.instance)
        if d.kind == "rollback":
            source = self.deployments.get(d.source_id)
            attempt.steps(f"rolling back to deployment {source.id} ({source.short_sha}): its kept release")
            version = target.restart(source.instance, attempt.steps)
        else:
            found = release(self.pipeline, d, run, attempt.deploy)
            attempt.steps(
                f"artifact {found.artifact_name} of run {found.run_id} ({found.artifact_hash[:12]})"
            )
            self.deployments.save(d.id, artifact_hash=found.artifact_hash)
            d.artifact_hash = found.artifact_hash
            version = target.start(found, attempt.steps)
        d.instance = version.handle | {"url": version.url}
        d.step = "checking"
        self.deployments.save(d.id, instance=d.instance, step="checking")
        return Version(url=version.url, handle=d.instance)

    def _check(
        self, d: Deployment, version: Version, previous: Deployment | None, target: Target, attempt: Attempt
    ) -> None:
        via = checks.caller_of(target)
        checks.wait_healthy(version.url, lambda: target.problem(version.handle), caller=via)
        attempt.steps("healthy")
        deploy = attempt.deploy
        if deploy.smoke is not None:
            attempt.steps(f"smoke request answered: {checks.smoke(version.url, deploy.smoke, via)}")
        else:
            attempt.steps("no deploy.smoke: no smoke request sent")
        if d.kind == "rollback":
            attempt.no_diff = "A rollback: no prediction diff (the release it serves again was live before)."
            return
        old = previous.instance if previous is not None else None
        gone = target.problem(old) if old else None
        if old is None or gone is not None:
            attempt.no_diff = (
                f"Nothing live to compare with ({gone})." if gone else "Nothing was live before."
            )
            attempt.steps(attempt.no_diff)
            return
        samples = checks.sample(deploy, target.captured(), self.pipeline.redactor)
        answers = checks.answers(old["url"], samples, via), checks.answers(version.url, samples, via)
        options = self.pipeline.compare_options(self.pipeline.settings.reports_dir / f"deployment-{d.id}")
        attempt.diff = checks.prediction_diff(samples, *answers, attempt.tolerance, options)
        attempt.steps(f"prediction diff: {len(attempt.diff.changed)} of {len(samples)} answers changed")
        refused = checks.refusal(deploy, attempt.diff)
        if refused is not None:
            raise Refused(refused)

    # -- endings --------------------------------------------------------------------------------------

    def _end(self, d: Deployment, attempt: Attempt, state: State, reason: str) -> None:
        attempt.steps(reason)
        d.state, d.reason = state, self.pipeline.redactor(reason)
        comparison_id = write_report(self.pipeline, d, attempt)
        self._touch(self.deployments.end(d.id, state, d.reason, comparison_id=comparison_id))

    def _fail(self, deployment_id: int, attempt: Attempt, reason: str, state: State) -> None:
        """The new version is stopped and the old one keeps serving (serves again, when the switch was
        made before a worker died and the new version then failed)."""
        d = self.deployments.get(deployment_id)
        try:
            if d.instance:
                self._roll_back(d, attempt)
            kept = " The version that was live keeps serving." if d.previous_id else ""
            self._end(d, attempt, state, reason + ("." if not reason.endswith(".") else "") + kept)
        except LeaseLost:
            log.warning("deployment %s: lost to another worker while failing", deployment_id)

    def _roll_back(self, d: Deployment, attempt: Attempt) -> None:
        target = self.target_for(d)
        previous = self.deployments.get(d.previous_id) if d.previous_id else None
        back = previous is not None and previous.instance and target.problem(previous.instance) is None
        if back and target.routed() == d.instance:
            target.switch(Version(url=previous.instance["url"], handle=previous.instance))
            attempt.steps(f"switched {d.url} back to deployment {previous.id} ({previous.short_sha})")
        if target.routed() != d.instance:
            target.stop(d.instance)

    def _touch(self, run_ids: list[int | None]) -> None:
        ids = [i for i in run_ids if i is not None]
        if ids:
            self.pipeline.reports.touch(ids)


class _Heartbeat:
    """Keeps the deployment's lease fresh while a worker takes it through its steps."""

    def __init__(self, deployments: Deployments, deployment_id: int, every: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(deployments, deployment_id, max(every, 0.2)), daemon=True
        )
        self._thread.start()

    def _beat(self, deployments: Deployments, deployment_id: int, every: float) -> None:
        while not self._stop.wait(every):
            try:
                deployments.heartbeat(deployment_id)
            except LeaseLost:
                return
            except Exception:  # a database hiccup must not end the deployment; the next beat retries
                log.exception("heartbeat for deployment %s failed", deployment_id)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
