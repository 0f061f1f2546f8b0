"""The sagemaker target: each release is a SageMaker model and endpoint config; the environment's stable
endpoint is switched between them by UpdateEndpoint, SageMaker's own blue/green (the old config serves
until the new one is InService, and a failed update leaves it serving).

A release, named `<endpoint>-d<deployment>` (`sagemaker_options.release_name`), is three things of that
name: the model (the operator's serving image, the model data, `TIERBOT_PREDICT` naming
`deploy.predict`), the endpoint config (the environment's instance type and count), and, while it is
checked, a candidate endpoint beside the live one. The model data is `model.tar.gz` in the artifact
store's bucket, `<prefix>/releases/sagemaker/<release>/`: the commit's checkout (`code/`), the run's very
artifact (`artifact/<file>`), `version.json` and tierbot's model server, which the image runs as
SageMaker runs every inference image (`serve`, see `bot.deploy.model_server`). Everything is tagged with
the deployment, its run, the repository and the environment.

How the checks reach a version (the simplest honest design): a version's URL is its candidate
endpoint's invocation URL, and this target's `caller()` answers for it through DescribeEndpoint (health:
InService) and InvokeEndpoint (predict: the container's status and body, which SageMaker hands back as a
ModelError when it is not 2xx). After the switch the candidate is deleted — an endpoint costs its
instances by the hour — and the release is served by the environment's endpoint: the caller finds it
there, so the live version is still reached by its URL in the next deployment's prediction diff. An HTTP
adapter on loopback would have given checks.py a URL it already speaks, but its port would not outlive
the worker that recorded it, and a restarted bot must find the live version from the handle it kept.

A handle is `{"release": name, "url": its candidate's invocation URL}`, a function of the name alone:
`routed` rebuilds it from the stable endpoint's config. `stop` deletes the version's candidate (and any
other candidate of the environment: one deployment at a time, so none is being checked then) and prunes
releases: the routed one and the newest `KEEP` others stay for rollback (models and configs cost
nothing; their model data little), older ones are deleted, and so are captured requests past their
retention. Each endpoint config captures a share of the requests it serves (SageMaker's Data Capture, into
the bucket: `bot.deploy.sagemaker_capture`): `captured` reads what the environment's endpoint served
recently, for the next deployment's prediction diff. The checks' own requests carry an InferenceId that
tells them apart there.
"""

import contextlib
import json
import re
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError

from bot.artifacts_s3 import S3Store
from bot.aws_options import client, short
from bot.checkout import CodeCache
from bot.deploy import DeployFailed, Log, Release, Version, model_server
from bot.deploy.sagemaker_capture import CHECKS, DataCapture
from bot.deploy.sagemaker_options import SageMakerDeploy, deploy_options, endpoint_name, release_name
from bot.pipeline import Pipeline
from bot.settings import Settings
from bot.store.models import Deployment

KEEP = 5  # releases kept for rollback beside the routed one
VARIANT = "AllTraffic"
CHANGING = ("Creating", "Updating", "SystemUpdating")
BROKEN = ("Failed", "OutOfService", "Deleting", "UpdateRollbackFailed", "RollingBack")
TAG_DEPLOYMENT, TAG_RUN = "tierbot:deployment", "tierbot:run"
TAG_REPOSITORY, TAG_ENVIRONMENT = "tierbot:repository", "tierbot:environment"
NOT_S3 = (
    "deploy.target: sagemaker sends the model data through the artifact store: set "
    "TIERBOT_ARTIFACT_STORE to s3://bucket/prefix"
)
FIRST_POLL, MAX_POLL = 0.25, 15.0  # seconds between DescribeEndpoint calls, growing by half each time


def sagemaker_target(pipeline: Pipeline, deployment: Deployment) -> "SageMakerTarget":
    """The target of the deployment's environment, with the operator's options for it."""
    options = deploy_options(pipeline.tiers, deployment.environment)
    return SageMakerTarget(
        pipeline.settings, pipeline.code, deployment.repository, deployment.environment, options
    )


