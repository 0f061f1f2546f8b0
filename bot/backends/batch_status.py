"""Where AWS Batch jobs are, and what they print, asked within AWS's limits.

DescribeJobs takes up to 100 jobs a call, and AWS throttles it per account: so one poller per endpoint
(`Board`), shared by every run of this process, asks for all of their jobs in as few calls as that
allows, and each run reads its job's latest state from it. It asks every `remote_poll_seconds` (5 s)
while something changes, doubling up to 12 times that (60 s) while nothing does; a new job makes it ask at
once. The log of a job is its own stream in CloudWatch Logs (`/aws/batch/job`), read forward from the
last token (`LogTail`), with the same back-off, reset by every new line. Throttling and 5xx are
botocore's to retry (standard mode); a poll that still fails is logged and tried again later: the run's
own deadline, not an API's bad minute, decides when it ends.
"""

import logging
import threading
import time
from collections.abc import Iterator

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from bot.backends.process import LogSink

log = logging.getLogger(__name__)

LOG_GROUP = "/aws/batch/job"
PER_CALL = 100  # DescribeJobs' most jobs a call
BACKOFF_FACTOR = 12  # the longest wait, in first waits: 5 s → 60 s
TERMINAL = ("SUCCEEDED", "FAILED")
ACTIVE = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")


class Backoff:
    """A wait that doubles while nothing happens, up to BACKOFF_FACTOR times the first."""

    def __init__(self, first: float):
        self.first, self.most = first, first * BACKOFF_FACTOR
        self.seconds = first

    def reset(self) -> None:
        self.seconds = self.first

    def grow(self) -> None:
        self.seconds = min(self.most, self.seconds * 2)


class Board:
    """The latest description of every job a run of this process follows, on one endpoint."""

    def __init__(self, client: BaseClient, first_seconds: float):
        self._client = client
        self._changed = threading.Condition()
        self._jobs: dict[str, dict | None] = {}
        self._backoff = Backoff(first_seconds)
        self._thread: threading.Thread | None = None
        self._now = False  # a job to ask about at once (set under the lock: no wake-up is lost)

    def follow(self, job_id: str) -> None:
        with self._changed:
            self._jobs[job_id] = None
            self._backoff.reset()
            self._now = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._poll, daemon=True, name="batch-board")
                self._thread.start()
            self._changed.notify_all()  # ask now, with the new job

    def forget(self, job_id: str) -> None:
        with self._changed:
            self._jobs.pop(job_id, None)

    def latest(self, job_id: str) -> dict | None:
        with self._changed:
            return self._jobs.get(job_id)

    def _poll(self) -> None:
        while True:
            with self._changed:
                if not self._now:
                    self._changed.wait(self._backoff.seconds)
                self._now = False
                ids = list(self._jobs)
                if not ids:
                    self._thread = None
                    return
            found = self._describe(ids)  # without the lock: runs read the last answer meanwhile
            with self._changed:
                moved = False
                for job in found or []:
                    before = self._jobs.get(job["jobId"], False)
                    if before is not False:  # still followed
                        moved |= before is None or before.get("status") != job.get("status")
                        self._jobs[job["jobId"]] = job
                if moved:
                    self._backoff.reset()
                else:
                    self._backoff.grow()

    def _describe(self, ids: list[str]) -> list[dict] | None:
        try:
            return list(describe(self._client, ids))
        except (BotoCoreError, ClientError) as exc:  # retried by botocore already: next poll again
            log.warning("AWS Batch DescribeJobs failed (%d jobs): %s", len(ids), exc)
            return None


_boards: dict[tuple, Board] = {}
_boards_lock = threading.Lock()


def board(key: tuple, client: BaseClient, first_seconds: float) -> Board:
    """The process's board for an endpoint (`key`: region, endpoint, credentials), made on first use."""
    with _boards_lock:
        if key not in _boards:
            _boards[key] = Board(client, first_seconds)
        return _boards[key]


def describe(client: BaseClient, ids: list[str]) -> Iterator[dict]:
    """Each job's description, PER_CALL jobs a call."""
    for start in range(0, len(ids), PER_CALL):
        yield from client.describe_jobs(jobs=ids[start : start + PER_CALL])["jobs"]


def active_jobs(client: BaseClient, queue: str, name: str) -> list[dict]:
    """Summaries of the queue's jobs named `name` (`prefix*` matches a prefix) that have not ended."""
    pages = client.get_paginator("list_jobs").paginate(
        jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}]
    )
    return [job for page in pages for job in page["jobSummaryList"] if job.get("status") in ACTIVE]


class LogTail:
    """A job's log stream, read forward into the run's log as it grows (Batch's group, or `group`)."""

    def __init__(self, client: BaseClient, sink: LogSink, first_seconds: float, group: str = LOG_GROUP):
        self._client, self._sink, self._group = client, sink, group
        self._token: str | None = None
        self._backoff = Backoff(first_seconds)
        self._due = 0.0

    def poll(self, stream: str, now: bool = False) -> None:
        """New lines into the sink, when due (or `now`)."""
        if not now and time.monotonic() < self._due:
            return
        try:
            got = self._read(stream)
        except (BotoCoreError, ClientError) as exc:
            log.warning("reading the log %s of %s failed: %s", stream, self._group, exc)
            got = 0
        if got:
            self._backoff.reset()
        else:
            self._backoff.grow()
        self._due = time.monotonic() + self._backoff.seconds

    def _read(self, stream: str) -> int:
        count = 0
        while True:
            asked = {"logGroupName": self._group, "logStreamName": stream, "startFromHead": True}
            if self._token is not None:
                asked["nextToken"] = self._token
            try:
                answer = self._client.get_log_events(**asked)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return count  # the stream starts with the job's first line
                raise
            lines = [part.rstrip("\r") for e in answer["events"] for part in e["message"].split("\n")]
            if lines:
                self._sink.lines(lines)
                count += len(lines)
            token, self._token = self._token, answer.get("nextForwardToken") or self._token
            if not answer["events"] or self._token == token:  # the end, for now
                return count
