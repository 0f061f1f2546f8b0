"""Collecting what an experiment wrote, safely, into a content-addressed blob store.

The experiment is untrusted: its outputs directory may be a symlink, hold symlinks to `/etc`, FIFOs,
or millions of files. `collect` never follows a link out of the workspace, never descends into a
symlinked directory, never opens anything but a regular file, and checks the limits before copying.
What it does not read — links out of the workspace, to directories or to nothing, FIFOs, sockets,
devices, names that are not UTF-8 — is listed in the manifest with the reason, not fatal: one stray
link must not throw away an hour of GPU time. Only what leaves nothing safe to collect fails the run:
no outputs directory, one that resolves outside the workspace, more files or bytes than the limits.
"""

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import xxhash

from bot.errors import OutputsRejected
from bot.manifest import FileEntry, Manifest, SkippedEntry
from bot.units import format_size

CHUNK = 1024 * 1024
HASH_CHUNK = 4 * 1024 * 1024  # large enough that per-call overhead vanishes, small enough for L2/L3
_HASH = re.compile(r"^[0-9a-f]{32}$")


def file_hash(path: Path) -> str:
    """xxh3-128 of a file's content, hex: identical outputs are recognized at disk speed.

    Unbuffered `readinto` one reused buffer: no copy through Python's file buffer and no new bytes object
    per chunk, which is what kept the hash below memory speed (benchmarks/hashing.py: ~17 GB/s from page
    cache on a 2-core box, against ~11 GB/s reading 1 MiB chunks). A small file is one read.
    """
    with open(path, "rb", buffering=0) as handle:
        if os.fstat(handle.fileno()).st_size <= HASH_CHUNK:
            return xxhash.xxh3_128_hexdigest(handle.readall())
        digest = xxhash.xxh3_128()
        buffer = bytearray(HASH_CHUNK)
        view = memoryview(buffer)
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


@dataclass(frozen=True)
class Blob:
    hash: str
    size: int


class BlobMismatch(ValueError):
    """Content that came back under a hash is not what the hash says: corrupted or tampered with."""


def write_atomically(
    target: Path, fill: Callable[[BinaryIO], None], read_only: bool = False, expected_hash: str | None = None
) -> None:
    """`target` written by `fill` into a temporary file beside it, then renamed over it: readers, on this
    host or another one sharing the directory, see all of it or none. With `expected_hash`, the content is
    kept only when it has that hash (BlobMismatch otherwise)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
        if expected_hash is not None and (found := file_hash(Path(temp))) != expected_hash:
            raise BlobMismatch(f"its content hashes to {found}, not {expected_hash}")
        if read_only:
            os.chmod(temp, 0o444)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def copy_of(path: Path) -> Callable[[BinaryIO], None]:
    """What writes `path`'s content to a file (for `write_atomically`)."""

    def copy(out: BinaryIO) -> None:
        with open(path, "rb") as src:
            shutil.copyfileobj(src, out, CHUNK)

    return copy