class SageMakerTarget:
    def __init__(
        self, settings: Settings, code: CodeCache, repository: str, environment: str, options: SageMakerDeploy
    ):
        if not (settings.artifact_store or "").startswith("s3://"):
            raise DeployFailed(NOT_S3)
        self.code, self.repository, self.environment, self.options = code, repository, environment, options
        self.stable = endpoint_name(options, repository, environment)
        self._names = re.compile(rf"^{re.escape(release_name(self.stable, 0)[:-1])}(\d+)$")
        self.api = client(settings, options, "sagemaker")
        self.runtime = client(settings, options, "sagemaker-runtime")
        self.store = S3Store(settings, settings.artifact_store)
        self.capture = DataCapture(
            self.store.client,
            self.store.bucket,
            self.store.prefix,
            options.capture_percentage,
            options.capture_retention,
        )

    @contextlib.contextmanager
    def _aws(self, what: str) -> Iterator[None]:
        """SageMaker's refusals as the deployment's failure, with the reason."""
        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise DeployFailed(f"{self.options.where}: {what} failed: {short(exc)}") from None

    # -- names and URLs -------------------------------------------------------------------------------

    def url(self) -> str:
        return self._invocations(self.stable)

    def _invocations(self, endpoint: str) -> str:
        return f"{self.runtime.meta.endpoint_url}/endpoints/{endpoint}/invocations"

    def _handle(self, release: str) -> dict:
        return {"release": release, "url": self._invocations(release)}

    def _key(self, release: str) -> str:
        return "/".join(p for p in (self.store.prefix, "releases", "sagemaker", release, "model.tar.gz") if p)

    # -- versions -------------------------------------------------------------------------------------

    def start(self, release: Release, log: Log) -> Version:
        name = release_name(self.stable, release.deployment_id)
        tags = {
            TAG_DEPLOYMENT: str(release.deployment_id),
            TAG_RUN: str(release.run_id),
            TAG_REPOSITORY: self.repository[-256:],
            TAG_ENVIRONMENT: self.environment,
        }
        with self._aws(f"staging the release {name}"):
            self._remove_endpoint(name, wait=True)  # what an attempt that died left
            self._delete_release(name, keep_data=True)
            data = self._upload(release, name, tags, log)
            tagged = [{"Key": k, "Value": v} for k, v in tags.items()]
            self.api.create_model(
                ModelName=name,
                ExecutionRoleArn=self.options.role_arn,
                PrimaryContainer={
                    "Image": self.options.image,
                    "ModelDataUrl": data,
                    "Environment": {"TIERBOT_PREDICT": release.predict},
                },
                Tags=tagged,
            )
            variant = {
                "VariantName": VARIANT,
                "ModelName": name,
                "InstanceType": self.options.instance_type,
                "InitialInstanceCount": self.options.instance_count,
                "InitialVariantWeight": 1.0,
            }
            capture = self.capture.config()
            self.api.create_endpoint_config(
                EndpointConfigName=name,
                ProductionVariants=[variant],
                Tags=tagged,
                **({"DataCaptureConfig": capture} if capture else {}),
            )
        log(f"model and endpoint config {name} ({self.options.image})")
        return self.restart(self._handle(name), log)

    def _upload(self, release: Release, name: str, tags: dict[str, str], log: Log) -> str:
        """The release as SageMaker's model data, in the bucket; its S3 URI."""
        key = self._key(name)
        with tempfile.TemporaryDirectory() as scratch:
            checkout = self.code.checkout(release.repository, release.sha, Path(scratch) / "code")
            (Path(scratch) / "version.json").write_text(json.dumps(release.version()))
            packed = Path(scratch) / "model.tar.gz"
            with tarfile.open(packed, "w:gz") as tar:
                tar.add(checkout, arcname="code", filter=_without_git)
                tar.add(release.artifact, arcname=f"artifact/{Path(release.artifact_name).name}")
                tar.add(Path(scratch) / "version.json", arcname="version.json")
                tar.add(model_server.__file__, arcname="model_server.py")
            extra = {"Tagging": urlencode(tags)}
            self.store.client.upload_file(str(packed), self.store.bucket, key, ExtraArgs=extra)
            log(f"model data s3://{self.store.bucket}/{key} ({packed.stat().st_size} bytes)")
        return f"s3://{self.store.bucket}/{key}"

    def restart(self, handle: dict, log: Log) -> Version:
        name = handle["release"]
        with self._aws(f"starting the endpoint {name}"):
            config = self._config(name)
            if config is None:
                raise DeployFailed(f"the release {name} is no longer kept (its endpoint config is deleted)")
            self._remove_endpoint(name, wait=True)
            tags = self.api.list_tags(ResourceArn=config["EndpointConfigArn"])["Tags"]
            log(
                f"creating the endpoint {name} beside {self.stable} "
                f"({self.options.instance_count} × {self.options.instance_type})"
            )
            self.api.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=tags)
            found = self._settled(name)
            if found["EndpointStatus"] != "InService":
                self._remove_endpoint(name)
                raise DeployFailed(f"the endpoint {name} {_state(found)}")
        log(f"the endpoint {name} is InService")
        return Version(url=handle["url"], handle=self._handle(name))

    def problem(self, handle: dict) -> str | None:
        name = handle["release"]
        with self._aws(f"describing the endpoint {name}"):
            found = self._describe(name)
            if found is not None:
                return f"its endpoint {name} {_state(found)}" if found["EndpointStatus"] in BROKEN else None
            stable = self._describe(self.stable)
        if stable is None or stable.get("EndpointConfigName") != name:
            return f"its endpoint {name} is gone, and {self.stable} does not serve it"
        return (
            f"{self.stable}, which serves it, {_state(stable)}"
            if stable["EndpointStatus"] in BROKEN
            else None
        )

    def stop(self, handle: dict) -> None:
        with self._aws(f"deleting the endpoint {handle['release']}"):
            self._remove_endpoint(handle["release"])
            self._prune()
            self.capture.clean(self.stable, lambda endpoint: self._names.match(endpoint) is not None)

    # -- traffic --------------------------------------------------------------------------------------

    def routed(self) -> dict | None:
        with self._aws(f"describing the endpoint {self.stable}"):
            found = self._describe(self.stable)
        return None if found is None else self._handle(found["EndpointConfigName"])

    def switch(self, version: Version) -> None:
        name = version.handle["release"]
        with self._aws(f"switching the endpoint {self.stable} to {name}"):
            found = self._describe(self.stable)
            if found is None:
                tags = [{"Key": TAG_ENVIRONMENT, "Value": self.environment}]
                self.api.create_endpoint(EndpointName=self.stable, EndpointConfigName=name, Tags=tags)
            else:
                found = self._settled(self.stable)  # an update a worker that died asked for
                if found["EndpointConfigName"] != name:
                    self.api.update_endpoint(EndpointName=self.stable, EndpointConfigName=name)
            done = self._settled(self.stable)
            if done["EndpointStatus"] != "InService" or done["EndpointConfigName"] != name:
                if found is None:  # a first endpoint that never served: nothing to keep
                    self._remove_endpoint(self.stable)
                raise DeployFailed(f"SageMaker did not switch {self.stable} to {name}: it {_state(done)}")
            self._remove_endpoint(name)  # served by the environment's endpoint now: no instances twice

    def captured(self) -> list[str]:
        with self._aws(f"reading the requests {self.stable} captured"):
            return self.capture.recent(self.stable)

    def caller(self) -> "Invoker":
        return Invoker(self)

    # -- SageMaker ------------------------------------------------------------------------------------

    def _describe(self, endpoint: str) -> dict | None:
        try:
            return self.api.describe_endpoint(EndpointName=endpoint)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def _config(self, name: str) -> dict | None:
        try:
            return self.api.describe_endpoint_config(EndpointConfigName=name)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def _settled(self, endpoint: str) -> dict:
        """The endpoint once it is no longer changing (Creating, Updating)."""
        found = self._poll(endpoint, lambda found: found is None or found["EndpointStatus"] not in CHANGING)
        if found is None:
            raise DeployFailed(f"the endpoint {endpoint} was deleted while tierbot waited for it")
        return found

    def _remove_endpoint(self, endpoint: str, wait: bool = False) -> None:
        """The endpoint deleted, if there is one; `wait`: until its name is free again."""
        try:
            self.api.delete_endpoint(EndpointName=endpoint)
        except ClientError as exc:
            if not _missing(exc):
                raise
        if wait:
            self._poll(endpoint, lambda found: found is None)

    def _poll(self, endpoint: str, done: Callable[[dict | None], bool]) -> dict | None:
        """DescribeEndpoint with backoff until `done` says so; DeployFailed past start_timeout."""
        seconds = float(self.options.start_timeout)
        deadline, pause = time.monotonic() + seconds, FIRST_POLL
        while not done(found := self._describe(endpoint)):
            if time.monotonic() > deadline:
                raise DeployFailed(  # not done: it is there, and changing
                    f"the endpoint {endpoint} was still {found['EndpointStatus']} after {seconds:g} s "
                    "(deploy_targets start_timeout)"
                )
            time.sleep(pause)
            pause = min(pause * 1.5, MAX_POLL)
        return found

    def _delete_release(self, name: str, keep_data: bool = False) -> None:
        for delete in (
            lambda: self.api.delete_endpoint_config(EndpointConfigName=name),
            lambda: self.api.delete_model(ModelName=name),
        ):
            try:
                delete()
            except ClientError as exc:
                if not _missing(exc):
                    raise
        if not keep_data:
            self.store.client.delete_object(Bucket=self.store.bucket, Key=self._key(name))

    def _prune(self) -> None:
        """Candidates of the environment deleted; releases beyond the routed one and the newest KEEP."""
        for endpoint in self._ours("list_endpoints", "Endpoints", "EndpointName"):
            self._remove_endpoint(endpoint)
        routed = self.routed()
        releases = sorted(
            self._ours("list_endpoint_configs", "EndpointConfigs", "EndpointConfigName"),
            key=lambda name: int(self._names.match(name)[1]),
            reverse=True,
        )
        kept = [name for name in releases if routed is None or name != routed["release"]][:KEEP]
        for name in releases:
            if name not in kept and (routed is None or name != routed["release"]):
                self._delete_release(name)

    def _ours(self, operation: str, field: str, name: str) -> list[str]:
        """The environment's releases (or their candidate endpoints), by name."""
        pages = self.api.get_paginator(operation).paginate(NameContains=self.stable[:50])
        found = (item[name] for page in pages for item in page[field])
        return [item for item in found if self._names.match(item)]


