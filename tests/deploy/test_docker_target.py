"""The docker target end to end on the real engine: the deploy tests' `scaler` experiment runs on a
docker tier, and its merge is served by a container from the run's own image, behind the same stable
URL and swap as the local target: a broken predict fails with the old container serving, a rollback, a
crashed model server comes back, a container gone is a problem with its last words, and a bot restarted
finds its containers again from the handles it kept. Nothing is left running (by label)."""

import os
import signal
import time
from pathlib import Path

import pytest

from bot.backends.docker_reaper import reap
from bot.deploy.docker_target import LABEL_DEPLOY_INSTANCE, LABEL_DEPLOYMENT, docker_target, remove_strays
from bot.deploy.plan import deployments_of, request_deploy, request_rollback
from bot.pipeline import Pipeline
from bot.tiers import Requester
from bot.worker import Worker

from ..docker import conftest as on_docker
from ..fakes.waiting import wait_until
from .conftest import (
    BROKEN_SERVE,
    SPEC,
    deploy,
    kill_worker_mid_check,
    predict,
    report_of,
    work_until_done,
    worker_settings,
)

# The real engine's fixtures (skipped with the reason when none answers), and its session's label.
engine, instance, docker_settings = on_docker.engine, on_docker.instance, on_docker.docker_settings

pytestmark = pytest.mark.docker

TIERS = f"""\
tiers:
  - name: box
    backend: docker
    cpus: 1
    memory: 256MiB
    max_runtime: 2m
    default: true
    backend_options: {{image: "{on_docker.BASE_IMAGE}"}}
"""
DOCKER_SPEC = SPEC.replace("  smoke:", "  target: docker\n  smoke:")


@pytest.fixture
def pipeline(docker_settings, tmp_path):
    (tmp_path / "tiers.yaml").write_text(TIERS)
    running = Pipeline(docker_settings.model_copy(update={"tiers_file": tmp_path / "tiers.yaml"}))
    yield running
    running.db.dispose()


@pytest.fixture
def scaler(scaler):
    scaler.commit({"tierbot.yaml": DOCKER_SPEC}, "deploy to docker")
    return scaler


@pytest.fixture(autouse=True)
def nothing_left(engine, instance):
    """Every model server container a test started is removed, and none is left with our label."""
    yield
    remove_strays(engine, instance, lambda _deployment: False)
    assert serving(engine, instance) == {}


def serving(engine, instance: str) -> dict[str, dict]:
    """This session's deployment containers (running or not) by the deployment their label names."""
    found = engine.api.containers(all=True, filters={"label": f"{LABEL_DEPLOY_INSTANCE}={instance}"})
    return {c["Labels"][LABEL_DEPLOYMENT]: c for c in found}


def test_a_merge_is_served_by_a_container_of_the_runs_image(
    engine,
    instance,
    pipeline,
    scaler,
    monkeypatch,
):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "deploy-secret")  # the bot's; never the model's
    deployment = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))

    assert deployment.state == "live", deployment.reason
    assert predict(deployment.url, {"x": [3, 4]}).json() == {"y": [6.0, 8.0]}
    assert "smoke request answered: {&#34;y&#34;: [2.0, 4.0]}" in report_of(pipeline, deployment)
    assert list(serving(engine, instance)) == [str(deployment.id)]
    container = engine.api.inspect_container(deployment.instance["container"])
    run_log = Path(pipeline.run(deployment.run_id).log_path).read_text()
    assert f"environment image {container['Config']['Image']} " in run_log  # the image the run ran in
    host = container["HostConfig"]
    assert (host["NetworkMode"], host["ReadonlyRootfs"], host["RestartPolicy"]["Name"]) == (
        "host",
        True,
        "unless-stopped",
    )
    assert (host["Memory"], host["NanoCpus"], host["CapDrop"]) == (256 * 1024**2, 10**9, ["ALL"])
    assert container["Config"]["User"] == "65534:65534"
    assert all(not m["RW"] for m in container["Mounts"])  # the release (artifact, code) and the server
    assert not any("deploy-secret" in variable for variable in container["Config"]["Env"])
    assert not any(variable.startswith("TIERBOT_") for variable in container["Config"]["Env"])

    reaped = reap(engine, instance, lambda _run: False, image_budget=0, young_seconds=0)  # the runs' reaper
    assert reaped.containers == [] and container["Config"]["Image"] not in reaped.images
    assert predict(deployment.url, {"x": [1]}).json() == {"y": [2.0]}


def test_a_broken_predict_fails_and_the_old_container_keeps_serving(engine, instance, pipeline, scaler):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    broken = scaler.commit({"serve.py": BROKEN_SERVE, "scale.txt": "5"}, "break predict")

    second = deploy(pipeline, str(scaler.path), broken)

    assert second.state == "failed"
    assert "the model server exited with code 3" in second.reason
    assert "ModuleNotFoundError: No module named 'no_such_module_anywhere'" in second.reason
    assert second.reason.endswith("The version that was live keeps serving.")
    assert predict(first.url, {"x": [1]}).json() == {"y": [2.0]}
    assert list(serving(engine, instance)) == [str(first.id)]  # the failed one's container is removed


