"""A batch tier's max_runtime is its job's own timeout on AWS Batch (moto's, which stops a job past it as
AWS does): it crosses the wire as attemptDurationSeconds, and a job over it ends timed out, for the
reason Batch gives. AWS Batch's least timeout is a minute: this test takes one."""

import time

import pytest

from bot.backends.batch import BatchBackend
from tests.fakes.local_backend import RecordingWatcher

from .conftest import batch_job, checkout, job_id_of

pytestmark = [pytest.mark.aws, pytest.mark.docker]


def test_a_job_past_max_runtime_ends_timed_out_by_batchs_timeout(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"wait.py": "import time\nprint('started', flush=True)\ntime.sleep(600)\n"})
    job = batch_job(work, "python3 wait.py", aws.tier(runtime="1m"))
    watcher = RecordingWatcher()
    mark = aws.wire.mark()
    began = time.monotonic()
    outcome = BatchBackend(batch_settings).run(job, watcher)
    calls = aws.wire.since(mark)
    assert (outcome.state, outcome.exit_code, outcome.reason) == (
        "timed_out",
        None,
        "killed after 1m00s: the tier's max_runtime",
    ), outcome.log_tail
    assert time.monotonic() - began < 110  # Batch's timeout, not tierbot's own deadline a minute later
    submitted = next(c.params for c in calls if c.operation == "submitjob")
    registered = next(c.params for c in calls if c.operation == "registerjobdefinition")
    assert submitted["timeout"] == registered["timeout"] == {"attemptDurationSeconds": 60}
    assert [c for c in calls if c.operation == "terminatejob"] == []  # Batch stopped it, not tierbot
    described = aws.job(job_id_of(watcher.lines))
    assert (described["status"], described["statusReason"]) == (
        "FAILED",
        "Job attempt duration exceeded timeout",
    )
    assert "started" in watcher.lines
