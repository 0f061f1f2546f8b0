"""Where runs' outputs, run logs and comparison reports live, so that any replica settles any comparison
and serves any report.

Three kinds of content behind one interface (`ArtifactStore`): blobs by content hash (a run's outputs,
`bot.outputs`), a run's log, a comparison's HTML report. Three places, chosen by
`TIERBOT_ARTIFACT_STORE`:

- unset: the data dir, today's layout (`DATA/blobs/ab/cdef…`, `DATA/logs/run-N.log`,
  `DATA/reports/comparison-N.html`), readable on this host only;
- a path every replica mounts (`/mnt/shared/tierbot`): the same layout and the same code, there;
- `s3://bucket/prefix` (`bot.artifacts_s3`): `prefix/blobs/ab/cdef…`, `prefix/logs/run-N.log`,
  `prefix/reports/comparison-N.html`, with this host's blobs dir as a cache that the compare engine
  reads, as it reads any local path.

A log's or report's *location* is what `Run.log_path` and `ComparisonRecord.report_path` hold: a path
(in the data dir or on the shared path) or an `s3://bucket/key` URL. Rows written before a store was
configured keep their paths and are read where those are.
"""

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import select

from bot.errors import TierbotError
from bot.manifest import FileEntry
from bot.outputs import BlobStore, copy_of, write_atomically
from bot.settings import Settings
from bot.store import Database, Run
from bot.store.queue import HOST

SETTING = "TIERBOT_ARTIFACT_STORE"


class ArtifactUnavailable(TierbotError):
    """Content the store should hold cannot be read here: it is missing, its content fails its hash, or
    the store cannot be reached."""


class ArtifactStore(Protocol):
    """The port: what the worker, `settle`, the report page and `tierbot gc` ask of a store."""

    blobs: BlobStore  # this host's blobs: outputs are collected into it, and compared from it
    shared: bool  # whether every replica reads what any replica wrote

    def publish(self, hashes: Iterable[str]) -> None:
        """Blobs collected into `blobs` made readable by every replica. Raises ArtifactUnavailable."""

    def fetch(self, files: Iterable[FileEntry]) -> None:
        """Every file's blob readable here, at `blobs.path_of(hash)`, verified when it came from
        elsewhere. Raises ArtifactUnavailable naming the files that are not."""

    def put_log(self, path: Path) -> str | None:
        """A finished run's log (written on this host, at `path`) stored; its location, None when there
        is no log."""

    def put_report(self, comparison_id: int, html: str) -> str:
        """A comparison's report stored; its location."""

    def read_text(self, location: str) -> str | None:
        """A log or report by location; None when it is not there (not written, or collected). Raises
        ArtifactUnavailable when it is there but cannot be read, or fails its check."""

    def blob_location(self, hash: str) -> str:
        """Where the blob `hash` is, as `tierbot gc` removes it."""

    def size(self, location: str) -> int | None:
        """Bytes at a location; None when nothing is there."""

    def remove(self, location: str) -> None:
        """Whatever is at a location gone (with this host's copy of it, if any)."""


@dataclass(frozen=True)
class Stored:
    """An object in the store, by location: what `tierbot gc` lists and removes through the store."""

    location: str

    @property
    def name(self) -> str:
        return self.location.rsplit("/", 1)[-1]


def is_url(location: str) -> bool:
    return "://" in location


def artifact_store(settings: Settings) -> ArtifactStore:
    """The store `settings` name; only an S3 store loads boto3 (`tierbot[aws]`)."""
    place = settings.artifact_store
    if place is None:
        return DirectoryStore(settings.data_dir, shared=False)
    if place.startswith("s3://"):
        try:
            from bot.artifacts_s3 import S3Store
        except ImportError as exc:
            raise TierbotError(
                f"{SETTING}={place} is an S3 bucket, but boto3 is not installed ({exc}): install "
                "tierbot[aws] (`pip install 'tierbot[aws]'`)."
            ) from None
        return S3Store(settings, place)
    return DirectoryStore(Path(place), shared=True)


