"""The sagemaker target on the wire: moto's server with endpoints that really serve
(tests/fakes/moto_sagemaker_endpoints.py: each endpoint's model runs on the real Docker Engine, from an
image of the base image whose entrypoint is tierbot's model server from the model data), the artifact
store in a bucket on that server, and the deploy tests' `scaler` experiment run locally. A merge is
served through InvokeEndpoint; a broken predict, a refused prediction diff and a failed switch leave the
old release serving; a rollback; a worker killed mid-deploy; bad deploy options; the requests the live
endpoint served (SageMaker's Data Capture, written by the fake to the bucket) replayed in the next
prediction diff. No endpoint and no container is left after a test."""

import base64
import io
import json
import uuid

import pytest
import yaml

from bot.deploy.plan import request_deploy, request_rollback
from bot.deploy.sagemaker_options import SageMakerDeploy, endpoint_name, release_name
from bot.pipeline import Pipeline
from bot.tiers import Requester
from tests.fakes.moto_aws import BASE_IMAGE, REGION
from tests.fakes.moto_sagemaker_endpoints import LABEL

from .conftest import (
    BROKEN_SERVE,
    SPEC,
    deploy,
    kill_worker_mid_check,
    report_of,
    work_until_done,
    worker_settings,
)

pytestmark = pytest.mark.docker

SAGEMAKER_SPEC = SPEC.replace("  smoke:", "  target: sagemaker\n  smoke:")


@pytest.fixture(scope="session")
def serving_image(aws):
    """The operator's serving image: python3, and tierbot's model server from the model data."""
    import docker

    engine = docker.from_env()
    tag = f"tierbot-test-serve:{uuid.uuid4().hex[:10]}"
    dockerfile = f'FROM {BASE_IMAGE}\nENTRYPOINT ["python3", "/opt/ml/model/model_server.py"]\n'.encode()
    engine.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, network_mode="host", rm=True)
    yield tag
    engine.images.remove(tag, force=True)
    engine.close()


def options(aws, image: str, **changed) -> dict:
    base = {
        "region": REGION, "role_arn": aws.job_role, "image": image, "instance_type": "ml.m5.large",
        "endpoint_url": aws.endpoint, "start_timeout": "90s", "capture_percentage": 100,
    }  # fmt: skip
    return base | changed


def pipeline_with(settings, tmp_path, sagemaker: dict) -> Pipeline:
    tiers = {
        "tiers": [{"name": "cpu", "default": True, "max_runtime": "2m"}],
        "deploy_targets": {"production": {"sagemaker": sagemaker}},
    }
    (tmp_path / "tiers.yaml").write_text(yaml.safe_dump(tiers))
    return Pipeline(settings.model_copy(update={"tiers_file": tmp_path / "tiers.yaml"}))


@pytest.fixture
def pipeline(batch_settings, tmp_path, aws, serving_image):  # noqa: F811 (the deploy tests' pipeline, on moto)
    running = pipeline_with(batch_settings, tmp_path, options(aws, serving_image))
    yield running
    running.db.dispose()


@pytest.fixture
def scaler(scaler):
    scaler.commit({"tierbot.yaml": SAGEMAKER_SPEC}, "deploy to sagemaker")
    return scaler


@pytest.fixture
def sagemaker(aws):
    return aws.client("sagemaker")


@pytest.fixture(autouse=True)
def nothing_left(aws, scaler, sagemaker):
    """Every endpoint of the test's repository deleted, and with them every container of its endpoints (by
    label: other test sessions on the machine may be serving theirs)."""
    yield
    import docker

    for endpoint in endpoints(sagemaker):
        sagemaker.delete_endpoint(EndpointName=endpoint)
    unnamed = SageMakerDeploy.model_construct(endpoint_name=None)
    ours = release_name(endpoint_name(unnamed, str(scaler.path), "production"), 0).removesuffix("-d0")
    engine = docker.from_env()
    try:
        left = engine.containers.list(all=True, filters={"label": LABEL})
        assert [c.name for c in left if c.labels[LABEL].startswith(ours)] == []
    finally:
        engine.close()


