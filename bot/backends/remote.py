"""The runner contract of every remote backend (AWS Batch today): the code travels to the job as a bundle
in the artifact store's bucket, the outputs come back the same way, and the job never holds the bot's
credentials.

Under the store's prefix (`TIERBOT_ARTIFACT_STORE=s3://bucket/prefix`), in `bundles/`:
- `code/<tree>.v1.tar.gz`: the checkout without `.git`, keyed by its git tree, so a commit already sent
  (by any run, on any tier) is not sent again: one HEAD. Its SHA-256 is in its metadata, and the job
  checks it before it runs anything;
- `entrypoint/<sha256>.py`: `bot.backends.entrypoint`, which the job's command (`BOOTSTRAP`) fetches,
  checks and runs;
- `outputs/<instance>-run-<id>-<nonce>.tar.gz`: what the job sends back (the job's outputs directory, or
  its whole workdir when the job names none), unpacked here with the rules of a container's workdir
  (`bot.backends.docker_archive.extract_workdir`: no absolute names, no `..`, no links written through,
  counted and bounded while reading, inflated a megabyte at a time), then deleted.

The job reaches the code, the entrypoint and the outputs' place through presigned URLs in its
environment, one object each, valid for the queue wait and the runtime it may take. Code and entrypoint
objects carry the run that last used them and when (`tierbot:run`, `tierbot:used`, tags), outputs the run
in their name: the reaper (`Bundles.reap`) deletes those past the retention whose run is not running.
"""

import contextlib
import gzip
import hashlib
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError

from bot.artifacts_s3 import S3Store
from bot.backends import Job, Outcome, Watcher
from bot.backends.docker_archive import ExtractLimits, code_archive, extract_workdir
from bot.backends.entrypoint import FAILED, OUTPUTS_TYPE
from bot.backends.process import LogSink
from bot.errors import OutputsRejected, TierbotError
from bot.settings import Settings
from bot.units import format_size

BUNDLES = "bundles"
FORMAT = "v1"  # part of every code bundle's key: a change to how code is packed sends every tree again
TAG_RUN, TAG_INSTANCE, TAG_USED = "tierbot:run", "tierbot:instance", "tierbot:used"
MAX_URL_SECONDS = 7 * 24 * 3600  # SigV4's limit on a presigned URL
INFLATE_CHUNK = 1024 * 1024
# The job's whole program: fetch the entrypoint, check it, run it. Short, because a job's overrides are.
BOOTSTRAP_SOURCE = (
    "import hashlib,os,urllib.request as r\n"
    "s=r.urlopen(os.environ['TIERBOT_ENTRYPOINT_URL'],timeout=300).read()\n"
    "if hashlib.sha256(s).hexdigest()!=os.environ['TIERBOT_ENTRYPOINT_SHA256']:"
    "raise SystemExit('[tierbot: entrypoint failed: the entrypoint does not match its hash]')\n"
    "exec(compile(s,'tierbot-entrypoint','exec'),{'__name__':'__main__'})"
)
BOOTSTRAP = ["python3", "-c", BOOTSTRAP_SOURCE]  # the job's whole command
_OUTPUTS = re.compile(r"/outputs/(?P<instance>[\w.-]+)-run-(?P<run>\d+)-[0-9a-f]+\.tar\.gz$")


class Cancelled(Exception):
    """The run was cancelled before its job was submitted."""


def attempt(job: Job, watcher: Watcher, service: str, run: Callable[[LogSink], Outcome]) -> Outcome:
    """`run`'s outcome for the job, in its log; and every way a remote job ends before it has one, as an
    outcome that says why: code that may not run there, a cancel, the tier's options or the code to send
    (TierbotError), AWS refusing or out of reach."""
    from bot.aws_options import short, untrusted

    with LogSink(job.log_path, job.max_log_bytes, watcher.log, job.redact) as sink:
        if not job.trusted:
            return Outcome("failed", None, 0.0, f"not run: {untrusted(job.tier, service)}", sink.tail())
        try:
            return run(sink)
        except Cancelled:
            return Outcome("cancelled", None, 0.0, "cancelled", sink.tail())
        except TierbotError as exc:
            return Outcome("failed", None, 0.0, str(exc), sink.tail())
        except (BotoCoreError, ClientError) as exc:
            return Outcome("failed", None, 0.0, f"AWS failed: {short(exc)}", sink.tail())


class OutputsLost(TierbotError):
    """The job ended well but its outputs are not where it was to send them."""


