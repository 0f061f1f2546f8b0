"""The artifact store (`bot.artifacts`): replicas, each with its own data dir, on one database settle each
other's comparisons and serve each other's reports — through S3 (moto's server on loopback, reached by
boto3 over HTTP) or through a shared path. What comes back from S3 is verified; a host-local store beside
other hosts' runs refuses to start; `tierbot gc` removes from S3 too."""

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import update

from bot.artifacts import ArtifactUnavailable, describe, refuse_host_local
from bot.cli.server import start_summary
from bot.errors import SettingsInvalid
from bot.pipeline import Pipeline, Submission
from bot.request import RunRequest
from bot.server import create_app
from bot.settings import Settings
from bot.store import Run
from bot.tiers import BUILTIN
from bot.worker import Worker

from ..conftest import GitRepo
from ..fakes.moto_s3 import S3Bucket
from .test_gc import age, collect, make_plan
from .test_pipeline import compare

PREFIX = "tierbot"


def replicas(settings: Settings, tmp_path: Path, **shared: object) -> tuple[Pipeline, Pipeline]:
    """Two replicas of one installation (`shared` settings), each with a data dir of its own."""
    a, b = (Pipeline(settings.model_copy(update={"data_dir": tmp_path / name, **shared})) for name in "ab")
    return a, b


def split_run(first: Pipeline, second: Pipeline, repo: GitRepo, branch: str) -> Submission:
    """`branch` against main: the baseline run by `first`'s worker, the branch by `second`'s, which
    settles the comparison with outputs only `first` collected."""
    submission = first.submit(RunRequest(repository=str(repo), ref=branch, base="main"))
    assert Worker(first, only={submission.base.id}).run_once()
    assert first.comparison(submission.comparison.id).state == "pending"  # the branch has not run
    assert Worker(second, only={submission.head.id}).run_once()
    return submission


def blobs_here(pipeline: Pipeline, run_id: int) -> list[bool]:
    return [pipeline.artifacts.blobs.path_of(o.hash).is_file() for o in pipeline.outputs(run_id)]


def served(pipeline: Pipeline, comparison_id: int):
    """The report page of a comparison, as `tierbot serve` on this replica answers its signed link."""
    link = urlsplit(pipeline.report_context(pipeline.comparison(comparison_id)).report_url)
    return TestClient(create_app(pipeline, workers=0)).get(f"{link.path}?{link.query}")


@pytest.mark.postgres
def test_replicas_on_postgres_and_s3_settle_and_serve_each_others_work(
    settings, tmp_path, simple_repo, postgres_url, s3_bucket: S3Bucket
):
    a, b = replicas(
        s3_bucket.store(settings, PREFIX),
        tmp_path,
        database_url=postgres_url,
        public_url="https://tierbot.example",
        report_secret=SecretStr("one-report-secret-for-every-replica"),
    )
    submission = split_run(b, a, simple_repo, "better")  # B runs main; A runs the branch and settles
    head, base, comparison_id = submission.head.id, submission.base.id, submission.comparison.id

    comparison = b.comparison(comparison_id)
    assert comparison.state == "done", comparison.reason
    assert comparison.verdict == "changed" and comparison.result["problems"] == []
    metric = next(m for m in comparison.result["metrics"] if m["name"] == "accuracy")
    assert (metric["base"], metric["head"]) == (0.9, 0.95)
    assert all(blobs_here(a, base)), "A compared main's outputs from its own cache"
    assert not any(blobs_here(b, head)), "B never needed the branch's outputs"

    bucket = f"s3://{s3_bucket.name}/{PREFIX}"
    blobs = {f"{PREFIX}/blobs/{o.hash[:2]}/{o.hash[2:]}" for r in (head, base) for o in a.outputs(r)}
    assert s3_bucket.keys(f"{PREFIX}/") == blobs | {
        f"{PREFIX}/logs/run-{head}.log",
        f"{PREFIX}/logs/run-{base}.log",
        f"{PREFIX}/reports/comparison-{comparison_id}.html",
    }
    assert comparison.report_path == f"{bucket}/reports/comparison-{comparison_id}.html"
    log = b.run(head).log_path
    assert log == f"{bucket}/logs/run-{head}.log" and "done, accuracy 0.95" in b.artifacts.read_text(log)
    assert not (tmp_path / "a" / "logs" / f"run-{head}.log").exists()  # the bucket holds it now

    page = served(b, comparison_id)  # settled on A, served by B
    assert page.status_code == 200 and "accuracy" in page.text and "0.95" in page.text

    key = f"{PREFIX}/reports/comparison-{comparison_id}.html"
    stored = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)["Metadata"]
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=b"<p>forged</p>", Metadata=stored)
    forged = served(b, comparison_id)
    assert forged.status_code == 503 and "forged" not in forged.text


