"""SageMaker's Data Capture, read for the prediction diff: the requests the environment's endpoint served,
replayed against the old and the new release as the local and docker targets replay what their proxy
forwarded.

Each release's endpoint config captures requests only (never answers), `capture_percentage` of them
(`deploy_targets` option; 0: none), into the artifact store's bucket, `<prefix>/capture`. SageMaker writes
JSON Lines files there, `<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-ms-id>.jsonl`, one record per request:
`captureData.endpointInput.data` in its `encoding` (JSON and CSV as text, anything else BASE64); JSON
content types are declared so that JSON bodies stay readable in the bucket.

`recent` reads the endpoint's newest files first — its keys sort by time at every level, so the walk lists
one folder at a time, in reverse — at most FILES files and READ_BYTES bytes (the tail of a file when the
budget ends within it: records are appended in time order), then hands their records, oldest first, to
the proxy's `Captured`, so both ways of capturing keep the same: distinct bodies, the newest, bounded in
count and bytes. A record is skipped when it is not one, when its body is not JSON, and when the checks
sent it: their smoke and replayed requests reach the environment's endpoint too, marked by
InvokeEndpoint's InferenceId (CHECKS, which SageMaker writes into the record's `eventMetadata`), and must
not crowd out what clients sent.

`clean` (the target's `stop`, once per deployment) deletes what candidate endpoints captured — the checks'
own requests, nothing else reaches a candidate — and the environment endpoint's files older than
`capture_retention`: an ascending listing that stops at the first hour folder within it.
"""

import base64
import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator

from bot.deploy.proxy import Captured

FILES = 50  # capture files read for one prediction diff, newest first
READ_BYTES = 4 * 1024 * 1024  # of capture files read for one prediction diff
CHECKS = "tierbot-check"  # InvokeEndpoint's InferenceId on the checks' own requests
JSON_TYPES = ["application/json"]  # captured as text; SageMaker's default is base64
DELETE_BATCH = 1000  # keys per DeleteObjects: S3's most
HOUR = "%Y/%m/%d/%H"  # SageMaker's folders of capture files


class DataCapture:
    """An environment's captured requests, in the artifact store's bucket."""

    def __init__(self, client, bucket: str, prefix: str, percentage: int, retention: float):
        self.client, self.bucket = client, bucket
        self.percentage, self.retention = percentage, retention
        self.root = "/".join(p for p in (prefix, "capture") if p)

    def config(self) -> dict | None:
        """An endpoint config's DataCaptureConfig (requests only, into the bucket); None when it is off."""
        if not self.percentage:
            return None
        return {
            "EnableCapture": True,
            "InitialSamplingPercentage": self.percentage,
            "DestinationS3Uri": f"s3://{self.bucket}/{self.root}",
            "CaptureOptions": [{"CaptureMode": "Input"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": JSON_TYPES},
        }

    def recent(self, endpoint: str) -> list[str]:
        """The distinct JSON bodies clients sent the endpoint most recently, oldest first; none when capture
        is off (the operator turned it off: what it captured before is not replayed either)."""
        if not self.percentage:
            return []
        files, budget = [], READ_BYTES  # files: newest first, each its records oldest first
        for item in self._newest(f"{self.root}/{endpoint}/"):
            if len(files) >= FILES or budget <= 0:
                break
            files.append(self._records(item["Key"], item["Size"], budget))
            budget -= item["Size"]
        kept = Captured()
        for records in reversed(files):
            for record in records:
                body = _body(record)
                if body is not None:
                    kept.add(body)
        return kept.recent()

    def clean(self, endpoint: str, candidate: Callable[[str], bool]) -> None:
        """Candidates' captures deleted, and the endpoint's older than the retention."""
        for folder in self._folders(f"{self.root}/"):
            if candidate(folder[len(self.root) + 1 : -1]):
                self._delete([item["Key"] for item in self._objects(folder)])
        self._delete(self._expired(f"{self.root}/{endpoint}/"))

    # -- S3 ---------------------------------------------------------------------------------------------

    def _newest(self, prefix: str) -> Iterator[dict]:
        """The objects under `prefix`, newest first, listing one folder at a time."""
        pages = self._pages(prefix, Delimiter="/")
        folders, files = [], []
        for page in pages:
            folders += [found["Prefix"] for found in page.get("CommonPrefixes", [])]
            files += page.get("Contents", [])
        yield from sorted(files, key=lambda item: item["Key"], reverse=True)
        for folder in sorted(folders, reverse=True):
            yield from self._newest(folder)

    def _records(self, key: str, size: int, budget: int) -> list[bytes]:
        """The file's lines, or those wholly within its last `budget` bytes."""
        cut = budget < size
        ranged = {"Range": f"bytes=-{budget}"} if cut else {}
        answer = self.client.get_object(Bucket=self.bucket, Key=key, **ranged)
        with contextlib.closing(answer["Body"]) as body:
            lines = body.read().splitlines()
        return lines[1:] if cut else lines  # the first of a tail may be a record's end

    def _expired(self, prefix: str) -> list[str]:
        """The endpoint's files in hour folders older than the retention (one variant: keys sort by time)."""
        cutoff = time.strftime(HOUR, time.gmtime(time.time() - self.retention))
        expired = []
        for item in self._objects(prefix):
            hour = item["Key"][len(prefix) :].partition("/")[2][: len("yyyy/mm/dd/hh")]
            if hour >= cutoff:
                break
            expired.append(item["Key"])
        return expired

    def _folders(self, prefix: str) -> Iterator[str]:
        for page in self._pages(prefix, Delimiter="/"):
            yield from (found["Prefix"] for found in page.get("CommonPrefixes", []))

    def _objects(self, prefix: str) -> Iterator[dict]:
        for page in self._pages(prefix):
            yield from page.get("Contents", [])

    def _pages(self, prefix: str, **listing) -> Iterable[dict]:
        paginator = self.client.get_paginator("list_objects_v2")
        return paginator.paginate(Bucket=self.bucket, Prefix=prefix, **listing)

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + DELETE_BATCH]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})


def _body(record: bytes) -> bytes | None:
    """A capture record's request body when a client sent it and it is JSON; else None."""
    try:
        found = json.loads(record)
        if found.get("eventMetadata", {}).get("inferenceId") == CHECKS:
            return None
        sent = found["captureData"]["endpointInput"]
        data = sent["data"]
        body = base64.b64decode(data, validate=True) if sent.get("encoding") == "BASE64" else data.encode()
        json.loads(body)
    except (ValueError, KeyError, TypeError, AttributeError):  # binascii.Error is a ValueError
        return None
    return body
