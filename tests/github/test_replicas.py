"""Two `tierbot serve` replicas as processes on one PostgreSQL database, each with its own data dir and
one shared artifact store, reporting to the fake GitHub. Every delivery goes to both replicas under the
same id, and again under a new id (a proxy's retry); the replica executing a run is SIGKILLed mid-run.
What crossed the wire is what one bot would have sent: per head SHA one check run per name, one sticky
comment per pull request, and the right verdict (no false FAIL from the replica without the outputs)."""

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.github.signature import sign
from bot.pipeline import Pipeline
from bot.store import Report, Run, RunState

from ..conftest import SIMPLE_SCRIPT, push_branch
from ..fakes.github_bot import REPO, SECRET, pull_request, sha_of
from ..fakes.waiting import free_port, wait_until

pytestmark = pytest.mark.postgres
SLOW_SCRIPT = "import time\ntime.sleep(1.5)\n" + SIMPLE_SCRIPT
ACCURACY = {1: "0.91", 2: "0.92", 3: "0.80"}  # the third is worse beyond its threshold: a real FAIL
CHECK = "tierbot: simple (local)"


class Serve:
    """`tierbot serve` on a loopback port, in a process of its own with its own data dir."""

    def __init__(self, root: Path, name: str, env: dict[str, str]):
        self.port = free_port()
        self.log = root / f"{name}.log"
        variables = {**os.environ, **env, "TIERBOT_DATA_DIR": str(root / name)}
        command = [sys.executable, "-m", "bot", "serve", "--port", str(self.port), "--workers", "1"]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(command, env=variables, stdout=out, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(self._up, timeout=90, what=f"{name} to serve")

    def _up(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def deliver(self, payload: bytes, delivery: str) -> int:
        headers = {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(payload, SECRET),
            "Content-Type": "application/json",
        }
        return httpx.post(f"{self.url}/github/webhook", content=payload, headers=headers).status_code

    def owns(self, worker: str | None) -> bool:
        return bool(worker) and worker.split(":")[1] == str(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _all_reported(probe: Pipeline) -> bool:
    with probe.db.session() as s:
        runs = list(s.scalars(select(Run).where(Run.role == "head")))
        unsynced = s.scalars(select(Report).where(Report.synced_version < Report.version)).first()
    return len(runs) == len(ACCURACY) and all(r.run_state.terminal for r in runs) and unsynced is None


def test_two_replicas_one_truth_on_the_wire(settings, postgres_url, simple_repo, hosted, fake, tmp_path):
    import json

    for number, accuracy in ACCURACY.items():
        push_branch(simple_repo, hosted, f"pr-{number}", {"accuracy.txt": accuracy, "make.py": SLOW_SCRIPT})
        fake.add_pull(REPO, number, head_sha=sha_of(simple_repo, f"pr-{number}"), head_ref=f"pr-{number}")
    env = {
        "TIERBOT_DATABASE_URL": postgres_url,
        "TIERBOT_ARTIFACT_STORE": str(tmp_path / "shared"),
        "TIERBOT_GIT_URL_TEMPLATE": f"file://{tmp_path}/git/{{full_name}}.git",
        "TIERBOT_GITHUB_WEBHOOK_SECRET": SECRET,
        "TIERBOT_GITHUB_API_URL": fake.url,
        "TIERBOT_GITHUB_APP_ID": str(fake.app_id),
        "TIERBOT_GITHUB_PRIVATE_KEY": fake.app_private_key_pem,
        "TIERBOT_POLL_SECONDS": "0.1",
        "TIERBOT_LEASE_SECONDS": "60",  # the takeover below is not the lease's doing
    }
    replicas = [Serve(tmp_path, "replica-a", env), Serve(tmp_path, "replica-b", env)]
    probe = Pipeline(settings.model_copy(update={"database_url": postgres_url}))
    try:
        for number in ACCURACY:
            body = json.dumps(pull_request(simple_repo, "opened", branch=f"pr-{number}", number=number))
            delivery = f"pr-{number}-{uuid.uuid4()}"
            for replica in replicas:  # the same delivery to both, and a retry under a new id
                assert replica.deliver(body.encode(), delivery) in (200, 202)
                assert replica.deliver(body.encode(), f"retry-{uuid.uuid4()}") in (200, 202)

        def running_head():
            runs = probe.recent_runs(20, state=RunState.running)
            return next((r for r in runs if r.role == "head" and r.pgid), None)

        victim_run = wait_until(running_head, timeout=90, what="a head to run")
        (victim,) = [r for r in replicas if r.owns(victim_run.worker)]
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        wait_until(lambda: _all_reported(probe), timeout=90, what="every pull request reported")
    finally:
        for replica in replicas:
            replica.stop()
        probe.db.dispose()

    for number, accuracy in ACCURACY.items():
        sha = sha_of(simple_repo, f"pr-{number}")
        checks = [c for c in fake.checks_for(REPO, sha) if c.name == CHECK]
        assert len(checks) == 1, [c.history for c in checks]
        expected = "failure" if accuracy == "0.80" else "neutral"
        assert (checks[0].status, checks[0].conclusion) == ("completed", expected)
        (sticky,) = fake.comments_on(REPO, number)
        assert ("FAIL" if expected == "failure" else "CHANGED") in sticky.body
        assert "could not be read" not in sticky.body