def test_a_tampered_blob_is_refused_not_compared(settings, tmp_path, simple_repo, s3_bucket: S3Bucket):
    a, b = replicas(s3_bucket.store(settings, PREFIX), tmp_path, database_url=f"sqlite:///{tmp_path}/q.db")
    submission = b.submit(RunRequest(repository=str(simple_repo), ref="better", base="main"))
    assert Worker(b, only={submission.base.id}).run_once()
    metrics = next(o for o in b.outputs(submission.base.id) if o.path == "metrics.json")
    key = f"{PREFIX}/blobs/{metrics.hash[:2]}/{metrics.hash[2:]}"
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=b'{"accuracy": 0.99}')

    assert Worker(a, only={submission.head.id}).run_once()
    comparison = a.comparison(submission.comparison.id)
    assert comparison.state == "failed" and comparison.verdict is None
    assert "metrics.json in the artifact store" in comparison.reason
    assert "does not match their hash" in comparison.reason and "refused" in comparison.reason
    assert not a.artifacts.blobs.path_of(metrics.hash).exists()  # nothing unverified is kept

    log = a.run(submission.base.id).log_path
    key = log.removeprefix(f"s3://{s3_bucket.name}/")
    stored = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=key)  # its hash in its metadata
    forged = stored["Body"].read() + b"forged\n"
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=forged, Metadata=stored["Metadata"])
    with pytest.raises(ArtifactUnavailable, match="refused"):
        a.artifacts.read_text(log)


def test_blobs_are_uploaded_once(settings, tmp_path, s3_bucket: S3Bucket):
    pipeline = Pipeline(s3_bucket.store(settings))
    puts: list[str] = []
    pipeline.artifacts.client.meta.events.register(
        "before-call.s3.PutObject", lambda params, **_: puts.append(params["url_path"])
    )
    source = tmp_path / "outputs.bin"
    source.write_bytes(b"the same content, twice")
    blob = pipeline.artifacts.blobs.put(source)
    pipeline.artifacts.publish([blob.hash, blob.hash])
    pipeline.artifacts.publish([blob.hash])  # another run with the same content: a HEAD, no upload
    assert len(puts) == 1 and puts[0].endswith(f"/blobs/{blob.hash[:2]}/{blob.hash[2:]}")


def test_a_shared_path_serves_replicas_with_their_own_data_dirs(settings, tmp_path, simple_repo):
    shared = tmp_path / "mnt" / "tierbot"
    a, b = replicas(settings, tmp_path, artifact_store=str(shared), database_url=f"sqlite:///{tmp_path}/q.db")
    submission = split_run(a, b, simple_repo, "worse")
    comparison = a.comparison(submission.comparison.id)
    assert comparison.state == "done" and comparison.verdict == "fail", comparison.reason
    assert comparison.report_path == str(shared / "reports" / f"comparison-{comparison.id}.html")
    assert "accuracy" in a.artifacts.read_text(comparison.report_path)
    head_log = a.run(submission.head.id).log_path
    assert head_log == str(shared / "logs" / f"run-{submission.head.id}.log")
    assert "done, accuracy 0.8" in Path(head_log).read_text()
    assert not (tmp_path / "b" / "logs" / f"run-{submission.head.id}.log").exists()
    assert all(blobs_here(b, submission.base.id)) and all(blobs_here(a, submission.head.id))
    assert not (tmp_path / "a" / "blobs").exists() and not (tmp_path / "b" / "blobs").exists()