def endpoints(sagemaker) -> list[str]:
    """The scaler repositories' endpoints (each test's has a name of its own), by name."""
    return sorted(
        e["EndpointName"] for e in sagemaker.list_endpoints(NameContains="tierbot-scaler")["Endpoints"]
    )


def invoke(aws, url: str, body: dict) -> dict:
    """The stable endpoint's answer through InvokeEndpoint, as a client of the API calls it."""
    name = url.split("/endpoints/")[1].split("/")[0]
    answer = aws.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, Body=json.dumps(body), ContentType="application/json"
    )
    return json.loads(answer["Body"].read())


def serving_config(sagemaker, url: str) -> str:
    name = url.split("/endpoints/")[1].split("/")[0]
    return sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"]


def capture_folder(pipeline: Pipeline) -> tuple[str, str]:
    """The bucket, and the folder Data Capture writes to (`<prefix>/capture/`)."""
    bucket, prefix = pipeline.settings.artifact_store.removeprefix("s3://").split("/", 1)
    return bucket, f"{prefix}/capture/"


def captured_records(aws, pipeline: Pipeline) -> dict[str, list[dict]]:
    """Each capture file's records, by key."""
    bucket, folder = capture_folder(pipeline)
    s3 = aws.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    lines = {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines() for key in keys}
    return {
        key: [json.loads(line) for line in found if line.startswith(b"{")] for key, found in lines.items()
    }


def test_a_merge_is_served_by_a_sagemaker_endpoint(aws, pipeline, scaler, sagemaker):
    mark = aws.wire.mark()
    deployment = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))

    assert deployment.state == "live", deployment.reason
    stable = deployment.url.split("/endpoints/")[1].split("/")[0]
    assert deployment.url == f"{aws.endpoint}/endpoints/{stable}/invocations"
    assert invoke(aws, deployment.url, {"x": [3, 4]}) == {"y": [6.0, 8.0]}
    assert endpoints(sagemaker) == [stable]  # the candidate is gone: no instances twice
    release = deployment.instance["release"]
    assert serving_config(sagemaker, deployment.url) == release == f"{stable}-d{deployment.id}"
    model = sagemaker.describe_model(ModelName=release)
    container = model["PrimaryContainer"]
    assert container["Environment"] == {"TIERBOT_PREDICT": "serve.py:predict"}
    bucket, prefix = pipeline.settings.artifact_store.removeprefix("s3://").split("/", 1)
    assert container["ModelDataUrl"] == f"s3://{bucket}/{prefix}/releases/sagemaker/{release}/model.tar.gz"
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=model["ModelArn"])["Tags"]}
    assert tags["tierbot:deployment"] == str(deployment.id)
    assert tags["tierbot:run"] == str(deployment.run_id)
    calls = [c.operation for c in aws.wire.since(mark) if c.service == "sagemaker"]
    for operation in (
        "createmodel",
        "createendpointconfig",
        "createendpoint",
        "invocations",
        "deleteendpoint",
    ):
        assert operation in calls
    assert "smoke request answered: {&#34;y&#34;: [2.0, 4.0]}" in report_of(pipeline, deployment)


def test_a_broken_predict_fails_and_the_old_release_keeps_serving(aws, pipeline, scaler, sagemaker):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    broken = scaler.commit({"serve.py": BROKEN_SERVE, "scale.txt": "5"}, "break predict")

    second = deploy(pipeline, str(scaler.path), broken)

    assert second.state == "failed"
    assert f"the endpoint {first.instance['release'][:-1]}{second.id} is Failed: " in second.reason
    assert "did not pass the ping health check" in second.reason
    assert second.reason.endswith("The version that was live keeps serving.")
    assert invoke(aws, first.url, {"x": [1]}) == {"y": [2.0]}
    assert serving_config(sagemaker, first.url) == first.instance["release"]
    assert len(endpoints(sagemaker)) == 1  # the failed candidate is deleted


def test_a_prediction_diff_beyond_max_changed_is_refused(aws, pipeline, scaler, sagemaker):
    strict = SAGEMAKER_SPEC + "  max_changed: 0\n"
    first = deploy(pipeline, str(scaler.path), scaler.commit({"tierbot.yaml": strict}, "strict"))
    second = deploy(pipeline, str(scaler.path), scaler.commit({"scale.txt": "3"}, "scale 3"))

    assert second.state == "refused", second.reason
    assert "1 of 1 replayed requests were answered differently" in second.reason
    assert invoke(aws, first.url, {"x": [1]}) == {"y": [2.0]}
    assert len(endpoints(sagemaker)) == 1


