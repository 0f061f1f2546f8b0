"""A bot killed mid-deploy: a real `tierbot worker` process, killed with SIGKILL while the new version
is being checked. The model server it started lives on (its own session), as a version does; the next
worker takes the deployment over once its lease has expired, stops that half-started version, and
resumes from the step it was at, or, its attempts used up, fails it with the old version serving."""

import os
import signal
import subprocess
import sys
import time

from bot.deploy.plan import deployments_of, request_deploy
from bot.tiers import Requester

from ..fakes.waiting import wait_until
from .conftest import SPEC, alive, deploy, predict, report_of, work_until_done

SLOW_SMOKE = SPEC.replace("smoke: {x: [1, 2]}", "smoke: {x: [1, 2], sleep: 2}")


def kill_worker_mid_check(settings, pipeline, scaler, max_attempts: int):
    """The live first version, and the second one's deployment whose worker died while checking it."""
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    sha = scaler.commit({"tierbot.yaml": SLOW_SMOKE, "scale.txt": "3"}, "slow smoke")
    second, _ = request_deploy(pipeline, str(scaler.path), sha, Requester(name="test"), [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")} | {
        "TIERBOT_DATA_DIR": str(settings.data_dir),
        "TIERBOT_LEASE_SECONDS": str(settings.lease_seconds),
        "TIERBOT_POLL_SECONDS": "0.05",
        "TIERBOT_MAX_ATTEMPTS": str(max_attempts),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "bot", "worker"], env=env, start_new_session=True, stderr=subprocess.DEVNULL
    )
    try:
        checking = wait_until(
            lambda: (d := deployments_of(pipeline).get(second.id)).step == "checking" and d.instance and d,
            timeout=120,
            what="the worker checking the new version",
        )
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    return first, checking


def test_a_deployment_whose_worker_died_resumes(settings, pipeline, scaler):
    first, checking = kill_worker_mid_check(settings, pipeline, scaler, max_attempts=2)
    orphan = checking.instance["pid"]
    assert alive(orphan)  # the half-started version outlived its worker

    started = time.monotonic()
    done = work_until_done(pipeline, checking.id)

    assert done.state == "live", done.reason
    assert time.monotonic() - started >= 1  # taken over only once the dead worker's lease expired
    assert not alive(orphan)
    assert done.instance["pid"] != orphan
    assert predict(first.url, {"x": [1]}).json() == {"y": [3.0]}
    report = report_of(pipeline, done)
    assert "resumed at step checking (attempt 2): the worker taking it before stopped" in report


def test_a_deployment_that_keeps_losing_its_worker_fails_with_the_old_version_serving(
    settings, pipeline, scaler
):
    pipeline.settings.max_attempts = 1
    first, checking = kill_worker_mid_check(settings, pipeline, scaler, max_attempts=1)

    done = work_until_done(pipeline, checking.id)

    assert done.state == "failed"
    assert (
        done.reason == "gave up: the bot stopped mid-deploy 1 time. The version that was live keeps serving."
    )
    assert not alive(checking.instance["pid"])
    assert predict(first.url, {"x": [1]}).json() == {"y": [2.0]}