def test_a_host_local_store_refuses_to_start_beside_other_hosts_runs(settings, simple_repo, tierbot):
    pipeline = Pipeline(settings)
    submission, _ = compare(pipeline, simple_repo, "better")
    refuse_host_local(settings, pipeline.artifacts, pipeline.db)  # only this host's runs: fine
    with pipeline.db.session() as s:
        s.execute(update(Run).where(Run.id == submission.base.id).values(host="gpu-box-7"))

    started = tierbot("serve", "--port", "0")
    assert started.returncode == 2, started.stdout + started.stderr
    said = " ".join(started.stderr.split())
    assert "runs of other hosts: gpu-box-7" in said and "TIERBOT_ARTIFACT_STORE" in said
    shared = settings.model_copy(update={"artifact_store": str(settings.data_dir.parent / "shared")})
    refuse_host_local(shared, Pipeline(shared).artifacts, pipeline.db)  # a shared store may start


def test_gc_removes_outputs_logs_and_reports_from_s3(settings, simple_repo, s3_bucket: S3Bucket):
    pipeline = Pipeline(s3_bucket.store(settings, PREFIX))
    first, _ = compare(pipeline, simple_repo, "better")
    second, _ = compare(pipeline, simple_repo, "worse")
    old = first.head.id
    age(pipeline, old, days=60)
    age(pipeline, first.base.id, days=60)
    before = s3_bucket.keys()
    old_blobs = {f"{PREFIX}/blobs/{o.hash[:2]}/{o.hash[2:]}" for o in pipeline.outputs(old)}
    old_blobs -= {f"{PREFIX}/blobs/{o.hash[:2]}/{o.hash[2:]}" for o in pipeline.outputs(second.head.id)}
    report = f"{PREFIX}/reports/comparison-{first.comparison.id}.html"
    gone = old_blobs | {f"{PREFIX}/logs/run-{old}.log", report}
    assert old_blobs and gone <= before

    plan = make_plan(pipeline)
    assert plan.collected_runs == {old} and {i.kind for i in plan.items} == {"outputs", "log", "report"}
    assert collect(pipeline, plan) == plan.size > 0
    assert s3_bucket.keys() == before - gone
    cached = [pipeline.artifacts.blobs.path_of(o.hash) for o in pipeline.outputs(second.head.id)]
    assert cached and all(p.exists() for p in cached)
    assert pipeline.run(old).log_path is None and pipeline.comparison(first.comparison.id).report_path is None


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("shared/tierbot", "is not an absolute path"),
        ("gs://bucket/prefix", "only s3:// URLs are stores"),
        ("s3://Not_A_Bucket/prefix", "is not an S3 bucket name"),
    ],
)
def test_a_bad_store_setting_is_refused_clearly(settings, given, why):
    with pytest.raises(SettingsInvalid, match=why) as refused:
        Settings(data_dir=settings.data_dir, artifact_store=given)
    assert f"TIERBOT_ARTIFACT_STORE: {given!r}" in str(refused.value)


def test_the_start_up_summary_names_the_store(settings):
    chosen = Settings(data_dir=settings.data_dir, artifact_store="s3://acme-ml/tierbot/")
    assert chosen.artifact_store == "s3://acme-ml/tierbot"
    summary = "\n".join(start_summary(chosen, BUILTIN, 1))
    assert "Artifacts: S3 s3://acme-ml/tierbot, shared by every replica" in summary
    assert describe(settings).startswith(f"the data dir {settings.data_dir} (this host only")


AWS_IMPORTS = """
import sys
from bot.errors import TierbotError
from bot.pipeline import Pipeline
from bot.settings import Settings
Pipeline(Settings())
assert not {"boto3", "botocore"} & set(sys.modules), "the default store loaded boto3"
sys.modules["botocore"] = None  # as in an install without tierbot[aws]
try:
    Pipeline(Settings(artifact_store="s3://acme-ml/tierbot"))
except TierbotError as exc:
    print(exc)
"""


def test_only_an_s3_store_needs_boto3(cli_env):
    done = subprocess.run(
        [sys.executable, "-c", AWS_IMPORTS], env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "boto3 is not installed" in done.stdout and "pip install 'tierbot[aws]'" in done.stdout