def test_blue_green_by_update_endpoint_then_rollback(aws, pipeline, scaler, sagemaker):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    mark = aws.wire.mark()

    second = deploy(pipeline, str(scaler.path), scaler.commit({"scale.txt": "3"}, "scale 3"))

    assert (second.state, second.url) == ("live", first.url), second.reason
    assert "updateendpoint" in [c.operation for c in aws.wire.since(mark)]
    assert invoke(aws, first.url, {"x": [1]}) == {"y": [3.0]}
    assert "1 of 1 replayed request answered differently" in report_of(pipeline, second)  # old vs new
    assert endpoints(sagemaker) == [first.url.split("/endpoints/")[1].split("/")[0]]

    rollback = request_rollback(pipeline, str(scaler.path), "production", None, Requester(name="ops"))
    done = work_until_done(pipeline, rollback.id)

    assert (done.state, done.sha) == ("live", first.sha), done.reason
    assert invoke(aws, first.url, {"x": [1]}) == {"y": [2.0]}
    assert serving_config(sagemaker, first.url) == first.instance["release"]  # the kept release again
    assert len(endpoints(sagemaker)) == 1


def test_a_worker_killed_mid_deploy_is_resumed(aws, pipeline, scaler, sagemaker):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    slow = SAGEMAKER_SPEC.replace("smoke: {x: [1, 2]}", "smoke: {x: [1, 2], sleep: 2}")
    sha = scaler.commit({"tierbot.yaml": slow, "scale.txt": "3"}, "slow smoke")
    second, _ = request_deploy(pipeline, str(scaler.path), sha, Requester(name="test"), [])
    settings = pipeline.settings
    env = worker_settings(settings) | {
        "TIERBOT_ARTIFACT_STORE": settings.artifact_store,
        "TIERBOT_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "TIERBOT_AWS_ACCESS_KEY_ID": settings.aws_access_key_id.get_secret_value(),
        "TIERBOT_AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key.get_secret_value(),
    }
    checking = kill_worker_mid_check(pipeline, second.id, env, drop=("TIERBOT_", "AWS_"))
    candidate = checking.instance["release"]
    assert sagemaker.describe_endpoint(EndpointName=candidate)["EndpointStatus"] == "InService"  # orphaned

    done = work_until_done(pipeline, checking.id)

    assert done.state == "live", done.reason
    assert "resumed at step checking (attempt 2)" in report_of(pipeline, done)
    assert invoke(aws, first.url, {"x": [1]}) == {"y": [3.0]}
    assert serving_config(sagemaker, first.url) == candidate
    assert len(endpoints(sagemaker)) == 1  # the orphan was deleted, its successor too after the switch


def test_bad_deploy_options_fail_the_deployment_with_each_named(
    aws, batch_settings, tmp_path, scaler, serving_image
):
    bad = options(aws, serving_image, region="nowhere", instance_type="ml.m5.lage", instance_count=0)
    del bad["role_arn"]
    pipeline = pipeline_with(batch_settings, tmp_path, bad)
    try:
        done = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    finally:
        pipeline.db.dispose()

    assert done.state == "failed"
    assert done.reason.startswith("deploy_targets.production.sagemaker in the tiers file is invalid: ")
    for said in (
        "region: 'nowhere' is not an AWS region",
        "did you mean ml.m5.large",
        "instance_count",
        "role_arn",
    ):
        assert said in done.reason