def test_blue_green_then_rollback_to_the_kept_release(engine, instance, pipeline, scaler):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    for x in range(3):  # traffic the proxy keeps, replayed against both versions
        predict(first.url, {"x": [x]})

    second = deploy(pipeline, str(scaler.path), scaler.commit({"scale.txt": "3"}, "scale 3"))

    assert (second.state, second.url) == ("live", first.url), second.reason
    assert predict(first.url, {"x": [1]}).json() == {"y": [3.0]}
    assert "3 of 4 replayed requests answered differently" in report_of(pipeline, second)  # x=0 stays 0
    assert list(serving(engine, instance)) == [str(second.id)]  # the old one drained and removed

    rollback = request_rollback(pipeline, str(scaler.path), "production", None, Requester(name="ops"))
    done = work_until_done(pipeline, rollback.id)

    assert (done.state, done.sha) == ("live", first.sha), done.reason
    assert predict(first.url, {"x": [1]}).json() == {"y": [2.0]}
    assert list(serving(engine, instance)) == [str(first.id)]  # the first release's container again


def test_a_crashed_model_server_comes_back_and_a_stopped_one_is_a_problem(engine, pipeline, scaler):
    deployment = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    name, target = deployment.instance["container"], docker_target(pipeline, deployment)
    server = next(p for p in engine.api.top(name)["Processes"] if "model_server.py" in p[-1])
    os.kill(int(server[1]), signal.SIGKILL)  # a crash, not a stop by the engine

    wait_until(lambda: engine.api.inspect_container(name)["RestartCount"] >= 1, what="the restart")
    wait_until(lambda: target.problem(deployment.instance) is None, what="the model server back")
    # On the same port, through the same URL:
    wait_until(lambda: predict(deployment.url, {"x": [2]}).status_code == 200, what="its answers")
    assert predict(deployment.url, {"x": [2]}).json() == {"y": [4.0]}

    engine.api.kill(name)  # stopped by the engine's hand: no restart
    wait_until(lambda: not engine.api.inspect_container(name)["State"]["Running"], what="the stop")
    problem = target.problem(deployment.instance)
    assert problem.startswith(f"its container {name} exited with code 137: ")
    assert "tierbot model server: serving serve.py:predict" in problem  # its last words
    engine.api.remove_container(name)
    assert target.problem(deployment.instance) == f"its container {name} is gone"


def test_a_restarted_bot_finds_its_containers_from_the_handles(engine, instance, pipeline, scaler):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    predict(first.url, {"x": [5]})
    pipeline.db.dispose()  # the bot goes away; the container and the proxy serve on
    time.sleep(0.2)
    assert predict(first.url, {"x": [1]}).json() == {"y": [2.0]}

    restarted = Pipeline(pipeline.settings)
    try:
        second = deploy(restarted, str(scaler.path), scaler.commit({"scale.txt": "4"}, "scale 4"))
        assert second.state == "live", second.reason
        report = report_of(restarted, second)
        old = deployments_of(restarted).get(first.id)
    finally:
        restarted.db.dispose()

    assert "3 of 3 replayed requests answered differently" in report  # the old one, found by its handle
    assert old.state == "retired"
    assert list(serving(engine, instance)) == [str(second.id)]
    assert predict(second.url, {"x": [1]}).json() == {"y": [4.0]}


def test_a_deploy_of_a_commit_without_a_docker_tier_is_refused_with_the_reason(pipeline, scaler, tmp_path):
    (tmp_path / "local.yaml").write_text("tiers:\n  - name: cpu\n    default: true\n")
    local = Pipeline(pipeline.settings.model_copy(update={"tiers_file": tmp_path / "local.yaml"}))
    try:
        done = deploy(local, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    finally:
        local.db.dispose()
    assert done.state == "failed"
    assert "the tiers file has no docker tier" in done.reason


def test_a_worker_killed_mid_deploy_is_resumed_and_its_half_started_container_removed(
    engine,
    instance,
    pipeline,
    scaler,
):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    slow = DOCKER_SPEC.replace("smoke: {x: [1, 2]}", "smoke: {x: [1, 2], sleep: 2}")
    sha = scaler.commit({"tierbot.yaml": slow, "scale.txt": "3"}, "slow smoke")
    second, _ = request_deploy(pipeline, str(scaler.path), sha, Requester(name="test"), [])
    env = worker_settings(pipeline.settings) | {"TIERBOT_DOCKER_INSTANCE": instance}
    checking = kill_worker_mid_check(pipeline, second.id, env)
    orphan = checking.instance["container"]
    assert engine.api.inspect_container(orphan)["State"]["Running"]  # it outlived its worker

    done = work_until_done(pipeline, checking.id)

    assert done.state == "live", done.reason
    assert "resumed at step checking (attempt 2)" in report_of(pipeline, done)
    assert list(serving(engine, instance)) == [str(second.id)]  # started again under the same name
    assert done.instance["port"] != checking.instance["port"]  # a new container, not the orphan
    assert predict(first.url, {"x": [1]}).json() == {"y": [3.0]}


def test_a_worker_pass_says_a_container_stopped_for_good_is_down(engine, pipeline, scaler):
    deployment = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    name = deployment.instance["container"]
    pipeline.settings.reap_seconds = 0.01  # the worker's periodic pass, at once
    Worker(pipeline).run_once()
    assert deployments_of(pipeline).get(deployment.id).reason == deployment.reason  # serving: nothing said

    engine.api.kill(name)  # stopped by a hand: its engine does not restart it, nor does tierbot
    wait_until(lambda: not engine.api.inspect_container(name)["State"]["Running"], what="the stop")
    Worker(pipeline).run_once()

    down = deployments_of(pipeline).get(deployment.id)
    assert down.reason.startswith("DOWN since ")
    assert f"its container {name} exited with code 137: " in down.reason
    assert "; its engine will not restart it. Left down: deploy a fix, or roll back" in down.reason
    assert not engine.api.inspect_container(name)["State"]["Running"]