def describe(settings: Settings) -> str:
    """The store in a few words, for `tierbot serve`'s start-up summary."""
    place = settings.artifact_store
    if place is None:
        return f"the data dir {settings.data_dir} (this host only; set {SETTING} for several replicas)"
    if place.startswith("s3://"):
        endpoint = f" at {settings.aws_endpoint_url}" if settings.aws_endpoint_url else ""
        return f"S3 {place}{endpoint}, shared by every replica (this host's blobs dir caches it)"
    return f"the shared path {place}, which every replica must mount"


def refuse_host_local(settings: Settings, store: ArtifactStore, db: Database) -> None:
    """Raise when this replica's store is host-local and the database holds runs of other hosts: their
    outputs cannot be compared here, nor this host's reports served there."""
    if store.shared:
        return
    with db.session() as s:
        others = s.scalars(
            select(Run.host).where(Run.host.is_not(None), Run.host != HOST).distinct().limit(6)
        ).all()
    if others:
        shown = ", ".join(sorted(others)[:5]) + (" and more" if len(others) > 5 else "")
        raise TierbotError(
            f"This replica ({HOST}) keeps outputs, logs and reports in its data dir ({settings.data_dir}), "
            f"but the database also holds runs of other hosts: {shown}. A comparison settled here could "
            f"not read their outputs, nor could they serve the reports written here. Set {SETTING} on "
            "every replica to a path they all mount (/mnt/shared/tierbot) or to s3://bucket/prefix."
        )


def unreadable(files: Iterable[FileEntry], where: str, why: str) -> str:
    """Which outputs cannot be read from the store, and why: a few of them by name."""
    listed = sorted({f.path for f in files})
    shown = ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")
    return f"{shown} in the artifact store {where}: {why}"


def local_size(location: str) -> int | None:
    try:
        return Path(location).stat().st_size
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_local(location: str) -> str | None:
    """A log or report at a local path; None when it is not there."""
    try:
        return Path(location).read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as exc:
        raise ArtifactUnavailable(f"{location} cannot be read: {exc.strerror}") from exc


class DirectoryStore:
    """The data dir (host-local) or a path every replica mounts (shared): one layout, one code.

    Everything is written atomically (a temporary file renamed), so that a replica reading from a shared
    path never sees half a blob or half a report."""

    def __init__(self, root: Path, shared: bool):
        self.root, self.shared = Path(root), shared
        self.blobs = BlobStore(self.root / "blobs")

    def publish(self, hashes: Iterable[str]) -> None:
        """Nothing to do: runs collect into the store itself."""

    def fetch(self, files: Iterable[FileEntry]) -> None:
        missing = [f for f in files if not self.blobs.path_of(f.hash).is_file()]
        if missing:
            why = "not there (removed, or written on another host)"
            raise ArtifactUnavailable(unreadable(missing, str(self.root), why))

    def put_log(self, path: Path) -> str | None:
        if not path.is_file():
            return None
        target = self.root / "logs" / path.name
        if target != path:  # written in the data dir, stored on the shared path
            write_atomically(target, copy_of(path))
            path.unlink()
        return str(target)

    def put_report(self, comparison_id: int, html: str) -> str:
        target = self.root / "reports" / f"comparison-{comparison_id}.html"
        write_atomically(target, lambda out: out.write(html.encode("utf-8")))
        return str(target)

    def read_text(self, location: str) -> str | None:
        return None if is_url(location) else read_local(location)

    def blob_location(self, hash: str) -> str:
        return str(self.blobs.path_of(hash))

    def size(self, location: str) -> int | None:
        return None if is_url(location) else local_size(location)

    def remove(self, location: str) -> None:
        if not is_url(location):
            with contextlib.suppress(FileNotFoundError):
                Path(location).unlink()
