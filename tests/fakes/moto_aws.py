"""AWS on loopback for the AWS Batch backend (a pytest plugin, see tests/conftest.py): moto's server in a
thread on 127.0.0.1 serving S3, AWS Batch, CloudWatch Logs and IAM, with a recording of every request
that crossed the wire (and throttling on demand), and a job queue whose jobs moto runs as containers on
the machine's Docker Engine.

What moto lacks is added here, in the server's process, and nowhere else:
- moto puts a Batch job's whole log in CloudWatch Logs when its container has exited; AWS streams it as
  the job prints (the awslogs driver). `_LiveLogs` streams it: a thread follows the container's output
  into the job's log stream from its start, and moto's own put at the end waits for it instead.
- moto's DescribeJobs leaves out the exit code of a job's container (`container.exitCode`), which AWS
  gives: `_with_exit_code` puts it back.
- moto stops a job past its timeout (attemptDurationSeconds) without saying why; AWS says "Job attempt
  duration exceeded timeout": `_timed_out_as_aws_says` does.
- moto's ECR hands out a token for a registry at AWS's address: `_token_for` makes its proxyEndpoint the
  local registry of tests/fakes/registry.py, whose password is that token's.
- moto's SageMaker endpoints serve nothing: tests/fakes/moto_sagemaker_endpoints.py runs their models'
  containers, with UpdateEndpoint and an InvokeEndpoint forwarded to them.
- moto starts a job's container on Docker's default bridge, from which 127.0.0.1 (this server, and the
  presigned URLs of its S3) is not reachable: the containers run on the host's network
  (MOTO_DOCKER_NETWORK_MODE=host, moto's own setting), as an AWS job reaches S3 over its VPC.

Fixtures: `aws` (the server, its queue, job image and roles; one per session), `batch_settings` (settings
with the artifact store in a fresh bucket on that server, polling fast, an instance of the test's own),
`ecr` (an ECR repository on the server whose images go to the local registry; one per session).
"""

import io
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qs

import pytest

from bot.settings import Settings
from bot.tiers import Tier
from tests.fakes import moto_sagemaker, moto_sagemaker_endpoints
from tests.fakes.moto_s3 import DUMMY, S3Bucket
from tests.fakes.registry import Registry
from tests.fakes.registry import registry as registry  # the `ecr` fixture's registry, with this plugin

REGION = "us-east-1"
BASE_IMAGE = os.environ.get("TIERBOT_TEST_DOCKER_IMAGE", "tierbot-base:bookworm")
_JSON_SERVICES = ("batch", "logs", "iam", "ecr", "sagemaker")


@dataclass(frozen=True)
class Call:
    """One request that reached the server: `batch describejobs`, `logs getlogevents`, `s3 PUT`..."""

    service: str
    operation: str
    params: dict  # the JSON (or form) body of Batch, Logs and IAM calls; S3's path