def test_requests_the_live_endpoint_served_are_replayed_in_the_next_prediction_diff(
    aws, pipeline, scaler, sagemaker
):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    for body in ({"x": [3, 4]}, {"x": [5]}, {"x": [3, 4]}):  # one twice: replayed once
        invoke(aws, first.url, body)
    stable = first.url.split("/endpoints/")[1].split("/")[0]
    bucket, folder = capture_folder(pipeline)
    capture = sagemaker.describe_endpoint_config(EndpointConfigName=first.instance["release"])
    assert capture["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{bucket}/{folder.rstrip('/')}"
    assert capture["DataCaptureConfig"]["CaptureOptions"] == [{"CaptureMode": "Input"}]
    expired = f"{folder}{stable}/AllTraffic/2020/01/01/00/00-00-000-expired.jsonl"  # past the 7 days kept
    aws.client("s3").put_object(Bucket=bucket, Key=expired, Body=b"")

    second = deploy(pipeline, str(scaler.path), scaler.commit({"scale.txt": "3"}, "scale 3"))

    assert second.state == "live", second.reason
    assert "3 of 3 replayed requests answered differently" in report_of(pipeline, second)
    records = captured_records(aws, pipeline)
    assert expired not in records
    assert all(key.startswith(f"{folder}{stable}/AllTraffic/20") for key in records)  # candidates' deleted
    inputs = [record["captureData"]["endpointInput"] for found in records.values() for record in found]
    sent = [i["data"] for i in inputs if i["encoding"] == "JSON"]
    assert sorted(set(sent)) == ['{"x": [1, 2]}', '{"x": [3, 4]}', '{"x": [5]}']  # the checks' too:
    checks = [r for found in records.values() for r in found if r["eventMetadata"].get("inferenceId")]
    assert checks and all(r["eventMetadata"]["inferenceId"] == "tierbot-check" for r in checks)


def test_capture_off_replays_the_smoke_request_only(aws, batch_settings, tmp_path, scaler, serving_image):
    pipeline = pipeline_with(batch_settings, tmp_path, options(aws, serving_image, capture_percentage=0))
    try:
        first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
        invoke(aws, first.url, {"x": [3, 4]})
        second = deploy(pipeline, str(scaler.path), scaler.commit({"scale.txt": "3"}, "scale 3"))

        assert second.state == "live", second.reason
        assert "1 of 1 replayed request answered differently" in report_of(pipeline, second)
        config = aws.client("sagemaker").describe_endpoint_config(
            EndpointConfigName=second.instance["release"]
        )
        assert not config.get("DataCaptureConfig")
        assert captured_records(aws, pipeline) == {}
    finally:
        pipeline.db.dispose()


def test_a_captured_request_that_is_not_json_is_skipped(aws, pipeline, scaler):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    stable = first.url.split("/endpoints/")[1].split("/")[0]
    runtime = aws.client("sagemaker-runtime")
    runtime.invoke_endpoint(EndpointName=stable, Body=b'{"x": [7]}', ContentType="text/plain")
    bucket, folder = capture_folder(pipeline)
    records = captured_records(aws, pipeline).items()
    (captured,) = [r for key, found in records if key.startswith(f"{folder}{stable}/") for r in found]
    sent = captured["captureData"]["endpointInput"]  # a type not declared JSON: base64, as SageMaker does
    assert (sent["encoding"], sent["data"]) == ("BASE64", base64.b64encode(b'{"x": [7]}').decode())
    not_json = [
        capture_record("x=7", "BASE64", "text/plain"),
        capture_record("1.5,2.5", "CSV", "text/csv"),
        b"not a record",
        b'{"captureData": 1}',
    ]
    newest = f"{folder}{stable}/AllTraffic/9999/12/31/23/59-59-999-not-json.jsonl"
    aws.client("s3").put_object(Bucket=bucket, Key=newest, Body=b"\n".join(not_json) + b"\n")

    second = deploy(pipeline, str(scaler.path), scaler.commit({"scale.txt": "3"}, "scale 3"))

    assert second.state == "live", second.reason
    assert "2 of 2 replayed requests answered differently" in report_of(pipeline, second)  # smoke, x: 7


def capture_record(body: str, encoding: str, content_type: str) -> bytes:
    """A line of a capture file, as SageMaker writes it."""
    data = base64.b64encode(body.encode()).decode() if encoding == "BASE64" else body
    sent = {"observedContentType": content_type, "mode": "INPUT", "data": data, "encoding": encoding}
    metadata = {"eventId": str(uuid.uuid4()), "inferenceTime": "9999-12-31T23:59:59.999Z"}
    record = {"captureData": {"endpointInput": sent}, "eventMetadata": metadata, "eventVersion": "0"}
    return json.dumps(record).encode()