class BlobStore:
    """Files by content hash under `root/ab/cdef...`, each stored once, read-only, written atomically."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path_of(self, hash: str) -> Path:
        if not _HASH.match(hash):  # hashes come back from the database; never let one be a path
            raise ValueError(f"not a blob hash: {hash!r}")
        return self.root / hash[:2] / hash[2:]

    def put(self, path: Path) -> Blob:
        hash = file_hash(path)
        target = self.path_of(hash)
        if not target.exists():  # the same content from another run is already here: no copy
            # blobs are shared between runs: nobody edits one in place
            write_atomically(target, copy_of(path), read_only=True)
        return Blob(hash=hash, size=target.stat().st_size)

    def fill(self, hash: str, fetch: Callable[[BinaryIO], None]) -> Path:
        """The blob `hash` here, written by `fetch` (from another store) when it is not here yet, and kept
        only when its content has that hash: what comes back from elsewhere is verified before any use."""
        target = self.path_of(hash)
        if not target.exists():
            write_atomically(target, fetch, read_only=True, expected_hash=hash)
        return target


@dataclass(frozen=True)
class OutputLimits:
    max_files: int
    max_bytes: int


@dataclass(frozen=True)
class _Found:
    name: str  # POSIX path relative to the outputs directory
    source: Path  # what to read: the file itself, or a symlink's target inside the workspace
    size: int


def collect(workdir: Path, outputs: str, store: BlobStore, limits: OutputLimits) -> Manifest:
    """Every file under `workdir/outputs`, stored in `store`, and every entry that was not read, with why.

    Raises OutputsRejected only when nothing can be collected safely: no outputs directory, one that
    resolves outside the workspace, or more files or bytes than the limits allow.
    """
    workspace = Path(workdir).resolve(strict=True)
    root = _outputs_root(workspace, outputs)
    found, skipped = _sorted(_within_limits(_walk(workspace, root), outputs, limits))
    files = {}
    for item in found:
        blob = store.put(item.source)
        files[item.name] = FileEntry(path=item.name, size=blob.size, hash=blob.hash)
    return Manifest(files=files, skipped=skipped)


def _outputs_root(workspace: Path, outputs: str) -> Path:
    declared = workspace / outputs
    if not declared.exists():
        raise OutputsRejected(f"the experiment did not create its outputs directory '{outputs}/'")
    root = declared.resolve()
    if not root.is_relative_to(workspace):
        raise OutputsRejected(
            f"the outputs directory '{outputs}/' resolves to {root}, outside the workspace; "
            f"tierbot reads outputs only from inside the checkout"
        )
    if not root.is_dir():
        raise OutputsRejected(f"'{outputs}' is not a directory; run.outputs must name the outputs directory")
    return root


def _walk(workspace: Path, root: Path) -> Iterator[_Found | SkippedEntry]:
    """Regular files under `root` (and symlinks to regular files inside the workspace), and everything else
    with the reason it was not read: one at a time, so that a caller can stop as soon as it has enough."""
    pending = [root]
    while pending:  # a stack, not recursion: a hostile tree may be deeper than Python's recursion limit
        with os.scandir(pending.pop()) as listing:
            for entry in listing:
                name = Path(entry.path).relative_to(root).as_posix()
                is_dir = entry.is_dir(follow_symlinks=False)
                if not _is_utf8(entry.name):  # the database, JSON and every report need text
                    yield _not_utf8(name, is_dir)
                elif is_dir:
                    pending.append(Path(entry.path))
                else:
                    yield _entry(workspace, entry, name)


def _sorted(entries: Iterable[_Found | SkippedEntry]) -> tuple[list[_Found], list[SkippedEntry]]:
    """The files to read and the entries skipped, each sorted by name."""
    found: list[_Found] = []
    skipped: list[SkippedEntry] = []
    for item in entries:
        (found if isinstance(item, _Found) else skipped).append(item)
    return sorted(found, key=lambda f: f.name), sorted(skipped, key=lambda s: s.path)


def _entry(workspace: Path, entry: os.DirEntry, name: str) -> _Found | SkippedEntry:
    if entry.is_symlink():
        return _link(workspace, entry, name)
    info = entry.stat(follow_symlinks=False)
    if stat.S_ISREG(info.st_mode):
        return _Found(name, Path(entry.path), info.st_size)
    # never opened: reading a FIFO would hang the worker, a device could stream forever
    return SkippedEntry(path=name, reason=f"{_special(info.st_mode)}: not read")


def _link(workspace: Path, entry: os.DirEntry, name: str) -> _Found | SkippedEntry:
    """A symlink is read only when it ends at a regular file inside the workspace."""
    target = Path(os.path.realpath(entry.path))
    if not target.is_relative_to(workspace):
        return SkippedEntry(
            path=name, reason=f"a symlink to {_text(target)}, outside the workspace: not read"
        )
    try:
        info = target.stat()
    except FileNotFoundError:
        return SkippedEntry(
            path=name, reason=f"a dangling symlink (to {_text(os.readlink(entry.path))}): not read"
        )
    except OSError as exc:
        return SkippedEntry(path=name, reason=f"a symlink that cannot be followed ({exc.strerror}): not read")
    if stat.S_ISREG(info.st_mode):
        return _Found(name, target, info.st_size)
    if stat.S_ISDIR(info.st_mode):  # its files are not "in" the outputs directory, and it could loop
        return SkippedEntry(path=name, reason="a symlink to a directory: not followed")
    return SkippedEntry(path=name, reason=f"a symlink to {_special(info.st_mode)}: not read")


def _special(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"))
    kinds += ((stat.S_ISBLK, "a block device"),)
    return next((kind for test, kind in kinds if test(mode)), "a special file")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.scandir gives undecodable bytes as lone surrogates
        return False
    return True


def _text(path: str | Path) -> str:
    """A path as text that any database and report takes: each byte that is not UTF-8 shown as `\\xe9`."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _not_utf8(name: str, is_dir: bool) -> SkippedEntry:
    shown = _text(name)
    if is_dir:
        return SkippedEntry(path=shown, reason="a directory name that is not UTF-8: its files were not read")
    return SkippedEntry(path=shown, reason="a file name that is not UTF-8: not read")


def _within_limits(
    entries: Iterable[_Found | SkippedEntry], outputs: str, limits: OutputLimits
) -> Iterator[_Found | SkippedEntry]:
    """The entries, refused at the first one past a limit: counting a whole tree first took seconds for
    hundreds of thousands of files before saying no. Skipped entries are stored too: they count."""
    total = 0
    for count, item in enumerate(entries, 1):
        if count > limits.max_files:
            raise OutputsRejected(
                f"the outputs directory '{outputs}/' holds more than {limits.max_files} files; "
                f"the limit is {limits.max_files}"
            )
        if isinstance(item, _Found):
            total += item.size
            if total > limits.max_bytes:
                raise OutputsRejected(
                    f"the outputs directory '{outputs}/' holds at least {format_size(total)} "
                    f"({total} bytes); the limit is {format_size(limits.max_bytes)}"
                )
        yield item


def manifest_of(directory: Path) -> Manifest:
    """Every file under `directory`, hashed where it lies (nothing is copied), by the rules of `collect`.

    For `tierbot diff`, which compares directories outside any run: links out of the directory, linked
    directories, FIFOs and devices are skipped, with why. Read a file back as `directory / entry.path`.
    """
    root = Path(directory).resolve(strict=True)
    found, skipped = _sorted(_walk(root, root))
    files = {
        item.name: FileEntry(path=item.name, size=item.size, hash=file_hash(item.source)) for item in found
    }
    return Manifest(files=files, skipped=skipped)