class Invoker:
    """The checks' way to a version (`checks.Caller`): its candidate endpoint, or the environment's
    endpoint once that serves its release."""

    def __init__(self, target: SageMakerTarget):
        self.target = target
        self.endpoints: dict[str, str] = {}  # version URL → the endpoint that serves it, found once

    def _endpoint(self, url: str) -> str:
        name = url.rsplit("/endpoints/", 1)[-1].split("/", 1)[0]
        if url not in self.endpoints:
            stable = self.target._describe(self.target.stable) if name != self.target.stable else None
            served = stable is not None and stable.get("EndpointConfigName") == name
            gone = served and self.target._describe(name) is None
            self.endpoints[url] = self.target.stable if gone else name
        return self.endpoints[url]

    def health(self, url: str) -> tuple[int, str]:
        with self.target._aws("describing an endpoint"):
            endpoint = self._endpoint(url)
            found = self.target._describe(endpoint)
        if found is None:
            return 404, f"no endpoint {endpoint}"
        return (200, "InService") if found["EndpointStatus"] == "InService" else (503, _state(found))

    def predict(self, url: str, body: str) -> tuple[int, str]:
        with self.target._aws("InvokeEndpoint"):
            endpoint = self._endpoint(url)
            try:
                answer = self.target.runtime.invoke_endpoint(
                    EndpointName=endpoint,
                    Body=body.encode(),
                    ContentType="application/json",
                    Accept="application/json",
                    InferenceId=CHECKS,  # not replayed as a client's request (sagemaker_capture)
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ModelError":
                    raise
                return int(exc.response.get("OriginalStatusCode", 500)), exc.response.get(
                    "OriginalMessage", ""
                )
            with contextlib.closing(answer["Body"]):
                return 200, answer["Body"].read().decode(errors="replace")


def _state(found: dict) -> str:
    """`is Failed: <SageMaker's reason>`, for people."""
    reason = found.get("FailureReason")
    return f"is {found['EndpointStatus']}" + (f": {reason}" if reason else "")


def _missing(exc: ClientError) -> bool:
    """Whether SageMaker said there is no such endpoint, endpoint config or model."""
    return "Could not find" in exc.response.get("Error", {}).get("Message", "")


def _without_git(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if Path(info.name).name == ".git" else info