@dataclass(frozen=True)
class Shipment:
    """What a job needs to run the code and send back its outputs, and what the worker needs after."""

    env: dict[str, str]  # the job's environment: the URLs, the command, the job's own variables
    outputs_key: str
    limits: ExtractLimits  # the code's size on top of the outputs' limits, as for a container's workdir


class Bundles:
    """Code bundles, the entrypoint and outputs in the artifact store's bucket (the store's S3 client)."""

    def __init__(self, settings: Settings, instance: str):
        self.settings, self.instance = settings, instance
        self.store = S3Store(settings, settings.artifact_store or "")
        self.client, self.bucket = self.store.client, self.store.bucket

    def ship(self, job: Job, sink: LogSink, url_seconds: float) -> Shipment:
        """The code and the entrypoint in the bucket (sent only if not there yet), and the job's env."""
        tags = {TAG_RUN: str(job.run_id), TAG_INSTANCE: self.instance, TAG_USED: str(int(time.time()))}
        code = self._code(job.workdir, tags, sink)
        entrypoint = resources.files("bot.backends").joinpath("entrypoint.py").read_bytes()
        entry_sha = hashlib.sha256(entrypoint).hexdigest()
        entry_key = self._key("entrypoint", f"{entry_sha}.py")
        if self._reuse(entry_key, tags) is None:
            self.client.put_object(
                Bucket=self.bucket, Key=entry_key, Body=entrypoint, Tagging=urlencode(tags)
            )
        outputs_key = self._key("outputs", f"{self.instance}-run-{job.run_id}-{uuid.uuid4().hex[:12]}.tar.gz")
        seconds = int(min(MAX_URL_SECONDS, url_seconds))
        env = {
            "TIERBOT_ENTRYPOINT_URL": self._presign("get_object", entry_key, seconds),
            "TIERBOT_ENTRYPOINT_SHA256": entry_sha,
            "TIERBOT_BUNDLE_URL": self._presign("get_object", code.key, seconds),
            "TIERBOT_BUNDLE_SHA256": code.sha256,
            "TIERBOT_OUTPUTS_URL": self._presign("put_object", outputs_key, seconds, OUTPUTS_TYPE),
            "TIERBOT_COMMAND": job.command,
            "PYTHONUNBUFFERED": "1",  # progress as lines in the job's log, not in 8 KiB blocks
        }
        if job.outputs is not None:
            env["TIERBOT_OUTPUTS"] = job.outputs
        if job.requirements is not None and job.dockerfile is None:  # a Dockerfile builds its own
            env["TIERBOT_REQUIREMENTS"] = job.requirements.relative_to(job.workdir).as_posix()
        limits = ExtractLimits(
            max_files=self.settings.max_output_files + code.files,
            max_bytes=self.settings.max_output_bytes + code.bytes,
        )
        return Shipment(env=env | job.env, outputs_key=outputs_key, limits=limits)

    def _code(self, workdir: Path, tags: dict[str, str], sink: LogSink) -> "_Code":
        tree = _tree(workdir)
        key = self._key("code", f"{tree}.{FORMAT}.tar.gz")
        found = self._reuse(key, tags)
        if found is not None:
            meta = found.get("Metadata", {})
            sink.line(f"[tierbot: reusing the code bundle of tree {tree[:12]}]")
            return _Code(key, meta.get("sha256", ""), int(meta.get("files", 0)), int(meta.get("bytes", 0)))
        with _packed(workdir) as packed:
            code = _Code(key, packed.sha256, packed.files, packed.bytes)
            meta = {"sha256": code.sha256, "files": str(code.files), "bytes": str(code.bytes)}
            extra = {"Metadata": meta, "Tagging": urlencode(tags)}
            self.client.upload_fileobj(packed.file, self.bucket, key, ExtraArgs=extra)
        sink.line(f"[tierbot: sent the code bundle of tree {tree[:12]} ({format_size(packed.size)})]")
        return code

    def receive(self, shipment: Shipment, run_id: int, sink: LogSink) -> Path:
        """The job's outputs, unpacked into a new directory the caller removes. Raises OutputsLost, and
        OutputsRejected past the limits or for a broken archive."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=shipment.outputs_key)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise OutputsLost("the job sent no outputs back (see the end of its log)") from None
            raise
        with contextlib.closing(body):
            chunks = _inflated(body.iter_chunks(INFLATE_CHUNK))
            parent = self.settings.data_dir / "remote"
            try:
                return extract_workdir(chunks, parent, run_id, shipment.limits, sink)
            except (tarfile.TarError, zlib.error) as exc:  # what the job sent; extract_workdir cleaned up
                raise OutputsRejected(f"the outputs archive is broken: {exc}") from None

    def discard(self, shipment: Shipment) -> None:
        """The outputs object gone, whether the job sent it or not: nothing outlives the run."""
        with contextlib.suppress(BotoCoreError, ClientError):
            self.client.delete_object(Bucket=self.bucket, Key=shipment.outputs_key)

    def reap(self, is_running: Callable[[int], bool], retention_seconds: float) -> list[str]:
        """Objects in `bundles/` older than the retention, last used longer ago than that, by a run of
        this instance that is not running (or by none): deleted. Their keys."""
        cutoff = time.time() - retention_seconds
        removed: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key() + "/"
        )
        for item in (item for page in pages for item in page.get("Contents", [])):
            if item["LastModified"].timestamp() > cutoff:
                continue
            owner = self._owner(item["Key"])
            if owner is None:
                continue  # another installation's
            run, used = owner
            if used > cutoff or (run is not None and is_running(run)):
                continue
            self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
            removed.append(item["Key"])
        return removed

    def _owner(self, key: str) -> tuple[int | None, float] | None:
        """(the run, when it used the object) of this instance's object; None when another's."""
        named = _OUTPUTS.search(key)
        if named is not None:
            return (int(named["run"]), 0.0) if named["instance"] == self.instance else None
        tagged = self.client.get_object_tagging(Bucket=self.bucket, Key=key)["TagSet"]
        tags = {tag["Key"]: tag["Value"] for tag in tagged}
        if tags.get(TAG_INSTANCE, self.instance) != self.instance:
            return None
        run = tags.get(TAG_RUN, "")
        used = tags.get(TAG_USED, "0")
        return (int(run) if run.isdigit() else None), (float(used) if used.isdigit() else 0.0)

    def _reuse(self, key: str, tags: dict[str, str]) -> dict | None:
        """The object's HEAD, tagged as used by this run now (the reaper spares it); None if not there."""
        found = self._head(key)
        if found is not None:
            self._tag(key, tags)
        return found

    def _tag(self, key: str, tags: dict[str, str]) -> None:
        tagging = {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
        self.client.put_object_tagging(Bucket=self.bucket, Key=key, Tagging=tagging)

    def _head(self, key: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _presign(self, method: str, key: str, seconds: int, content_type: str | None = None) -> str:
        params = {"Bucket": self.bucket, "Key": key}
        if content_type is not None:  # signed: the job must send exactly this type
            params["ContentType"] = content_type
        return self.client.generate_presigned_url(method, Params=params, ExpiresIn=seconds)

    def _key(self, *parts: str) -> str:
        return "/".join(part for part in (self.store.prefix, BUNDLES, *parts) if part)


@dataclass(frozen=True)
class _Code:
    key: str
    sha256: str
    files: int
    bytes: int


def failure_of(tail: list[str]) -> str | None:
    """The entrypoint's own failure, said as the last line of the job's log, or None."""
    for line in reversed(tail):
        if line.startswith(FAILED):
            return line.removeprefix(FAILED).removesuffix("]")
    return None


def _tree(workdir: Path) -> str:
    """The checkout's git tree: what names its code bundle."""
    done = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(workdir), "rev-parse", "HEAD^{tree}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise TierbotError(f"the code to send is not a git checkout: {done.stderr.strip()[:300]}")
    return done.stdout.strip()


@dataclass(frozen=True)
class _Packed:
    file: IO[bytes]
    sha256: str
    size: int  # compressed
    files: int
    bytes: int  # uncompressed, in regular files


@contextlib.contextmanager
def _packed(workdir: Path) -> Iterator[_Packed]:
    """The checkout as a tar.gz: the container's code archive (`code_archive`), compressed."""
    archive = code_archive(workdir)
    with archive.file, tempfile.TemporaryFile() as packed:
        with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as zipped:
            shutil.copyfileobj(archive.file, zipped, INFLATE_CHUNK)
        size = packed.tell()
        packed.seek(0)
        sha = hashlib.sha256()
        for block in iter(lambda: packed.read(INFLATE_CHUNK), b""):
            sha.update(block)
        packed.seek(0)
        yield _Packed(packed, sha.hexdigest(), size, archive.files, archive.bytes)


def _inflated(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """gzip'd chunks, inflated at most a megabyte at a time: a small archive of zeros cannot fill memory
    (the extraction's bound stops it as it grows)."""
    inflate = zlib.decompressobj(wbits=31)
    for chunk in chunks:
        data = chunk
        while data:
            out = inflate.decompress(data, INFLATE_CHUNK)
            if out:
                yield out
            data = inflate.unconsumed_tail
    rest = inflate.flush()
    if rest:
        yield rest
    if not inflate.eof:
        raise zlib.error("the outputs archive is cut short")
