"""How a Batch job's end is told, from Batch's own account of it (plain data: no server needed)."""

import pytest

from bot.backends.batch import _Ending, judge
from bot.backends.batch_options import options_of
from bot.tiers import Tier

pytestmark = pytest.mark.aws

TIER = Tier(
    name="gpu",
    backend="batch",
    memory="4GiB",
    max_runtime="30m",
    backend_options={"region": "eu-west-1", "job_queue": "ml-gpu", "image": "ml:1", "max_queue": "2h"},
)
OPTIONS = options_of(TIER)


def judged(described: dict, stopped=None, tail=()) -> tuple[str, str]:
    return judge(_Ending(described, stopped, 12.0, None), TIER, OPTIONS, list(tail))


@pytest.mark.parametrize(
    ("described", "stopped", "tail", "expected"),
    [
        ({"status": "SUCCEEDED", "container": {"exitCode": 0}}, None, [], ("succeeded", "exit code 0")),
        ({"status": "FAILED", "container": {"exitCode": 3}}, None, ["boom"], ("failed", "exit code 3")),
        ({"status": "RUNNING"}, "cancel", [], ("cancelled", "cancelled")),
        ({"status": "RUNNING"}, "timeout", [], ("timed_out", "killed after 30m00s: the tier's max_runtime")),
        (
            {"status": "RUNNABLE"},
            "queue",
            [],
            (
                "failed",
                "not started within 2h00m (backend_options.max_queue): the job queue ml-gpu found no "
                "hardware for it",
            ),
        ),
        (
            {"status": "FAILED", "statusReason": "Job attempt duration exceeded timeout"},
            None,
            [],
            ("timed_out", "killed after 30m00s: the tier's max_runtime"),
        ),
        (
            {
                "status": "FAILED",
                "container": {"exitCode": 137, "reason": "OutOfMemoryError: Container killed"},
            },
            None,
            [],
            ("failed", "out of memory (limit 4.0 GiB)"),
        ),
        (
            {"status": "FAILED", "container": {"reason": "CannotPullContainerError: pull access denied"}},
            None,
            [],
            ("failed", "the AWS Batch job failed: CannotPullContainerError: pull access denied"),
        ),
        (
            {"status": "FAILED", "container": {"exitCode": 1}},
            None,
            [
                "[tierbot: fetching the code]",
                "[tierbot: entrypoint failed: the code could not be fetched: HTTP 403 Forbidden]",
            ],
            ("failed", "the code could not be fetched: HTTP 403 Forbidden"),
        ),
    ],
)
def test_a_jobs_end_in_the_local_backends_words(described, stopped, tail, expected):
    assert judged(described, stopped, tail) == expected
