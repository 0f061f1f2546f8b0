"""The SageMaker backend against moto's server, whose training jobs run as containers on the machine's
Docker Engine (tests/fakes/moto_sagemaker.py): the code up as a bundle, the job, its log streamed, its
outputs down, cancel, failures, spot interruptions, throttling, and what crossed the wire on the way."""

import json
import time

import pytest

from bot.backends.sagemaker import SageMakerBackend
from tests.fakes import moto_sagemaker
from tests.fakes.local_backend import RecordingWatcher

from .conftest import CancelsOn, batch_job, bundle_keys, checkout, sagemaker_tier, training_job_of

pytestmark = [pytest.mark.aws, pytest.mark.docker]

MAKE = """\
import json, os, pathlib
out = pathlib.Path("out"); out.mkdir()
(out / "env.json").write_text(json.dumps(sorted(os.environ)))
(out / "result.txt").write_text("run " + os.environ["TIERBOT_RUN_ID"])
print("step 1", flush=True)
print("step 2")
"""


def describe(aws, name: str) -> dict:
    return aws.client("sagemaker").describe_training_job(TrainingJobName=name)


def gone(name: str) -> bool:
    """Whether the job's container is gone from the engine, or goes within a few seconds."""
    import docker

    engine = docker.from_env()
    try:
        for _ in range(50):
            if not engine.api.containers(all=True, filters={"label": f"{moto_sagemaker.LABEL}={name}"}):
                return True
            time.sleep(0.2)
        return False
    finally:
        engine.close()


def test_a_training_job_runs_and_sends_back_its_outputs(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"make.py": MAKE})
    job = batch_job(work, "python3 make.py", sagemaker_tier(aws), outputs="out")
    watcher = RecordingWatcher()
    mark = aws.wire.mark()
    outcome = SageMakerBackend(batch_settings).run(job, watcher)
    assert (outcome.state, outcome.exit_code, outcome.reason) == ("succeeded", 0, "exit code 0"), (
        outcome.log_tail
    )
    space = outcome.workspace
    assert sorted(p.relative_to(space).as_posix() for p in space.rglob("*")) == [
        "out", "out/env.json", "out/result.txt"
    ]  # fmt: skip
    assert (space / "out/result.txt").read_text() == f"run {job.run_id}"
    seen = json.loads((space / "out/env.json").read_text())
    assert [name for name in seen if name.startswith(("AWS_", "TIERBOT_"))] == ["TIERBOT_RUN_ID"]
    lines = watcher.lines
    assert lines.index("[tierbot: fetching the code]") < lines.index("step 1") < lines.index("step 2")
    assert watcher.phases == ["building", "starting", "running"]

    name = training_job_of(lines)
    assert name.startswith(f"tierbot-{batch_settings.docker_instance}-run-{job.run_id}-")
    created = next(c.params for c in aws.wire.since(mark) if c.operation == "createtrainingjob")
    assert created["Tags"] == [
        {"Key": "tierbot:run", "Value": str(job.run_id)},
        {"Key": "tierbot:instance", "Value": batch_settings.docker_instance},
    ]
    assert created["StoppingCondition"] == {"MaxRuntimeInSeconds": 120}  # the tier's max_runtime
    assert created["EnableManagedSpotTraining"] is False
    spec = created["AlgorithmSpecification"]
    assert all(len(part) <= 256 for part in spec["ContainerEntrypoint"] + spec["ContainerArguments"])
    assert created["HyperParameters"]["TIERBOT_RUN_ID"] == str(job.run_id)
    described = describe(aws, name)
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Completed", "Completed")
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"
    ]  # fmt: skip
    assert outcome.billed_seconds == described["BillableTimeInSeconds"]
    assert outcome.seconds == described["TrainingTimeInSeconds"]
    assert gone(name)
    assert [key.split("/")[0] for key in sorted(bundle_keys(aws, batch_settings))] == ["code", "entrypoint"]


def test_a_cancelled_run_stops_its_training_job(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"wait.py": "import time\nprint('started', flush=True)\ntime.sleep(300)\n"})
    watcher = CancelsOn("started")
    mark = aws.wire.mark()
    began = time.monotonic()
    outcome = SageMakerBackend(batch_settings).run(
        batch_job(work, "python3 wait.py", sagemaker_tier(aws)), watcher
    )
    assert (outcome.state, outcome.reason, outcome.exit_code) == ("cancelled", "cancelled", None)
    assert time.monotonic() - began < 60
    name = training_job_of(watcher.lines)
    stops = [c.params for c in aws.wire.since(mark) if c.operation == "stoptrainingjob"]
    assert stops == [{"TrainingJobName": name}]
    assert (describe(aws, name)["TrainingJobStatus"], describe(aws, name)["SecondaryStatus"]) == (
        "Stopped",
        "Stopped",
    )
    assert gone(name)


def test_a_failing_job_reports_its_exit_code_failure_reason_and_last_lines(aws, batch_settings, tmp_path):
    script = "import sys\nprint('loading data')\nprint('about to fail', flush=True)\nsys.exit(3)\n"
    work = checkout(tmp_path, {"fail.py": script})
    outcome = SageMakerBackend(batch_settings).run(
        batch_job(work, "python3 fail.py", sagemaker_tier(aws)), RecordingWatcher()
    )
    assert (outcome.state, outcome.exit_code) == ("failed", 3)
    assert outcome.reason == "the SageMaker training job failed: AlgorithmError: , exit code: 3"
    assert outcome.log_tail.splitlines()[-2:] == ["loading data", "about to fail"]


