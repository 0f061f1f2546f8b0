"""Several replicas on one PostgreSQL database, as processes: a replica killed mid-run has its run taken
over in seconds (not after the lease), and one stopped with SIGTERM hands its run back and exits; a
second SIGTERM exits at once. Real `tierbot worker` processes, real experiments, real signals."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.pipeline import Pipeline
from bot.request import RunRequest
from bot.store import Report, RunState
from bot.store.deliveries import Deliveries
from bot.store.reports import Reports

from ..fakes.waiting import wait_until

pytestmark = pytest.mark.postgres
SLOW = """\
import json, pathlib, time
time.sleep(float(open("sleep.txt").read()))
out = pathlib.Path("out"); out.mkdir(exist_ok=True)
(out / "metrics.json").write_text(json.dumps({"accuracy": 0.9}))
"""


def group_alive(pgid: int) -> bool:
    """Whether a process of the group lives (a zombie whose parent was killed does not count: in a
    container nobody may reap it)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


class Replica:
    """`tierbot worker` in a process of its own (its own data dir), on the shared database."""

    def __init__(self, settings, name: str, **env: str):
        variables = {
            "TIERBOT_DATA_DIR": str(Path(settings.data_dir).parent / name),
            "TIERBOT_DATABASE_URL": settings.database_url,
            "TIERBOT_LEASE_SECONDS": "60",  # a takeover within seconds is not the lease's doing
            "TIERBOT_POLL_SECONDS": "0.1",
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "worker"],
            env={**os.environ, **variables},
            stderr=subprocess.PIPE,
            text=True,
        )
        assert "tierbot worker:" in self.process.stderr.readline()  # started, polling

    def owns(self, worker: str | None) -> bool:
        return bool(worker) and worker.split(":")[1] == str(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stderr.close()


@pytest.fixture
def shared(settings, postgres_url, simple_repo):
    """Settings on the shared database, and a branch `slow` whose experiment sleeps as long as told."""
    simple_repo.branch("slow")
    simple_repo.commit({"make.py": SLOW, "sleep.txt": "60"})
    return settings.model_copy(update={"database_url": postgres_url})


def running(pipeline: Pipeline, run_id: int):
    run = pipeline.run(run_id)
    return run if run.state == RunState.running and run.pgid else None


def test_a_killed_replicas_run_is_taken_over_within_seconds(shared, simple_repo):
    simple_repo.commit({"sleep.txt": "3"})
    pipeline = Pipeline(shared)
    replicas = [Replica(shared, "a"), Replica(shared, "b")]
    try:
        run_id = pipeline.submit(RunRequest(repository=str(simple_repo), ref="slow")).head.id
        first = wait_until(lambda: running(pipeline, run_id), what="the run to start")
        (holder,) = [r for r in replicas if r.owns(first.worker)]
        (other,) = [r for r in replicas if r is not holder]
        holder.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        taken = wait_until(lambda: (r := running(pipeline, run_id)) and other.owns(r.worker) and r)
        assert time.monotonic() - killed <= 5.0  # the lease is 60 s
        assert wait_until(lambda: not group_alive(first.pgid))  # the dead replica's experiment: stopped
        assert taken.attempts == 2 and taken.reason.startswith(f"requeued: the worker {first.worker}")
        done = wait_until(lambda: (r := pipeline.run(run_id)).run_state.terminal and r, what="the end")
        assert done.state == RunState.succeeded and pipeline.queue.takeovers == 0  # `other` took it
    finally:
        for replica in replicas:
            replica.stop()


def test_sigterm_hands_the_run_back_and_a_second_sigterm_exits_at_once(shared, simple_repo):
    pipeline = Pipeline(shared)
    replica = Replica(shared, "a", TIERBOT_SHUTDOWN_GRACE_SECONDS="1")
    try:
        run_id = pipeline.submit(RunRequest(repository=str(simple_repo), ref="slow")).head.id
        first = wait_until(lambda: running(pipeline, run_id), what="the run to start")
        replica.process.send_signal(signal.SIGTERM)
        assert replica.process.wait(timeout=15) == 0
        run = pipeline.run(run_id)
        assert (run.state, run.attempts, run.worker) == (RunState.queued, 0, None)
        assert run.reason == f"handed back: its worker {first.worker} was shut down"
        assert wait_until(lambda: not group_alive(first.pgid))

        patient = Replica(shared, "b", TIERBOT_SHUTDOWN_GRACE_SECONDS="600")
        second = wait_until(lambda: running(pipeline, run_id), what="the run to start again")
        patient.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # stopping gracefully, waiting for the run
        assert patient.process.poll() is None
        patient.process.send_signal(signal.SIGTERM)
        assert patient.process.wait(timeout=5) == 128 + signal.SIGTERM
        patient.stop()
        assert second.attempts == 1
    finally:
        replica.stop()


CLAIMER = """\
import sys, time
from bot.store.db import Database
from bot.store.deliveries import Deliveries
from bot.store.reports import Reports
db = Database(sys.argv[1])
delivery, (report, _) = Deliveries(db, 60).claim(), Reports(db, 60).claim()
print(delivery.id, report.id, flush=True)
time.sleep(600)
"""


def test_a_killed_replicas_deliveries_and_reports_are_taken_over_at_once(shared):
    """A delivery being handled and a report being synced by a process that died are claimed again at
    once, not after their lease (60 s here); a living process's claims are left alone."""
    pipeline = Pipeline(shared)
    pipeline.deliveries.record("d-1", "github", "pull_request", "opened", {})
    with pipeline.db.session() as s:
        s.add(Report(run_id=None, outbox="test", target={}, memo={}))
    claimer = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, shared.database_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert claimer.stdout.readline().split()[0] == "d-1"
        deliveries, reports = Deliveries(pipeline.db, 60), Reports(pipeline.db, 60)
        assert deliveries.claim() is None and reports.claim() is None  # alive: its claims are its own
        claimer.kill()
        claimer.wait()
        delivery = wait_until(deliveries.claim, timeout=5, what="the delivery to be claimed again")
        assert (delivery.id, delivery.attempts) == ("d-1", 2)
        assert wait_until(reports.claim, timeout=5, what="the report to be claimed again")
    finally:
        claimer.kill()
        claimer.wait()
        claimer.stdout.close()
