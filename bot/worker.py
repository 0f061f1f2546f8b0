"""Workers: claim a queued run, execute it on its tier's backend, collect outputs, settle comparisons.

Any number of workers (threads or processes, on one or several hosts) share the database. Each run is
owned through a lease that a heartbeat thread keeps fresh; see `bot.store.queue`.
"""

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bot import history
from bot.backends import Job, backend_for, reap
from bot.backends.local import kill_process_group
from bot.costs import actual_cost
from bot.doors import Doors
from bot.errors import TierbotError
from bot.events import Event
from bot.outputs import OutputLimits, collect
from bot.pipeline import Pipeline
from bot.retry import retry_after, transient
from bot.spec import Spec
from bot.store import Output, Run, RunState
from bot.store.models import SkippedOutput
from bot.store.queue import HOST, LeaseLost
from bot.store.reports import NotYet

log = logging.getLogger(__name__)
LogListener = Callable[[int, str], None]
SUPERVISE_SECONDS = 10.0  # how soon a dead model server of a live deployment is restarted


class RunWatcher:
    """The backend's view of the queue: phases, log lines, the process group, and cancellation."""

    def __init__(self, pipeline: Pipeline, run_id: int, worker: str, listener: LogListener | None):
        self.queue, self.run_id, self.worker, self.listener = pipeline.queue, run_id, worker, listener
        self._cancel = threading.Event()
        self.lost = False
        self.handed_back = False  # stopped because this worker shuts down: the run goes back to the queue
        self._release = pipeline.db.hold(run_id)  # others see at once when this process dies
        self._stop = threading.Event()
        self._last_line: str | None = None
        self._beat = max(0.2, min(1.0, pipeline.settings.lease_seconds / 3))
        self._show_every, self._shown = pipeline.settings.progress_seconds, time.monotonic()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True, name=f"heartbeat-{run_id}")
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self._beat):
            try:
                if self.queue.heartbeat(self.run_id, self.worker):
                    self._cancel.set()
                if self._last_line is not None:
                    line, self._last_line = self._last_line, None
                    self.queue.note(self.run_id, self.worker, last_log_line=line[:500])
                    if time.monotonic() - self._shown >= self._show_every:
                        self._shown = time.monotonic()
                        self.queue.on_change([self.run_id])  # doors show the new line, at this rate
            except LeaseLost:
                self.lost = True
                self._cancel.set()
                return
            except Exception:  # a database hiccup must not kill the run; the next beat retries
                log.exception("heartbeat for run %s failed", self.run_id)

    def phase(self, name: str) -> None:
        self.queue.note(self.run_id, self.worker, phase=name)

    def log(self, line: str) -> None:
        self._last_line = line  # written by the heartbeat thread, at most once a beat
        if self.listener:
            self.listener(self.run_id, line)

    def started(self, pgid: int) -> None:
        self.queue.note(self.run_id, self.worker, pgid=pgid)

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def hand_back(self) -> None:
        """Stop the experiment, to give the run back to the queue (`Worker.hand_back`)."""
        self.handed_back = True
        self._cancel.set()

    def stop(self) -> None:
        """Stop heartbeating and holding the run; again is harmless."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._release()


class Worker:
    def __init__(
        self,
        pipeline: Pipeline,
        only: set[int] | None = None,
        listener: LogListener | None = None,
        runs: bool = True,
    ):
        """`only` restricts the worker to those runs (the CLI's own); `runs=False` makes a door worker
        that only handles deliveries and reports, so PRs see progress while every run slot is busy."""
        self.pipeline = pipeline
        self.only = only
        self.listener = listener
        self.runs = runs
        self.doors = Doors(pipeline, pipeline.doors)  # each started on first use, with its clients
        self.name = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._reap_at = 0.0  # at start, then every reap_seconds
        self._watcher: RunWatcher | None = None  # of the run being executed, to hand it back
        self._deployer = None  # `bot.deploy.machine.Deployer`, made when first asked
        self._supervise_at = 0.0

    def run_once(self) -> bool:
        """Recover dead workers' runs, handle one webhook delivery or execute one queued run.
        Returns whether there was anything to do."""
        for run in self.pipeline.queue.recover(kill=_kill_orphan):
            if RunState(run.state).terminal:
                self.pipeline.settle_for(run.id)
        if self.only is None:
            self.reap()
            self.supervise()
        if self.only is None and (self.handle_delivery() or self.sync_report() or self.deploy_once()):
            return True
        if not self.runs:
            return False
        run = self.pipeline.queue.claim(self.name, self.only)
        if run is None:
            return False
        self.execute(run)
        return True

    def run_forever(self, stop: threading.Event) -> None:
        """Work until `stop` is set; a run being executed then goes on to its end (or `hand_back`)."""
        while not stop.is_set():
            if not self.run_once():
                stop.wait(self.pipeline.settings.poll_seconds)

    def hand_back(self) -> None:
        """Stop the run being executed and give it back to the queue: this worker is shutting down."""
        watcher = self._watcher
        if watcher is not None:
            watcher.hand_back()

    def reap(self) -> None:
        """What runs that are no longer running left on the backends' engines (a crashed bot's
        containers, old environment images), removed at start and then every reap_seconds."""
        if time.monotonic() < self._reap_at:
            return
        self._reap_at = time.monotonic() + self.pipeline.settings.reap_seconds
        try:
            done = reap(self.pipeline.tiers, self.pipeline.settings, self.pipeline.queue.is_running)
        except Exception:  # an engine's trouble is the reaper's, never the worker's: next time again
            log.exception("reaping failed")
            return
        for engine, what in done.items():
            log.info("reaper on %s: %s", engine, what)

    def supervise(self) -> None:
        """Live versions on this machine whose model server died restarted, or said down
        (`bot.deploy.supervise`): every SUPERVISE_SECONDS, or as often as the reaper when it is sooner."""
        if time.monotonic() < self._supervise_at:
            return
        self._supervise_at = time.monotonic() + min(SUPERVISE_SECONDS, self.pipeline.settings.reap_seconds)
        from bot.deploy.supervise import supervise  # loaded with the deployer, on the first pass

        supervise(self._deploys())

    def handle_delivery(self) -> bool:
        delivery = self.pipeline.deliveries.claim()
        if delivery is None:
            return False
        event = Event(name=delivery.event, delivery=delivery.id, payload=delivery.payload)
        try:
            outcome, state = self.doors.handle(delivery.source, event), "done"
        except Exception as exc:  # a malformed payload or a bug: recorded on the delivery, the worker lives
            outcome, state = f"failed: {type(exc).__name__}: {exc}", "failed"
            if transient(exc):  # GitHub or Slack down for a moment: handled again later, not lost
                delay = self.pipeline.deliveries.retry_later(delivery.id, outcome, retry_after(exc))
                log.warning("delivery %s: %s; again in %.0f s", delivery.id, outcome, delay)
                return True
            log.exception("delivery %s failed", delivery.id)
        self.pipeline.deliveries.finish(delivery.id, state, outcome)
        return True

    def deploy_once(self) -> bool:
        """Take one due deployment through its steps (`bot.deploy.machine`)."""
        return self._deploys().once()

    def _deploys(self):  # -> bot.deploy.machine.Deployer
        if self._deployer is None:
            from bot.deploy.machine import Deployer  # loaded by the workers that deploy, not every command

            self._deployer = Deployer(self.pipeline)
        return self._deployer

    def sync_report(self) -> bool:
        claimed = self.pipeline.reports.claim()
        if claimed is None:
            return False
        report, version = claimed
        try:
            memo = self.doors.syncer(report.outbox)(self.pipeline, report)
        except NotYet as wait:
            self.pipeline.reports.later(report.id, wait.memo, wait.seconds)
            return True
        except Exception as exc:  # GitHub down, rate limited, a bug: retried later, never lost
            log.warning("report %s (run %s on %s) failed: %s", report.id, report.run_id, report.outbox, exc)
            self.pipeline.reports.failed(
                report.id, f"{type(exc).__name__}: {exc}", report.memo, retry_after=retry_after(exc)
            )
            return True
        self.pipeline.reports.synced(report.id, version, memo)
        return True

    def execute(self, run: Run) -> None:
        settings = self.pipeline.settings
        watcher = self._watcher = RunWatcher(self.pipeline, run.id, self.name, self.listener)
        workdir = settings.worktrees_dir / f"run-{run.id}"
        workspace = workdir  # where the outputs are: an untrusted run's sandbox, else the checkout
        log_path = settings.logs_dir / f"run-{run.id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            watcher.phase("checkout")
            self.pipeline.code.checkout(run.repository, run.sha, workdir)
            spec = Spec.model_validate(run.spec)
            tier = self.pipeline.tiers.get(run.tier)
            requirements, dockerfile = spec.environment.requirements, spec.environment.dockerfile
            job = Job(
                run_id=run.id,
                workdir=workdir,
                command=spec.run.command,
                tier=tier,
                requirements=workdir / requirements if requirements else None,
                dockerfile=workdir / dockerfile if dockerfile else None,
                outputs=spec.run.outputs,  # all a remote backend brings back
                env={"TIERBOT_RUN_ID": str(run.id), "TIERBOT_TIER": tier.name},
                log_path=log_path,
                max_log_bytes=settings.max_log_bytes,
                trusted=run.trusted,
                redact=self.pipeline.redactor.lines(),
            )
            outcome = backend_for(tier, settings).run(job, watcher)
            workspace = outcome.workspace or workdir
            if watcher.handed_back:
                watcher.stop()
                self.pipeline.queue.hand_back(run.id, self.name)
                return  # not ended: another worker runs it from the start
            state, reason = RunState(outcome.state), outcome.reason
            if state == RunState.succeeded and not watcher.lost:
                state, reason = self._collect(run, workspace, spec)
            watcher.stop()
            if watcher.lost:
                return  # the lease expired and the run moved on; its new owner reports it
            self.pipeline.queue.finish(
                run.id,
                self.name,
                state,
                self.pipeline.redactor(reason),
                exit_code=outcome.exit_code,
                command_seconds=outcome.seconds,
                log_path=self.pipeline.artifacts.put_log(log_path),  # kept here while it ran
                log_tail=outcome.log_tail,
                actual_cost=actual_cost(self.pipeline.tiers, run, outcome.billed_seconds),
            )
        except LeaseLost:
            return
        except TierbotError as exc:
            self._fail(run, watcher, str(exc), log_path)
        except Exception as exc:  # a bug must fail the run visibly, not kill the worker
            log.exception("run %s failed inside tierbot", run.id)
            self._fail(run, watcher, f"internal error in tierbot: {exc!r}", log_path)
        finally:
            watcher.stop()
            self._watcher = None
            self.pipeline.code.remove(workdir)
            self.pipeline.code.remove(workspace)
        self.pipeline.settle_for(run.id)

    def _collect(self, run: Run, workdir: Path, spec: Spec) -> tuple[RunState, str]:
        settings = self.pipeline.settings
        self.pipeline.queue.note(run.id, self.name, phase="collecting")
        limits = OutputLimits(max_files=settings.max_output_files, max_bytes=settings.max_output_bytes)
        manifest = collect(workdir, spec.run.outputs, self.pipeline.artifacts.blobs, limits)
        self.pipeline.artifacts.publish(f.hash for f in manifest.files.values())  # for every replica
        with self.pipeline.db.session() as s:
            s.add_all(
                Output(run_id=run.id, path=f.path, size=f.size, hash=f.hash) for f in manifest.files.values()
            )
            s.add_all(SkippedOutput(run_id=run.id, path=k.path, reason=k.reason) for k in manifest.skipped)
        history.record(self.pipeline.db, run, manifest, spec, self.pipeline.blob_path)
        count = len(manifest.skipped)
        skipped = f"; {count} other {'entry' if count == 1 else 'entries'} not read" if count else ""
        return RunState.succeeded, f"{len(manifest.files)} output files{skipped}"

    def _fail(self, run: Run, watcher: RunWatcher, reason: str, log_path: Path) -> None:
        watcher.stop()
        with contextlib.suppress(LeaseLost):
            self.pipeline.queue.finish(
                run.id,
                self.name,
                RunState.failed,
                self.pipeline.redactor(reason),
                log_path=self.pipeline.artifacts.put_log(log_path),  # whatever it wrote before failing
                actual_cost=actual_cost(self.pipeline.tiers, run),  # the time it held its tier
            )


def _kill_orphan(run: Run) -> None:
    """A dead worker on this host may have left its experiment running; stop it before a rerun."""
    if run.pgid and run.host == HOST:
        kill_process_group(run.pgid)
