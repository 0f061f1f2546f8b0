"""The local target run like a service, on real processes: the stable URL listens where the operator's
tiers file says and is called what it says; a port another program holds fails the deployment with the
old version serving; a model server that died is restarted by a worker's pass at the same URL, and one
that keeps dying is left down and said so; the releases kept for rollback are bounded."""

import os
import signal
import socket
from pathlib import Path

import pytest

from bot.deploy.deployments import KEPT_RELEASES
from bot.deploy.plan import deployments_of, request_rollback
from bot.deploy.stable_url import environment_dir
from bot.deploy.supervise import RESTARTS
from bot.errors import TierbotError
from bot.pipeline import Pipeline
from bot.store.models import Deployment
from bot.tiers import Requester
from bot.worker import Worker

from ..fakes.waiting import free_port, wait_until
from .conftest import alive, deploy, predict

TIERS = "tiers:\n  - name: cpu\n    default: true\n"


@pytest.fixture
def configured(settings, tmp_path):
    """A pipeline whose tiers file says `deploy_targets.production.local` (the YAML given)."""
    made = []

    def make(local: str) -> Pipeline:
        tiers = tmp_path / f"tiers-{len(made)}.yaml"
        tiers.write_text(TIERS + f"deploy_targets:\n  production:\n    local: {local}\n")
        made.append(Pipeline(settings.model_copy(update={"tiers_file": tiers})))
        return made[-1]

    yield make
    for pipeline in made:
        pipeline.db.dispose()


def supervise(pipeline: Pipeline) -> None:
    """A worker's periodic pass (the supervisor's, with the reaper's), at once."""
    pipeline.settings.reap_seconds = 0.01
    Worker(pipeline).run_once()


def test_the_proxy_listens_where_the_tiers_file_says_and_people_get_its_url(configured, scaler):
    port = free_port()
    pipeline = configured(f'{{listen: "127.0.0.1:{port}", url: "https://models.example.com/scaler/"}}')

    deployment = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))

    assert deployment.state == "live", deployment.reason
    assert deployment.url == "https://models.example.com/scaler"
    assert deployment.reason.startswith("live at https://models.example.com/scaler, serving ")
    assert predict(f"http://127.0.0.1:{port}", {"x": [3]}).json() == {"y": [6.0]}


def test_without_a_url_people_get_the_listen_address(configured, scaler):
    port = free_port()
    pipeline = configured(f'{{listen: "127.0.0.1:{port}"}}')

    deployment = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))

    assert deployment.url == f"http://127.0.0.1:{port}"
    assert predict(deployment.url, {"x": [1]}).json() == {"y": [2.0]}


def test_a_taken_port_fails_the_deployment_and_the_old_version_keeps_serving(pipeline, configured, scaler):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        moved = configured(f'{{listen: "127.0.0.1:{taken}"}}')

        second = deploy(moved, str(scaler.path), scaler.commit({"scale.txt": "3"}, "scale 3"))

    assert second.state == "failed"
    assert second.reason.startswith(
        f"the deploy proxy cannot listen on 127.0.0.1:{taken} "
        "(deploy_targets.production.local.listen in the tiers file): "
    )
    assert "Address already in use" in second.reason
    assert second.reason.endswith("The version that was live keeps serving.")
    assert predict(first.url, {"x": [1]}).json() == {"y": [2.0]}


def test_an_invalid_address_fails_the_deployment_in_the_operators_words(configured, scaler):
    pipeline = configured("{listen: localhost, url: ftp://models}")

    deployment = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))

    assert deployment.state == "failed"
    assert deployment.reason == (
        "deploy_targets.production.local in the tiers file is invalid: listen: write the address and port "
        "to listen on, e.g. 0.0.0.0:8500, not 'localhost'; url: URL scheme should be 'http' or 'https'."
    )


def test_a_killed_model_server_is_restarted_by_a_worker_pass_at_the_same_url(pipeline, scaler):
    deployment = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    dead = deployment.instance["pid"]
    os.kill(dead, signal.SIGKILL)
    wait_until(lambda: not alive(dead), what="the model server's end")

    supervise(pipeline)

    restarted = deployments_of(pipeline).get(deployment.id)
    assert restarted.state == "live"
    assert restarted.instance["pid"] != dead and alive(restarted.instance["pid"])
    assert f"its model server (pid {dead}) is not running) and was restarted from its kept release" in (
        restarted.reason
    )
    assert restarted.reason.endswith("(1 restart in 10 minutes)")
    assert restarted.reason.startswith(f"live at {deployment.url}, serving {deployment.short_sha}; ")
    assert predict(deployment.url, {"x": [4]}).json() == {"y": [8.0]}

    supervise(pipeline)  # alive: nothing to do
    assert deployments_of(pipeline).get(deployment.id).instance == restarted.instance


def test_a_version_on_another_machine_is_that_machines_to_supervise(pipeline, scaler):
    deployment = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    assert deployment.instance["machine"] == socket.gethostname()
    elsewhere = deployment.instance | {"machine": "another-host", "pid": 2**22 + 1}  # no such process here
    with pipeline.db.session() as s:
        s.get(Deployment, deployment.id).instance = elsewhere

    supervise(pipeline)

    left = deployments_of(pipeline).get(deployment.id)
    assert (left.instance, left.reason) == (elsewhere, deployment.reason)  # not restarted here, not DOWN


def test_a_model_server_that_keeps_dying_is_left_down_and_said_so(pipeline, scaler):
    deployment = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    for _ in range(RESTARTS + 1):
        pid = deployments_of(pipeline).get(deployment.id).instance["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda pid=pid: not alive(pid), what="the model server's end")
        supervise(pipeline)

    down = deployments_of(pipeline).get(deployment.id)
    assert down.state == "live" and down.instance["down"]
    assert down.reason.startswith("DOWN since ")
    assert f"is not running, after {RESTARTS} restarts in 10 minutes. Left down: deploy a fix, or roll" in (
        down.reason
    )
    assert down.reason.endswith(f"It was live at {deployment.url}, serving {deployment.short_sha}")
    assert not alive(down.instance["pid"])
    assert predict(deployment.url, {"x": [1]}).status_code == 502

    supervise(pipeline)  # said once, not restarted again
    assert deployments_of(pipeline).get(deployment.id).reason == down.reason


def test_releases_are_pruned_to_the_bound_and_a_pruned_one_cannot_be_rolled_back_to(pipeline, scaler):
    repository = str(scaler.path)
    deployed = [deploy(pipeline, repository, scaler.git("rev-parse", "HEAD"))]
    for scale in range(3, 3 + KEPT_RELEASES + 1):
        deployed.append(deploy(pipeline, repository, scaler.commit({"scale.txt": str(scale)})))
    assert all(d.state == "live" for d in deployed[-1:]), deployed[-1].reason

    releases = environment_dir(pipeline.settings, repository, "production") / "releases"
    kept = sorted(int(path.name) for path in releases.iterdir())
    assert kept == [d.id for d in deployed[1:]]  # the live one and the newest KEPT_RELEASES others
    assert not Path(deployed[0].instance["release"]).exists()

    with pytest.raises(TierbotError) as refused:
        request_rollback(pipeline, repository, "production", deployed[0].sha[:7], Requester(name="ops"))
    assert str(refused.value).startswith(
        f"the release of {deployed[0].short_sha} is no longer kept in production: the newest "
        f"{KEPT_RELEASES} are kept beside the live one ({deployed[-1].short_sha}; kept: "
    )
    rollback = request_rollback(pipeline, repository, "production", deployed[1].sha, Requester(name="ops"))
    assert rollback.source_id == deployed[1].id
