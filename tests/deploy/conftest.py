"""The deploy tests' experiment: `scaler`, a model that multiplies numbers by the scale its run wrote to
`out/model.json`, served by its own `serve.py:predict`, with no requirements file (its model server runs
on the Python its run found on the PATH). Every model server and proxy a test started is stopped."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bot.deploy.local import shutdown
from bot.deploy.plan import deployments_of, request_deploy
from bot.pipeline import Pipeline
from bot.store.models import Deployment, DeploymentState
from bot.tiers import Requester
from bot.worker import Worker

from ..conftest import GitRepo
from ..fakes.waiting import wait_until

SPEC = """\
name: scaler
run:
  command: python make.py
  outputs: out
deploy:
  artifact: model.json
  predict: serve.py:predict
  smoke: {x: [1, 2]}
"""

MAKE = """\
import json, pathlib
out = pathlib.Path("out"); out.mkdir(exist_ok=True)
(out / "model.json").write_text(json.dumps({"scale": float(open("scale.txt").read())}))
"""

SERVE = """\
import json
import time
from functools import lru_cache


@lru_cache
def load(path):
    return json.load(open(path))


def predict(features, model_path):
    if not isinstance(features, dict) or "x" not in features:
        raise ValueError("expected {'x': [numbers]}")
    time.sleep(features.get("sleep", 0))
    if features.get("boom"):
        raise RuntimeError("secret-ish detail that must not reach the client")
    return {"y": [v * load(model_path)["scale"] for v in features["x"]]}
"""

BROKEN_SERVE = "import no_such_module_anywhere\n\n" + SERVE


def scaler_files(scale: str = "2", spec: str = SPEC, serve: str = SERVE) -> dict[str, str]:
    return {"tierbot.yaml": spec, "make.py": MAKE, "serve.py": serve, "scale.txt": scale}


@pytest.fixture(autouse=True)
def stop_deployed(settings):
    """The model servers and proxies a test started outlive its worker, as they must: stop them."""
    yield
    shutdown(settings)


@pytest.fixture
def scaler(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "scaler")
    repo.commit(scaler_files(), "scale 2")
    return repo


@pytest.fixture
def pipeline(settings) -> Pipeline:
    running = Pipeline(settings)
    yield running
    running.db.dispose()


def deploy(pipeline: Pipeline, repository: str, sha: str) -> Deployment:
    """Deploy the commit as a merge does, and work (runs, deployments) until the deployment ended."""
    deployment, _ = request_deploy(pipeline, repository, sha, Requester(name="test"), [])
    return work_until_done(pipeline, deployment.id)


def work_until_done(pipeline: Pipeline, deployment_id: int, timeout: float = 120) -> Deployment:
    worker, deadline = Worker(pipeline), time.monotonic() + timeout
    while True:
        deployment = deployments_of(pipeline).get(deployment_id)
        if DeploymentState(deployment.state).terminal:
            return deployment
        assert time.monotonic() < deadline, f"deployment {deployment_id} is still {deployment.state}"
        if not worker.run_once():
            time.sleep(0.05)


def predict(url: str, body: dict) -> requests.Response:
    return requests.post(f"{url}/predict", data=json.dumps(body), timeout=10)


def alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


def report_of(pipeline: Pipeline, deployment: Deployment) -> str:
    """The deployment's report, as the page it is (from the artifact store: a bucket, or this host)."""
    return pipeline.artifacts.read_text(pipeline.comparison(deployment.comparison_id).report_path)


def worker_settings(settings) -> dict[str, str]:
    """The environment a `tierbot worker` process needs to share a test's data dir, tiers and pace."""
    env = {
        "TIERBOT_DATA_DIR": str(settings.data_dir),
        "TIERBOT_LEASE_SECONDS": str(settings.lease_seconds),
        "TIERBOT_POLL_SECONDS": "0.05",
    }
    return env | ({"TIERBOT_TIERS_FILE": str(settings.tiers_file)} if settings.tiers_file else {})


def kill_worker_mid_check(
    pipeline: Pipeline, deployment_id: int, env: dict[str, str], drop: tuple[str, ...] = ("TIERBOT_",)
) -> Deployment:
    """A real `tierbot worker` (this environment less the `drop` prefixes, plus `env`), killed with SIGKILL
    while it checks the deployment's new version: the deployment as it left it."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "bot", "worker"],
        env=kept | env,
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )
    try:
        return wait_until(
            lambda: (
                (d := deployments_of(pipeline).get(deployment_id)).step == "checking" and d.instance and d
            ),
            timeout=120,
            what="the worker checking the new version",
        )
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