@dataclass
class Wire:
    """WSGI middleware in front of moto: records each call, and answers some with throttling."""

    app: object
    calls: list[Call] = field(default_factory=list)
    throttled: dict[str, int] = field(default_factory=dict)  # operation → how many more to refuse
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ, start_response):
        call = _call_of(environ)
        with self.lock:
            self.calls.append(call)
            refuse = self.throttled.get(call.operation, 0) > 0
            if refuse:
                self.throttled[call.operation] -= 1
        if refuse:  # AWS Batch's own answer when an account asks too fast
            body = json.dumps(
                {"__type": "TooManyRequestsException", "message": "Too Many Requests."}
            ).encode()
            headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "TooManyRequestsException")]
            start_response("429 Too Many Requests", headers + [("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)

    def since(self, mark: int) -> list[Call]:
        with self.lock:
            return list(self.calls[mark:])

    def mark(self) -> int:
        with self.lock:
            return len(self.calls)


def _call_of(environ) -> Call:
    """Which service and operation a request is, from its signature and its path, target or body."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    service = auth.split("Credential=", 1)[1].split("/")[3] if "Credential=" in auth else "s3"  # presigned
    if service not in _JSON_SERVICES:
        query = "?tagging" if "tagging" in environ.get("QUERY_STRING", "") else ""
        return Call("s3", environ["REQUEST_METHOD"] + query, {"path": environ["PATH_INFO"]})
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
    if service == "iam":
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        return Call(service, form.get("Action", "").lower(), form)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    operation = target.rsplit(".", 1)[-1] if target else environ["PATH_INFO"].rstrip("/").rsplit("/", 1)[-1]
    try:
        parameters = json.loads(body) if body else {}
    except ValueError:  # InvokeEndpoint's body is the model's payload, not an API document
        parameters = {}
    return Call(service, operation.lower(), parameters)


class _LiveLogs:
    """Streams a moto Batch job's output into its CloudWatch log stream as the container prints it (see
    the module docstring). It stands in for the job's logs backend: moto's put of the whole log at the
    end waits for the stream to have ended instead."""

    def __init__(self, job):
        self.job, self.backend = job, job._log_backend
        self.done = threading.Event()
        threading.Thread(target=self._follow, daemon=True, name=f"live-logs-{job.job_id}").start()

    def _follow(self) -> None:
        import docker

        client = docker.from_env()
        try:
            container = self._container(client)
            if container is None:
                return
            job = self.job
            job.log_stream_name = job._stream_name  # DescribeJobs shows it while the job runs, as AWS does
            self.backend.ensure_log_group(job._log_group)
            self.backend.ensure_log_stream(job._log_group, job.log_stream_name)
            pending = b""
            for chunk in container.logs(stream=True, follow=True):
                *lines, pending = (pending + chunk).split(b"\n")
                self._put(lines)
            self._put([pending])
        finally:
            client.close()
            self.done.set()

    def _container(self, client):
        """The job's container once it has started (following one only created ends at once), or None
        when the job ended without one."""
        import docker

        name = f"{self.job.job_name}-{self.job.job_id.replace(':', '-')}"
        while not self.job.job_stopped:
            try:
                container = client.containers.get(name)
            except docker.errors.NotFound:
                container = None
            if container is not None and container.status != "created":
                return container
            time.sleep(0.05)
        return None

    def _put(self, lines: list[bytes]) -> None:
        now = int(time.time() * 1000)
        texts = [line.decode("utf-8", "replace").rstrip("\r") for line in lines]
        events = [{"timestamp": now, "message": text} for text in texts if text]
        if events:
            self.backend.put_log_events(self.job._log_group, self.job.log_stream_name, events)

    def ensure_log_group(self, name: str) -> None:
        self.backend.ensure_log_group(name)

    def ensure_log_stream(self, group: str, stream: str) -> None:
        self.backend.ensure_log_stream(group, stream)

    def put_log_events(self, *_whole_log) -> None:
        self.done.wait(60)  # streamed already


def _with_exit_code(details):
    def described(job) -> dict:
        container = details(job)
        if job.job_stopped and job.exit_code is not None:
            container["exitCode"] = job.exit_code
        return container

    return described


def _timed_out_as_aws_says(mark_stopped):
    def stopped(job, success: bool = True) -> None:
        duration = job._get_attempt_duration()
        past = (
            duration
            and job.job_started_at
            and datetime.now() >= job.job_started_at + timedelta(seconds=duration)
        )
        if not success and not job.job_stopped and not job.stop and past:
            job.job_stopped_reason = "Job attempt duration exceeded timeout"
        mark_stopped(job, success)

    return stopped


def _token_for(token, endpoint: str):
    def answer(response):
        result = token(response)
        for data in result.result["authorizationData"]:
            data["proxyEndpoint"] = endpoint
        return result

    return answer


def _run_with_live_logs(run):
    def live(job) -> None:
        job._log_backend = _LiveLogs(job)
        run(job)

    return live


class _Server:
    """moto's server in a thread on loopback (never 0.0.0.0), behind the recording `Wire`."""

    def __init__(self):
        # What ThreadedMotoServer serves (its app, its request handler), with the wire in between.
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        self.wire = Wire(DomainDispatcherApplication(create_backend_app))
        self.server = make_server(
            "127.0.0.1", 0, self.wire, threaded=True, request_handler=MotoRequestHandler
        )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="moto-aws")
        self.thread.start()
        host, port = self.server.server_address[:2]
        self.endpoint = f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()


@dataclass
class Aws:
    """The server, a client per service on it, and what the session made there."""

    endpoint: str
    wire: Wire
    queue: str = ""
    image: str = ""  # the jobs' image, built FROM the base image for this session
    job_role: str = ""  # an IAM role's ARN that exists

    def client(self, service: str):
        import boto3

        secret = DUMMY.get_secret_value()
        return boto3.session.Session().client(
            service, region_name=REGION, endpoint_url=self.endpoint,
            aws_access_key_id=secret, aws_secret_access_key=secret,
        )  # fmt: skip

    def bucket(self) -> S3Bucket:
        s3 = self.client("s3")
        name = f"tierbot-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=name)
        return S3Bucket(endpoint=self.endpoint, name=name, client=s3)

    def tier(self, name: str = "aws", memory: str | None = "512MiB", runtime: str = "2m", **options) -> Tier:
        """A batch tier on the session's queue, with the session's job image unless `options` say not."""
        base = {"region": REGION, "job_queue": self.queue, "image": self.image, "endpoint_url": self.endpoint}
        return Tier(
            name=name, backend="batch", memory=memory, max_runtime=runtime,
            backend_options={k: v for k, v in (base | options).items() if v is not None},
        )  # fmt: skip

    def job(self, job_id: str) -> dict:
        return self.client("batch").describe_jobs(jobs=[job_id])["jobs"][0]


def _role(iam, name: str, service: str) -> str:
    trust = {
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    }
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def _engine():
    """The machine's Docker Engine with the base image, or the tests skip (fail where CI requires it)."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.api.inspect_image(BASE_IMAGE)
    except Exception as exc:  # no SDK, no engine, no image: each says why
        reason = f"AWS Batch on moto needs a Docker Engine with {BASE_IMAGE}: {exc}"
        if os.environ.get("TIERBOT_REQUIRE_DOCKER"):
            pytest.fail(reason)
        pytest.skip(reason)
    return client


@pytest.fixture(scope="session")
def aws() -> Iterator[Aws]:
    import moto.batch.models as batch_models

    engine = _engine()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    saved_mode = os.environ.get("MOTO_DOCKER_NETWORK_MODE")
    os.environ["MOTO_DOCKER_NETWORK_MODE"] = "host"
    run, details = batch_models.Job.run, batch_models.Job._container_details
    mark_stopped = batch_models.Job._mark_stopped
    batch_models.Job.run = _run_with_live_logs(run)
    batch_models.Job._container_details = _with_exit_code(details)
    batch_models.Job._mark_stopped = _timed_out_as_aws_says(mark_stopped)
    undo_sagemaker = moto_sagemaker.install()  # training jobs that run (tests/fakes/moto_sagemaker.py)
    undo_endpoints = moto_sagemaker_endpoints.install()  # endpoints that serve (its module docstring)
    server = _Server()
    tag = f"tierbot-test-batch:{uuid.uuid4().hex[:10]}"
    # `python` as well as python3, as in most images experiments run in (the repositories say `python`).
    dockerfile = f"FROM {BASE_IMAGE}\nRUN ln -s /usr/bin/python3 /usr/local/bin/python\n".encode()
    engine.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, network_mode="host", rm=True)
    aws = Aws(endpoint=server.endpoint, wire=server.wire, image=tag)
    iam, batch = aws.client("iam"), aws.client("batch")
    suffix = uuid.uuid4().hex[:8]
    service_role = _role(iam, f"batch-service-{suffix}", "batch.amazonaws.com")
    aws.job_role = _role(iam, f"tierbot-job-{suffix}", "ecs-tasks.amazonaws.com")
    compute = batch.create_compute_environment(
        computeEnvironmentName=f"tierbot-{suffix}",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=service_role,
    )["computeEnvironmentArn"]
    aws.queue = f"tierbot-{suffix}"
    batch.create_job_queue(
        jobQueueName=aws.queue, state="ENABLED", priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": compute}],
    )  # fmt: skip
    try:
        yield aws
    finally:
        _end_jobs(batch_models)
        undo_sagemaker()
        undo_endpoints()
        server.stop()
        batch_models.Job.run, batch_models.Job._container_details = run, details
        batch_models.Job._mark_stopped = mark_stopped
        if saved_mode is None:
            os.environ.pop("MOTO_DOCKER_NETWORK_MODE", None)
        else:
            os.environ["MOTO_DOCKER_NETWORK_MODE"] = saved_mode
        engine.images.remove(tag, force=True)
        engine.close()


def _end_jobs(batch_models) -> None:
    """Every job moto still runs stopped, and its thread (which removes its container) ended."""
    for by_region in batch_models.batch_backends.values():
        for backend in by_region.values():
            for job in list(backend._jobs.values()):
                job.terminate("the test session is over")
                job.join(60)


@dataclass(frozen=True)
class Ecr:
    registry: Registry  # where the repository's images really go
    repository: str  # its name in moto's ECR


@pytest.fixture(scope="session")
def ecr(aws: Aws, registry: Registry) -> Iterator[Ecr]:
    from moto.ecr.responses import ECRResponse

    token = ECRResponse.get_authorization_token
    ECRResponse.get_authorization_token = _token_for(token, registry.endpoint)
    repository = f"tierbot-envs-{uuid.uuid4().hex[:8]}"
    aws.client("ecr").create_repository(repositoryName=repository)
    try:
        yield Ecr(registry=registry, repository=repository)
    finally:
        ECRResponse.get_authorization_token = token


@pytest.fixture
def batch_settings(settings: Settings, aws: Aws) -> Settings:
    """The artifact store in a fresh bucket on the server, fast polling, and this test's own instance."""
    stored = aws.bucket().store(settings)
    return stored.model_copy(
        update={"remote_poll_seconds": 0.2, "docker_instance": f"test-{uuid.uuid4().hex[:10]}"}
    )
