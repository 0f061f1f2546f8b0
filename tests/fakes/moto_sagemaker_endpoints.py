"""SageMaker endpoints that really serve, in moto's server (loaded by tests/fakes/moto_aws.py's `aws`).

moto 5.2.6 records CreateEndpoint as InService at once and runs nothing, has no UpdateEndpoint, and its
runtime's InvokeEndpoint answers canned results. `install` extends moto in the server's process (boto3
is never stubbed), as SageMaker hosts a model:
- CreateEndpoint: Creating; the variant's model's image runs on the machine's Docker Engine as
  SageMaker runs an inference image (`serve`), the model data (its ModelDataUrl, from moto's S3)
  unpacked in /opt/ml/model, the model's Environment set; InService once `GET /ping` answers 200, else
  Failed with SageMaker's FailureReason (the container exited, or never answered within PING_SECONDS).
- UpdateEndpoint: Updating; the new config's container starts beside the old one, which serves until
  the new one answers /ping: then InService on the new config and the old container stopped. A new one
  that never answers is removed and the endpoint stays InService on the old config, FailureReason set.
- InvokeEndpoint: forwarded to the endpoint's container's `POST /invocations`; an answer that is not
  2xx comes back as SageMaker's ModelError (424, OriginalStatusCode, OriginalMessage). When the serving
  config's DataCaptureConfig captures input, the request is sampled at its InitialSamplingPercentage and
  written to its DestinationS3Uri as SageMaker's Data Capture writes it (`<endpoint>/<variant>/yyyy/mm/dd/
  hh/<mm-ss-ms-id>.jsonl`, a JSON Lines record with `captureData.endpointInput` and `eventMetadata`, the
  InferenceId as `inferenceId`), through moto's own S3 backend. SageMaker buffers records and writes a
  file every few minutes; here each captured request is a file of its own at once, so tests need not wait.
- DeleteEndpoint: its containers removed.
Containers share the host's network (127.0.0.1 is this server): each listens on a loopback port of its
own (`SAGEMAKER_BIND_TO_PORT`, `TIERBOT_SERVE_HOST`), labelled with its endpoint's name (`LABEL`).
"""

import base64
import contextlib
import io
import json
import random
import socket
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

LABEL = "tierbot-test-sagemaker-endpoint"  # on each endpoint's container: the endpoint's name
PING_SECONDS = 60.0
NOT_HEALTHY = (
    "The primary container for production variant {variant} did not pass the ping health check. Please "
    "check CloudWatch logs for this endpoint."
)
_served: dict[tuple[str, str, str], "_Serving"] = {}  # (account, region, endpoint) → its containers
_lock = threading.Lock()


def install() -> Callable[[], None]:
    """moto's SageMaker endpoints made to serve; returns what undoes it."""
    from moto.core.responses import ActionResult
    from moto.sagemaker import models, responses
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    backend, response = models.SageMakerModelBackend, responses.SageMakerResponse
    create, delete = backend.create_endpoint, backend.delete_endpoint
    invoke = SageMakerRuntimeResponse.invoke_endpoint

    def create_and_serve(self, endpoint_name, endpoint_config_name, tags):
        endpoint = create(self, endpoint_name, endpoint_config_name, tags)
        endpoint.endpoint_status = "Creating"
        serving = _Serving(self, endpoint)
        with _lock:
            _served[(self.account_id, self.region_name, endpoint_name)] = serving
        serving.begin(endpoint_config_name)
        return endpoint

    def update_endpoint(self) -> ActionResult:
        name, config = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
        backend_ = self.sagemaker_backend
        backend_.describe_endpoint(name)  # moto's ValidationError for an unknown endpoint
        backend_.describe_endpoint_config(config)
        endpoint = backend_.endpoints[name]
        if endpoint.endpoint_status != "InService":
            raise models.ValidationError(message=f'Cannot update in-progress endpoint "{endpoint.arn}".')
        endpoint.endpoint_status, endpoint.failure_reason = "Updating", None
        _serving(backend_.account_id, backend_.region_name, name).begin(config)
        return ActionResult({"EndpointArn": endpoint.arn})

    def delete_and_stop(self, endpoint_name):
        delete(self, endpoint_name)
        with _lock:
            serving = _served.pop((self.account_id, self.region_name, endpoint_name), None)
        if serving is not None:
            serving.end()

    def invoke_forwarded(self):
        name = self._get_param("EndpointName")
        with _lock:
            serving = _served.get((self.current_account, self.region, name))
        port = serving.port if serving is not None else None
        if port is None:
            return _error(
                400, "ValidationError", f"Endpoint {name} of account {self.current_account} not found."
            )
        body = self.body.encode() if isinstance(self.body, str) else self.body
        content_type = self.headers.get("Content-Type", "application/json")
        answer = _forward(port, body, content_type, name)
        serving.capture(body, content_type, self.headers.get("X-Amzn-SageMaker-Inference-Id"))
        return answer

    backend.create_endpoint = create_and_serve
    backend.delete_endpoint = delete_and_stop
    response.update_endpoint = update_endpoint
    SageMakerRuntimeResponse.invoke_endpoint = invoke_forwarded

    def undo() -> None:
        end_all()
        backend.create_endpoint, backend.delete_endpoint = create, delete
        SageMakerRuntimeResponse.invoke_endpoint = invoke
        del response.update_endpoint

    return undo


