"""The AWS Batch backend against moto's server, whose Batch runs each job's container on the machine's
Docker Engine: the code up as a bundle, the job, its log streamed, its outputs down, and what crossed
the wire on the way."""

import json
import os
import threading
import time

import pytest

from bot.backends.batch import BatchBackend
from tests.fakes.local_backend import RecordingWatcher

from .conftest import CancelsOn, batch_job, bundle_keys, checkout, job_id_of, tags_of

pytestmark = [pytest.mark.aws, pytest.mark.docker]

MAKE = """\
import json, os, pathlib
out = pathlib.Path("out"); out.mkdir()
(out / "env.json").write_text(json.dumps(sorted(os.environ)))
(out / "result.txt").write_text("run " + os.environ["TIERBOT_RUN_ID"])
os.symlink("/etc/passwd", "out/passwd")
print("step 1", flush=True)
print("step 2")
"""


def test_a_job_runs_on_batch_and_sends_back_its_outputs_only(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"make.py": MAKE, "data/big.txt": "x" * 100_000})
    job = batch_job(work, "python3 make.py", aws.tier(), outputs="out")
    watcher = RecordingWatcher()
    mark = aws.wire.mark()
    outcome = BatchBackend(batch_settings).run(job, watcher)
    assert (outcome.state, outcome.exit_code, outcome.reason) == ("succeeded", 0, "exit code 0"), (
        outcome.log_tail
    )
    assert outcome.seconds > 0 and outcome.billed_seconds == outcome.seconds  # Batch's start to stop
    space = outcome.workspace
    assert sorted(p.relative_to(space).as_posix() for p in space.rglob("*")) == [
        "out", "out/env.json", "out/passwd", "out/result.txt"
    ]  # fmt: skip
    assert os.readlink(space / "out/passwd") == "/etc/passwd"  # a link, never followed
    assert (space / "out/result.txt").read_text() == f"run {job.run_id}"
    seen = json.loads((space / "out/env.json").read_text())
    assert "TIERBOT_RUN_ID" in seen
    # No AWS credential reached the job, and the experiment does not see the entrypoint's URLs.
    assert [name for name in seen if name.startswith("AWS_") and name != "AWS_BATCH_JOB_ID"] == []
    assert [name for name in seen if name.startswith("TIERBOT_")] == ["TIERBOT_RUN_ID"]
    lines = watcher.lines
    assert lines.index("[tierbot: fetching the code]") < lines.index("step 1") < lines.index("step 2")
    assert watcher.phases == ["building", "starting", "running"]
    assert job.log_path.read_text().splitlines() == lines  # the run's log, line for line

    submitted = next(c.params for c in aws.wire.since(mark) if c.operation == "submitjob")
    assert submitted["jobName"] == f"tierbot-{batch_settings.docker_instance}-run-{job.run_id}"
    assert submitted["tags"] == {
        "tierbot:run": str(job.run_id),
        "tierbot:instance": batch_settings.docker_instance,
    }
    assert submitted["timeout"] == {"attemptDurationSeconds": 120}  # the tier's max_runtime
    assert submitted["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}
    ]  # fmt: skip
    described = aws.job(job_id_of(lines))
    assert (described["status"], described["tags"]) == ("SUCCEEDED", submitted["tags"])

    keys = bundle_keys(aws, batch_settings)
    [code] = [key for key in keys if key.startswith("code/")]
    assert [key.split("/")[0] for key in sorted(keys)] == ["code", "entrypoint"]  # the outputs are deleted
    assert tags_of(aws, batch_settings, code)["tierbot:run"] == str(job.run_id)


def test_the_code_of_a_tree_is_sent_once(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"make.py": "print('same code')\n"})
    mark = aws.wire.mark()
    first, second = (batch_job(work, "python3 make.py", aws.tier()) for _ in range(2))
    for job in (first, second):
        outcome = BatchBackend(batch_settings).run(job, RecordingWatcher())
        assert outcome.state == "succeeded", outcome.log_tail
    uploads = [
        c for c in aws.wire.since(mark) if c.operation == "PUT" and "/bundles/code/" in c.params["path"]
    ]
    assert len(uploads) == 1
    assert "[tierbot: reusing the code bundle of tree" in second.log_path.read_text()
    [code] = [key for key in bundle_keys(aws, batch_settings) if key.startswith("code/")]
    assert tags_of(aws, batch_settings, code)["tierbot:run"] == str(second.run_id)  # its last user


def test_a_cancelled_run_terminates_its_job(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"wait.py": "import time\nprint('started', flush=True)\ntime.sleep(300)\n"})
    watcher = CancelsOn("started")
    began = time.monotonic()
    outcome = BatchBackend(batch_settings).run(batch_job(work, "python3 wait.py", aws.tier()), watcher)
    assert (outcome.state, outcome.reason, outcome.exit_code) == ("cancelled", "cancelled", None)
    assert time.monotonic() - began < 60
    described = aws.job(job_id_of(watcher.lines))
    assert (described["status"], described["statusReason"]) == ("FAILED", "cancelled in tierbot")
    assert _gone(f"{described['jobName']}-{described['jobId']}")  # moto removes the job's container


