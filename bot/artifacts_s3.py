"""The artifact store on S3, or on any S3-compatible endpoint: `TIERBOT_ARTIFACT_STORE=s3://bucket/prefix`
(and `AWS_ENDPOINT_URL`), keys `prefix/blobs/ab/cdef…`, `prefix/logs/run-N.log` and
`prefix/reports/comparison-N.html`.

Blobs are uploaded once (a HEAD first: the same content from another run, or another replica, is already
there), and downloaded into this host's blobs dir — a content-addressed cache, each blob kept only when
its content hashes to its key — before a comparison reads them. Logs and reports carry the xxh3 of their
content in their metadata, checked on every read: nothing read back from the bucket is used unverified.

Throttling, 5xx and connection errors are retried by botocore's standard retry mode (backoff with
jitter). A log or report that cannot be uploaded even so stays in this host's data dir, and its location
says so: a run or a comparison is never lost to a bucket's bad minute, it is only served from one host.
"""

import contextlib
import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import xxhash
from botocore.exceptions import BotoCoreError, ClientError

from bot.artifacts import ArtifactUnavailable, DirectoryStore, local_size, unreadable
from bot.manifest import FileEntry
from bot.outputs import BlobMismatch, file_hash
from bot.settings import Settings

log = logging.getLogger(__name__)