def end_all() -> None:
    """Every endpoint's containers removed (the endpoints stay in moto, as a test left them)."""
    with _lock:
        servings = list(_served.values())
        _served.clear()
    for serving in servings:
        serving.end()


def _serving(account: str, region: str, name: str) -> "_Serving":
    with _lock:
        return _served[(account, region, name)]


class _Serving:
    """One endpoint's containers: the one that serves (`port`), and one starting beside it."""

    def __init__(self, backend, endpoint):
        self.backend, self.endpoint = backend, endpoint
        self.port: int | None = None
        self.container = None
        self.ended = False
        self.lock = threading.Lock()

    def begin(self, config_name: str) -> None:
        threading.Thread(
            target=self._deploy,
            args=(config_name,),
            daemon=True,
            name=f"endpoint-{self.endpoint.endpoint_name}",
        ).start()

    def _deploy(self, config_name: str) -> None:
        """The config's container started; the endpoint switched to it once it answers /ping."""
        import docker

        engine = docker.from_env()
        try:
            config = self.backend.endpoint_configs[config_name]
            variant = config.production_variants[0]
            container, port, failure = self._start(engine, variant)
        except Exception as exc:  # the image is missing, the engine failed: SageMaker's own failure
            container, port, failure = None, None, f"ClientError: the container could not start: {exc}"
        finally:
            engine.close()
        endpoint = self.endpoint
        with self.lock:
            if self.ended or failure is not None:
                _remove(container)
                if failure is not None:
                    endpoint.failure_reason = failure
                    endpoint.endpoint_status = "InService" if self.port is not None else "Failed"
                return
            old, self.container, self.port = self.container, container, port
            endpoint.endpoint_config_name = config_name
            endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
            endpoint.endpoint_status = "InService"
        _remove(old)

    def _start(self, engine, variant: dict):
        """(container, port, None) once it answers /ping; (None, None, why) when it never does."""
        model = self.backend.describe_model(variant["ModelName"]).primary_container
        port = _free_port()
        environment = dict(model.get("Environment") or {})
        environment |= {"SAGEMAKER_BIND_TO_PORT": str(port), "TIERBOT_SERVE_HOST": "127.0.0.1"}
        name = self.endpoint.endpoint_name
        container = engine.containers.create(
            model["Image"],
            command=["serve"],
            environment=environment,
            network_mode="host",
            labels={LABEL: name},
            name=f"sagemaker-endpoint-{name}-{uuid.uuid4().hex[:6]}",
        )
        with self.lock:
            if self.ended:  # deleted while it was being made
                _remove(container)
                return None, None, "deleted"
        try:
            container.put_archive("/opt", _directories("ml", "ml/model"))
            container.put_archive("/opt/ml/model", self._model_data(model["ModelDataUrl"]))
            container.start()
            if _answers_ping(container, port):
                return container, port, None
        except Exception:
            _remove(container)
            raise
        _remove(container)
        return None, None, NOT_HEALTHY.format(variant=variant["VariantName"])

    def _model_data(self, url: str) -> bytes:
        from moto.s3.models import s3_backends

        bucket, _, key = url.removeprefix("s3://").partition("/")
        return s3_backends[self.backend.account_id]["aws"].get_object(bucket, key).value

    def capture(self, body: bytes, content_type: str, inference_id: str | None) -> None:
        """The request in Data Capture's destination, when the serving config captures input."""
        from moto.s3.models import s3_backends

        config = self.backend.endpoint_configs[self.endpoint.endpoint_config_name]
        wanted = config.data_capture_config or {}
        modes = {option["CaptureMode"] for option in wanted.get("CaptureOptions", [])}
        if not (wanted.get("EnableCapture", True) and modes & {"Input", "InputAndOutput"}):
            return
        if random.uniform(0, 100) >= wanted["InitialSamplingPercentage"]:
            return
        now = datetime.now(UTC)
        record = _record(body, content_type, wanted.get("CaptureContentTypeHeader", {}), inference_id, now)
        bucket, _, root = wanted["DestinationS3Uri"].removeprefix("s3://").partition("/")
        variant = config.production_variants[0]["VariantName"]
        folder = "/".join(p for p in (root.strip("/"), self.endpoint.endpoint_name, variant) if p)
        key = f"{folder}/{now:%Y/%m/%d/%H}/{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        s3_backends[self.backend.account_id]["aws"].put_object(bucket, key, record)

    def end(self) -> None:
        with self.lock:
            self.ended, container, self.port = True, self.container, None
        _remove(container)


