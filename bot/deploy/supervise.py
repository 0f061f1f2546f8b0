"""Live versions on this machine kept serving between deployments: a worker's periodic pass (`supervise`).

A local version whose model server process died (killed, out of memory, a crash in `predict`'s import
of something lazy) is started again from its kept release, the route switched to it and the
deployment's handle updated, with a line in its reason, which GitHub (the status's description),
Slack (the deployment's message) and `tierbot deployments` show. One that keeps dying (`RESTARTS`
restarts within `WINDOW`) is left down, loudly: its reason starts with DOWN and says what to do, its
reports are synced again: GitHub's deployment status goes `error`, Slack's message says down
(`Deployment.down`). The deployment stays `live`: nothing else serves the environment, a rollback or a
new merge replaces it as they replace any live version, and the route still names it.

A docker version restarts itself (`unless-stopped`); one whose container was stopped or removed for
good is said down the same way, not restarted: a hand stopped it, and tierbot does not overrule it.

Races: an environment with a deployment under way is left to it; the restart and its record happen
under the route lock the deployment's switch takes, so the switch then stops the restarted version.
"""

import logging
from datetime import datetime, timedelta

from bot.deploy import DeployFailed
from bot.deploy.local import LocalTarget
from bot.deploy.machine import Deployer, live_reason
from bot.store.models import DOWN, Deployment, utcnow

log = logging.getLogger(__name__)

RESTARTS = 3  # within WINDOW, and a version is left down
MINUTES = 10
WINDOW = timedelta(minutes=MINUTES)
SUPERVISED = ("local", "docker")
RESTARTED = "restarts"  # in the handle: when tierbot restarted it, ISO 8601


def supervise(deployer: Deployer) -> None:
    """One pass over the live versions of this machine's targets."""
    deployments = deployer.deployments
    try:
        live = deployments.live_on(SUPERVISED)
    except Exception:  # a database hiccup is the next pass's to retry, never the worker's end
        log.exception("supervising the live deployments failed")
        return
    for d in live:
        try:
            if not d.down and not deployments.deploying_in(d.repository, d.environment):
                _supervise(deployer, d)
        except Exception:  # one environment's trouble must not stop the pass, nor the worker
            log.exception("supervising deployment %s failed", d.id)


def _supervise(deployer: Deployer, d: Deployment) -> None:
    target = deployer.target_for(d)
    problem = target.down(d.instance)
    if problem is None:
        return
    now = utcnow()
    recent = [at for at in d.instance.get(RESTARTED, []) if now - datetime.fromisoformat(at) < WINDOW]
    if not isinstance(target, LocalTarget):
        _down(deployer, d, now, f"{problem}; its engine will not restart it")
        return
    if len(recent) >= RESTARTS:
        _down(deployer, d, now, f"{problem}, after {len(recent)} restarts in {MINUTES} minutes")
        return
    restarts = [*recent, now.isoformat()]
    note = (
        f"its model server stopped at {_clock(now)} ({problem}) and was restarted from its kept release "
        f"({len(restarts)} restart{'s' if len(restarts) > 1 else ''} in {MINUTES} minutes)"
    )

    def record(instance: dict) -> None:
        _record(deployer, d, instance, f"{live_reason(d)}; {note}")

    try:
        target.revive(
            d.instance, lambda line: log.info("deployment %s: %s", d.id, line), {RESTARTED: restarts}, record
        )
    except DeployFailed as exc:
        _down(deployer, d, now, f"{problem}, and it could not be started again: {exc}")


def _down(deployer: Deployer, d: Deployment, now: datetime, why: str) -> None:
    reason = (
        f"DOWN since {_clock(now)}: {why}. Left down: deploy a fix, or roll back (tierbot rollback). "
        f"It was {live_reason(d)}"
    )
    _record(deployer, d, d.instance | {DOWN: now.isoformat()}, reason)


def _record(deployer: Deployer, d: Deployment, instance: dict, reason: str) -> None:
    reason = deployer.pipeline.redactor(reason)
    if deployer.deployments.supervised(d.id, instance, reason) and d.run_id is not None:
        deployer.pipeline.reports.touch([d.run_id])  # GitHub and Slack say it
    log.warning("deployment %s: %s", d.id, reason)


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