def test_the_jobs_own_failure_file_is_the_reason(aws, batch_settings, tmp_path):
    script = "open('/opt/ml/output/failure', 'w').write('the labels are missing\\n')\nraise SystemExit(2)\n"
    work = checkout(tmp_path, {"fail.py": script})
    outcome = SageMakerBackend(batch_settings).run(
        batch_job(work, "python3 fail.py", sagemaker_tier(aws)), RecordingWatcher()
    )
    assert (outcome.state, outcome.reason) == (
        "failed",
        "the SageMaker training job failed: the labels are missing",
    )


def test_past_max_runtime_the_job_is_stopped_by_sagemaker(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"wait.py": "import time\ntime.sleep(300)\n"})
    outcome = SageMakerBackend(batch_settings).run(
        batch_job(work, "python3 wait.py", sagemaker_tier(aws, runtime="3s")), RecordingWatcher()
    )
    assert (outcome.state, outcome.reason) == ("timed_out", "killed after 3.0s: the tier's max_runtime")


class InterruptsSpot(RecordingWatcher):
    """Interrupts the first spot job once it has printed `started`: its capacity never comes back."""

    def __init__(self):
        super().__init__()
        self.interrupted: list[str] = []

    def log(self, line: str) -> None:
        super().log(line)
        if line == "started" and not self.interrupted:
            self.interrupted.append(training_job_of(self.lines))
            moto_sagemaker.interrupt(self.interrupted[0])


SPOTTY = {
    "train.py": "import pathlib, time\nprint('started', flush=True)\ntime.sleep(2)\n"
    "pathlib.Path('out').mkdir()\npathlib.Path('out/model.txt').write_text('trained')\n"
}


def test_an_interrupted_spot_job_runs_once_more_on_demand(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, SPOTTY)
    tier = sagemaker_tier(aws, spot=True, retry_on_demand=True, checkpoint_s3_uri="s3://checkpoints/sm")
    watcher = InterruptsSpot()
    mark = aws.wire.mark()
    outcome = SageMakerBackend(batch_settings).run(
        batch_job(work, "python3 train.py", tier, outputs="out"), watcher
    )
    assert outcome.state == "succeeded", outcome.log_tail
    assert (outcome.workspace / "out/model.txt").read_text() == "trained"
    created = [c.params for c in aws.wire.since(mark) if c.operation == "createtrainingjob"]
    assert [c["EnableManagedSpotTraining"] for c in created] == [True, False]
    assert created[0]["StoppingCondition"] == {"MaxRuntimeInSeconds": 120, "MaxWaitTimeInSeconds": 240}
    assert created[0]["CheckpointConfig"] == {"S3Uri": "s3://checkpoints/sm"}
    spot, on_demand = (describe(aws, c["TrainingJobName"]) for c in created)
    assert (spot["TrainingJobStatus"], spot["SecondaryStatus"]) == ("Stopped", "Interrupted")
    assert on_demand["TrainingJobStatus"] == "Completed"
    # What SageMaker bills for both: the spot attempt's time at its discount, then the on-demand one's.
    assert outcome.billed_seconds == spot["BillableTimeInSeconds"] + on_demand["BillableTimeInSeconds"]
    assert "[tierbot: the spot job was interrupted: running it once more on demand]" in watcher.lines


def test_an_interrupted_spot_job_fails_when_the_tier_does_not_retry(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, SPOTTY)
    outcome = SageMakerBackend(batch_settings).run(
        batch_job(work, "python3 train.py", sagemaker_tier(aws, spot=True)), InterruptsSpot()
    )
    assert (outcome.state, outcome.exit_code) == ("failed", None)
    assert outcome.reason == (
        "the spot instances were interrupted and no capacity came back within backend_options.max_wait"
    )


def test_throttled_calls_are_retried(aws, batch_settings, tmp_path):
    work = checkout(tmp_path, {"make.py": "print('made it')\n"})
    throttled = {"describetrainingjob": 2, "getlogevents": 1, "createtrainingjob": 1}
    aws.wire.throttled.update(throttled)
    outcome = SageMakerBackend(batch_settings).run(
        batch_job(work, "python3 make.py", sagemaker_tier(aws)), RecordingWatcher()
    )
    assert outcome.state == "succeeded", outcome.log_tail
    assert "made it" in outcome.log_tail
    assert {op: aws.wire.throttled[op] for op in throttled} == dict.fromkeys(throttled, 0)  # each refused


def test_api_calls_per_run_are_counted(aws, batch_settings, tmp_path):
    work = checkout(
        tmp_path, {"make.py": "import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(1)\n"}
    )
    job = batch_job(work, "python3 make.py", sagemaker_tier(aws))
    mark = aws.wire.mark()
    began = time.monotonic()
    outcome = SageMakerBackend(batch_settings).run(job, RecordingWatcher())
    seconds = time.monotonic() - began
    assert outcome.state == "succeeded", outcome.log_tail
    name = training_job_of(job.log_path.read_text().splitlines())
    calls = [c for c in aws.wire.since(mark) if c.service in ("sagemaker", "logs")]
    counted = {op: sum(c.operation == op for c in calls) for op in {c.operation for c in calls}}
    print(f"{seconds:.1f} s: {counted}")
    assert counted["createtrainingjob"] == 1 and counted["listtrainingjobs"] == 1
    assert "stoptrainingjob" not in counted
    # At most one state poll a first wait (0.2 s), fewer as they back off; as many log reads at most.
    polls = 2 + seconds / batch_settings.remote_poll_seconds
    assert counted["describetrainingjob"] <= polls
    assert counted["getlogevents"] + counted["describelogstreams"] <= polls + 2
    assert all(c.params.get("TrainingJobName", name) == name for c in calls if c.service == "sagemaker")
