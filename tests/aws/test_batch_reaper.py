"""The job definitions tierbot registers on AWS Batch (moto's) outlive no run that needs them: the reaper
deregisters those whose last run is not running, and only this instance's."""

import pytest

from bot.backends.batch import BatchBackend
from bot.backends.batch_reaper import reap_batch
from tests.fakes.local_backend import RecordingWatcher

from .conftest import batch_job, checkout

pytestmark = [pytest.mark.aws, pytest.mark.docker]


def _definitions(batch, prefix: str) -> dict[str, tuple[str, dict]]:
    """name:revision → (status, tags) of the job definitions whose names start with `prefix`."""
    found = batch.describe_job_definitions()["jobDefinitions"]
    return {
        f"{d['jobDefinitionName']}:{d['revision']}": (d["status"], d.get("tags") or {})
        for d in found
        if d["jobDefinitionName"].startswith(prefix)
    }


def test_job_definitions_no_run_needs_are_deregistered(aws, batch_settings, tmp_path):
    batch, instance = aws.client("batch"), batch_settings.docker_instance
    mine = f"tierbot-{instance}-"
    work = checkout(tmp_path, {"make.py": "print('made')\n"})
    tier = aws.tier()
    first, second = (batch_job(work, "python3 make.py", tier) for _ in range(2))
    for job in (first, second):
        assert BatchBackend(batch_settings).run(job, RecordingWatcher()).state == "succeeded"
    [name] = _definitions(batch, mine)  # one definition for both runs, tagged by its last
    assert _definitions(batch, mine)[name] == (
        "ACTIVE",
        {"tierbot:instance": instance, "tierbot:run": str(second.run_id)},
    )
    kept = batch.register_job_definition(
        jobDefinitionName=f"{mine}other-0123456789abcdef", type="container",
        containerProperties={"image": aws.image, "vcpus": 1, "memory": 128},
        tags={"tierbot:instance": instance, "tierbot:run": "999"},
    )["jobDefinitionName"]  # fmt: skip
    alike = batch.register_job_definition(
        jobDefinitionName=f"{mine}alike-0123456789abcdef", type="container",
        containerProperties={"image": aws.image, "vcpus": 1, "memory": 128},
        tags={"tierbot:instance": "another-bot", "tierbot:run": "1"},
    )["jobDefinitionName"]  # fmt: skip
    where = f"job definitions in AWS Batch in us-east-1 at {aws.endpoint}"

    done = reap_batch([tier], batch_settings, is_running=lambda run: run in (second.run_id, 999))
    assert done[where] == []  # its last run is running: it needs it

    done = reap_batch([tier], batch_settings, is_running=lambda run: run == 999)
    assert done[where] == [name]
    statuses = {key: status for key, (status, _tags) in _definitions(batch, mine).items()}
    assert statuses == {name: "INACTIVE", f"{kept}:1": "ACTIVE", f"{alike}:1": "ACTIVE"}

    again = batch_job(work, "python3 make.py", tier)  # the next run registers it again
    assert BatchBackend(batch_settings).run(again, RecordingWatcher()).state == "succeeded"
    revisions = {key: status for key, (status, _tags) in _definitions(batch, mine).items()}
    assert revisions[name.rsplit(":", 1)[0] + ":2"] == "ACTIVE"
