"""The local backend's harness (a pytest plugin, see tests/conftest.py): a backend, jobs in a work dir, a
watcher that records what a worker's watcher would see, and whether a process is still alive.

Fixtures: `backend`, `workdir`.
"""

import os
import time
from pathlib import Path

import pytest

from bot.backends import Job
from bot.backends.local import LocalBackend
from bot.tiers import Tier


class RecordingWatcher:
    """What a worker's watcher sees, recorded; cancels itself after `cancel_after` seconds if given."""

    def __init__(self, cancel_after: float | None = None):
        self.phases: list[str] = []
        self.lines: list[str] = []
        self.pgids: list[int] = []
        self._cancel_at = None if cancel_after is None else time.monotonic() + cancel_after

    def phase(self, name: str) -> None:
        self.phases.append(name)

    def log(self, line: str) -> None:
        self.lines.append(line)

    def started(self, pgid: int) -> None:
        self.pgids.append(pgid)

    def cancelled(self) -> bool:
        return self._cancel_at is not None and time.monotonic() >= self._cancel_at


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")  # an unreaped zombie is dead for our purposes
    return status.exists() and "zombie" not in status.read_text()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def backend(settings) -> LocalBackend:
    return LocalBackend(settings, grace_seconds=1.0)


def job(
    workdir: Path,
    command: str,
    *,
    runtime: str = "30s",
    memory: str | None = None,
    requirements: Path | None = None,
    max_log_bytes: int = 1024**2,
) -> Job:
    return Job(
        run_id=7,
        workdir=workdir,
        command=command,
        tier=Tier(name="test", max_runtime=runtime, memory=memory),
        requirements=requirements,
        env={"TIERBOT_RUN_ID": "7"},
        log_path=workdir.parent / "logs" / "run-7.log",
        max_log_bytes=max_log_bytes,
    )