TRANSFERS = 8  # blobs up- or downloaded at once; each is one connection
DIGEST = "xxh3-128"  # the metadata that carries a log's or report's hash
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3Store:
    shared = True

    def __init__(self, settings: Settings, url: str):
        self.settings, self.url = settings, url
        self.bucket, _, self.prefix = url.removeprefix("s3://").partition("/")
        self.local = DirectoryStore(settings.data_dir, shared=False)  # this host's copies
        self.blobs = self.local.blobs

    @cached_property
    def client(self):
        """Made on first use: commands that never touch the store never load boto3 (a third of a second)."""
        from bot.aws import aws_client

        return aws_client(
            self.settings,
            "s3",
            endpoint_url=self.settings.aws_endpoint_url,
            max_pool_connections=2 * TRANSFERS,
            signature_version="s3v4",  # presigned URLs (the remote backends'): what S3 accepts today
        )

    # -- blobs --------------------------------------------------------------------------------------

    def publish(self, hashes: Iterable[str]) -> None:
        with ThreadPoolExecutor(TRANSFERS) as pool:
            list(pool.map(self._upload_blob, sorted(set(hashes))))

    def _upload_blob(self, hash: str) -> None:
        key = self._blob_key(hash)
        with self._reaching(f"the outputs could not be stored in {self.url}"):
            if self._head(key) is None:
                self.client.upload_file(str(self.blobs.path_of(hash)), self.bucket, key)

    def fetch(self, files: Iterable[FileEntry]) -> None:
        files = list(files)
        wanted = sorted({f.hash for f in files if not self.blobs.path_of(f.hash).is_file()})
        with ThreadPoolExecutor(TRANSFERS) as pool:
            failures = dict(zip(wanted, pool.map(self._download_blob, wanted), strict=True))
        by_why: dict[str, list[FileEntry]] = {}
        for entry in files:
            why = failures.get(entry.hash)
            if why is not None:
                by_why.setdefault(why, []).append(entry)
        if by_why:
            raise ArtifactUnavailable("; ".join(unreadable(f, self.url, why) for why, f in by_why.items()))

    def _download_blob(self, hash: str) -> str | None:
        """Why the blob cannot be had here, None when it is here now."""
        key = self._blob_key(hash)
        try:
            self.blobs.fill(hash, lambda out: self.client.download_fileobj(self.bucket, key, out))
        except BlobMismatch as exc:
            log.error("refused s3://%s/%s: %s", self.bucket, key, exc)
            return "their content does not match their hash (corrupted, or tampered with): refused"
        except ClientError as exc:
            return "not there (removed, or never stored)" if _not_found(exc) else f"not fetched: {exc}"
        except BotoCoreError as exc:
            return f"not fetched: {exc}"
        return None

    def blob_location(self, hash: str) -> str:
        return self._location(self._blob_key(hash))

    def _blob_key(self, hash: str) -> str:
        self.blobs.path_of(hash)  # refuses anything but a hash: it becomes part of a key
        return self._key("blobs", hash[:2], hash[2:])

    # -- logs and reports -----------------------------------------------------------------------------

    def put_log(self, path: Path) -> str | None:
        if not path.is_file():
            return None
        key = self._key("logs", path.name)
        try:
            metadata = {DIGEST: file_hash(path)}
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"Metadata": metadata})
        except (BotoCoreError, ClientError) as exc:
            log.warning("the log %s stays on this host, not stored in %s: %s", path, self.url, exc)
            return self.local.put_log(path)
        path.unlink()  # the live tail is over: the bucket holds it now
        return self._location(key)

    def put_report(self, comparison_id: int, html: str) -> str:
        data = html.encode("utf-8")
        key = self._key("reports", f"comparison-{comparison_id}.html")
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType="text/html; charset=utf-8",
                Metadata={DIGEST: xxhash.xxh3_128_hexdigest(data)},
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning("comparison %s's report stays on this host: %s", comparison_id, exc)
            return self.local.put_report(comparison_id, html)
        return self._location(key)

    def read_text(self, location: str) -> str | None:
        place = _bucket_and_key(location)
        if place is None:  # a path: written before this store, or kept here when the bucket failed
            return self.local.read_text(location)
        bucket, key = place
        try:
            with self._reaching(f"{location} cannot be read"):
                answer = self.client.get_object(Bucket=bucket, Key=key)
                data = answer["Body"].read()
        except ArtifactUnavailable as exc:
            if isinstance(exc.__cause__, ClientError) and _not_found(exc.__cause__):
                return None
            raise
        if answer.get("Metadata", {}).get(DIGEST) != xxhash.xxh3_128_hexdigest(data):
            log.error("refused %s: its content does not match the hash stored with it", location)
            raise ArtifactUnavailable(
                f"{location} does not match the hash stored with it (corrupted, or tampered with): refused"
            )
        return data.decode("utf-8", errors="replace")

    # -- for tierbot gc ----------------------------------------------------------------------------

    def size(self, location: str) -> int | None:
        place = _bucket_and_key(location)
        if place is None:
            return local_size(location)
        with self._reaching(f"the artifact store {self.url} cannot be reached"):
            found = self._head(place[1], place[0])
        return None if found is None else found["ContentLength"]

    def remove(self, location: str) -> None:
        place = _bucket_and_key(location)
        if place is None:
            self.local.remove(location)
            return
        bucket, key = place
        with self._reaching(f"{location} could not be removed"):
            self.client.delete_object(Bucket=bucket, Key=key)
        blobs = self._key("blobs") + "/"
        if bucket == self.bucket and key.startswith(blobs):  # and this host's cached copy
            with contextlib.suppress(ValueError, FileNotFoundError):
                self.blobs.path_of(key.removeprefix(blobs).replace("/", "")).unlink()

    # -- keys ----------------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    def _location(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _head(self, key: str, bucket: str | None = None) -> dict | None:
        try:
            return self.client.head_object(Bucket=bucket or self.bucket, Key=key)
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise

    @contextlib.contextmanager
    def _reaching(self, what: str) -> Iterator[None]:
        """botocore's errors, once its retries are spent, as ArtifactUnavailable saying `what` failed."""
        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise ArtifactUnavailable(f"{what}: {exc}") from exc


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _NOT_FOUND


def _bucket_and_key(location: str) -> tuple[str, str] | None:
    if not location.startswith("s3://"):
        return None
    bucket, _, key = location.removeprefix("s3://").partition("/")
    return bucket, key