def _gone(container: str) -> bool:
    """Whether the container is gone from the engine, or goes within a few seconds."""
    import docker

    engine = docker.from_env()
    try:
        for _ in range(50):
            if not engine.api.containers(all=True, filters={"name": container}):
                return True
            time.sleep(0.2)
        return False
    finally:
        engine.close()


def test_the_entrypoints_own_failure_is_the_reason(aws, batch_settings, tmp_path):
    work = checkout(
        tmp_path, {"requirements.txt": "this is not a requirement!\n", "make.py": "print('never')\n"}
    )
    job = batch_job(work, "python3 make.py", aws.tier(), requirements=work / "requirements.txt")
    outcome = BatchBackend(batch_settings).run(job, RecordingWatcher())
    assert outcome.state == "failed"
    assert outcome.reason == "the environment could not be built from requirements.txt: -m pip install failed"
    assert "never" not in outcome.log_tail


def test_a_requirements_file_runs_the_command_in_its_venv(aws, batch_settings, tmp_path):
    script = "import os, sys\nprint('venv', sys.prefix == os.environ['VIRTUAL_ENV'])\n"
    work = checkout(tmp_path, {"requirements.txt": "# nothing to install\n", "make.py": script})
    job = batch_job(work, "python make.py", aws.tier(), requirements=work / "requirements.txt")
    outcome = BatchBackend(batch_settings).run(job, RecordingWatcher())
    assert outcome.state == "succeeded", outcome.log_tail
    assert "venv True" in outcome.log_tail


def test_outputs_past_the_limits_fail_the_run_without_filling_the_disk(aws, batch_settings, tmp_path):
    # A megabyte of zeros compresses to a kilobyte: the bound holds on what it inflates to.
    script = (
        "import pathlib\npathlib.Path('out').mkdir()\npathlib.Path('out/zeros').write_bytes(bytes(2**20))\n"
    )
    work = checkout(tmp_path, {"make.py": script})
    settings = batch_settings.model_copy(update={"max_output_bytes": 64 * 1024})
    outcome = BatchBackend(settings).run(
        batch_job(work, "python3 make.py", aws.tier(), outputs="out"), RecordingWatcher()
    )
    assert (outcome.state, outcome.workspace) == ("failed", None)
    assert outcome.reason.startswith(
        "outputs not received from the job: the container's workdir holds more than"
    )
    assert list((settings.data_dir / "remote").iterdir()) == []
    assert [k for k in bundle_keys(aws, settings) if k.startswith("outputs/")] == []


def test_throttled_calls_are_retried(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"make.py": "print('made it')\n"})
    aws.wire.throttled.update({"describejobs": 2, "getlogevents": 2, "submitjob": 1})
    outcome = BatchBackend(batch_settings).run(
        batch_job(work, "python3 make.py", aws.tier()), RecordingWatcher()
    )
    assert outcome.state == "succeeded", outcome.log_tail
    assert "made it" in outcome.log_tail
    assert aws.wire.throttled == {"describejobs": 0, "getlogevents": 0, "submitjob": 0}  # all refused once


def test_api_calls_per_run_are_counted_and_job_states_asked_together(aws, batch_settings, tmp_path):
    work = checkout(
        tmp_path, {"make.py": "import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(1)\n"}
    )
    jobs = [batch_job(work, "python3 make.py", aws.tier()) for _ in range(2)]
    outcomes = {}
    mark = aws.wire.mark()
    began = time.monotonic()
    threads = [
        threading.Thread(
            target=lambda j=j: outcomes.__setitem__(
                j.run_id, BatchBackend(batch_settings).run(j, RecordingWatcher())
            )
        )
        for j in jobs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - began
    assert [o.state for o in outcomes.values()] == ["succeeded", "succeeded"]
    calls = aws.wire.since(mark)
    ids = {job.run_id: job_id_of(job.log_path.read_text().splitlines()) for job in jobs}
    for run_id, job_id in ids.items():
        mine = [
            c for c in calls if job_id in json.dumps(c.params) or f"-run-{run_id}" in json.dumps(c.params)
        ]
        counted = {op: sum(c.operation == op for c in mine) for op in {c.operation for c in mine}}
        print(f"run {run_id}: {counted}")
        assert counted["submitjob"] == 1 and counted["listjobs"] == 1 and "terminatejob" not in counted
        # At most one state poll a first wait (0.2 s), and far fewer log reads as they back off.
        assert counted["describejobs"] <= 2 + seconds / batch_settings.remote_poll_seconds
        assert counted["getlogevents"] <= 2 + seconds / batch_settings.remote_poll_seconds
    asked = [set(c.params["jobs"]) for c in calls if c.operation == "describejobs"]
    assert set(ids.values()) in asked  # one DescribeJobs for both runs' jobs
    registered = [c for c in calls if c.operation == "registerjobdefinition"]
    assert len(registered) <= 1  # the tier's job definition, once (none if an earlier test made it)
