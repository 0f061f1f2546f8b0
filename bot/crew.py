"""The workers of one process (`tierbot serve`, `tierbot worker`), started and stopped together.

Stopping is graceful, for a rolling deploy or a scale-down: no new claims; each run being executed gets
`grace` seconds to end, then is handed back to the queue (its experiment stopped, its lease released,
the attempt not counted) so that another replica runs it; then the reports that are due (the PR showing
the run queued again) are sent. A second signal ends the process at once (`exit_on_second_signal`).
"""

import os
import signal
import threading
import time

from bot.pipeline import Pipeline
from bot.worker import Worker


class Crew:
    def __init__(self, pipeline: Pipeline, runs: int, doors: bool = True):
        """`runs` run workers, and with `doors` one that only handles deliveries and reports, so pull
        requests see progress while every run slot is busy."""
        self.pipeline = pipeline
        self.workers = ([Worker(pipeline, runs=False)] if doors else []) + [
            Worker(pipeline) for _ in range(runs)
        ]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=worker.run_forever, args=(self._stop,), name=f"worker-{n}")
            for n, worker in enumerate(self.workers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, grace: float, flush: float = 10.0) -> None:
        """Stop claiming, let runs end for `grace` seconds, hand back the rest, send due reports."""
        self._stop.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            worker.hand_back()
        for thread in self._threads:
            thread.join()
        reporter, deadline = Worker(self.pipeline, runs=False), time.monotonic() + flush
        while time.monotonic() < deadline and reporter.sync_report():
            pass


def exit_on_second_signal() -> None:
    """From now on (a graceful stop has begun), SIGINT or SIGTERM ends the process at once."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _frame: os._exit(128 + number))