def _answers_ping(container, port: int) -> bool:
    deadline = time.monotonic() + PING_SECONDS
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "exited":
            return False
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer,
        ):
            if answer.status == 200:
                return True
        time.sleep(0.05)
    return False


def _forward(port: int, body: bytes, content_type: str, name: str):
    """The container's answer to /invocations, as SageMaker's runtime gives it back."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return (
                200,
                {"Content-Type": answer.headers.get("Content-Type", "application/json")},
                answer.read(),
            )
    except urllib.error.HTTPError as failed:
        status, text = failed.code, failed.read().decode(errors="replace")
    except OSError as exc:
        return _error(424, "ModelError", f"Received no answer from primary: {exc}")
    kind = "client" if status < 500 else "server"
    message = f'Received {kind} error ({status}) from primary with message "{text}".'
    stream = f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/{name}"
    extra = {"OriginalStatusCode": status, "OriginalMessage": text, "LogStreamArn": stream}
    return _error(424, "ModelError", message, extra)


def _record(body: bytes, content_type: str, types: dict, inference_id: str | None, now: datetime) -> bytes:
    """One request as a line of SageMaker's capture files: text for the declared JSON and CSV types."""
    declared = {"JSON": types.get("JsonContentTypes", []), "CSV": types.get("CsvContentTypes", [])}
    encoding = next((kind for kind, listed in declared.items() if content_type in listed), "BASE64")
    metadata = {"eventId": str(uuid.uuid4()), "inferenceTime": now.isoformat(timespec="milliseconds")}
    record = {
        "captureData": {
            "endpointInput": {
                "observedContentType": content_type,
                "mode": "INPUT",
                "data": base64.b64encode(body).decode() if encoding == "BASE64" else body.decode(),
                "encoding": encoding,
            }
        },
        "eventMetadata": metadata | ({"inferenceId": inference_id} if inference_id else {}),
        "eventVersion": "0",
    }
    return json.dumps(record).encode() + b"\n"


def _error(status: int, code: str, message: str, extra: dict | None = None):
    body = json.dumps({"message": message} | (extra or {}))
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": code}, body


def _directories(*names: str) -> bytes:
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
    return packed.getvalue()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _remove(container) -> None:
    if container is None:
        return
    import docker

    with contextlib.suppress(docker.errors.APIError):
        container.remove(force=True)
