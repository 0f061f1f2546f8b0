"""The sagemaker target on the wire: moto's server with endpoints that really serve
(tests/fakes/moto_sagemaker_endpoints.py: each endpoint's model runs on the real Docker Engine, from an
image of the base image whose entrypoint is tierbot's model server from the model data), the artifact
store in a bucket on that server, and the deploy tests' `scaler` experiment run locally. A merge is
served through InvokeEndpoint; a broken predict, a refused prediction diff and a failed switch leave the
old release serving; a rollback; a worker killed mid-deploy; bad deploy options. No endpoint and no
container is left after a test."""

import io
import json
import uuid

import pytest
import yaml

from bot.deploy.plan import request_deploy, request_rollback
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
        "endpoint_url": aws.endpoint, "start_timeout": "90s",
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
    """Every endpoint of the test's repository deleted, and with them every container (by label)."""
    yield
    import docker

    for endpoint in endpoints(sagemaker):
        sagemaker.delete_endpoint(EndpointName=endpoint)
    engine = docker.from_env()
    try:
        assert engine.containers.list(all=True, filters={"label": LABEL}) == []
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
