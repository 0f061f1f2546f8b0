"""Where a SageMaker training job is, and what it prints, asked within AWS's limits.

SageMaker has no call that describes many training jobs at once (Batch's DescribeJobs does), so each run
asks for its own job (`JobState`): every `remote_poll_seconds` (5 s) while its status or secondary status
changes, doubling up to 12 times that (60 s) while they do not. The job's log is the first host's stream
in CloudWatch Logs (`/aws/sagemaker/TrainingJobs`, `<job>/algo-1-<epoch>`), found once SageMaker has made
it and then read forward with the Batch backend's `LogTail`, on the same back-off. Throttling and 5xx are
botocore's to retry (standard mode); a poll that still fails is logged and tried again later.
"""

import logging
import time
from collections.abc import Iterator

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from bot.backends.batch_status import Backoff, LogTail
from bot.backends.process import LogSink
from bot.backends.remote import TAG_INSTANCE, TAG_RUN

log = logging.getLogger(__name__)

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL = ("Completed", "Failed", "Stopped")


class JobState:
    """A training job's latest description, asked again when due."""

    def __init__(self, client: BaseClient, name: str, first_seconds: float):
        self._client, self._name = client, name
        self._backoff = Backoff(first_seconds)
        self._due = 0.0
        self.latest: dict = {}

    def poll(self) -> dict:
        """The latest description, asked for anew when due."""
        if time.monotonic() < self._due:
            return self.latest
        try:
            found = self._client.describe_training_job(TrainingJobName=self._name)
        except (BotoCoreError, ClientError) as exc:  # retried by botocore already: next poll again
            log.warning("SageMaker DescribeTrainingJob %s failed: %s", self._name, exc)
            found = self.latest
        moved = _status(found) != _status(self.latest)
        self.latest = found
        if moved:
            self._backoff.reset()
        else:
            self._backoff.grow()
        self._due = time.monotonic() + self._backoff.seconds
        return found


def _status(described: dict) -> tuple:
    return described.get("TrainingJobStatus"), described.get("SecondaryStatus")


class JobLog:
    """The first host's log stream of a training job, read forward into the run's log."""

    def __init__(self, client: BaseClient, sink: LogSink, name: str, first_seconds: float):
        self._client, self._prefix = client, f"{name}/algo-1-"
        self._tail = LogTail(client, sink, first_seconds, LOG_GROUP)
        self._stream: str | None = None
        self._backoff = Backoff(first_seconds)
        self._due = 0.0

    def poll(self, now: bool = False) -> None:
        if self._stream is None and (now or time.monotonic() >= self._due):
            self._stream = self._find()
            self._backoff.grow()
            self._due = time.monotonic() + self._backoff.seconds
        if self._stream is not None:
            self._tail.poll(self._stream, now)

    def _find(self) -> str | None:
        try:
            found = self._client.describe_log_streams(
                logGroupName=LOG_GROUP, logStreamNamePrefix=self._prefix
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                log.warning("finding the log of %s failed: %s", self._prefix, exc)
            return None
        except BotoCoreError as exc:
            log.warning("finding the log of %s failed: %s", self._prefix, exc)
            return None
        streams = found.get("logStreams") or []
        return streams[0]["logStreamName"] if streams else None


def active_jobs(client: BaseClient, name_contains: str, instance: str) -> Iterator[tuple[str, int | None]]:
    """(name, run) of this instance's training jobs in progress whose name contains `name_contains`: one
    ListTrainingJobs page at a time, one ListTags a job (the run and instance tags)."""
    pages = client.get_paginator("list_training_jobs").paginate(
        NameContains=name_contains,
        StatusEquals="InProgress",  # a job already Stopping is seen to
    )
    for job in (job for page in pages for job in page["TrainingJobSummaries"]):
        tagged = client.list_tags(ResourceArn=job["TrainingJobArn"]).get("Tags") or []
        tags = {tag["Key"]: tag["Value"] for tag in tagged}
        if tags.get(TAG_INSTANCE) != instance:
            continue  # a name alike, but not ours
        run = tags.get(TAG_RUN, "")
        yield job["TrainingJobName"], (int(run) if run.isdigit() else None)
