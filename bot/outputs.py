"""Collecting what an experiment wrote, safely, into a content-addressed blob store.

The experiment is untrusted: its outputs directory may be a symlink, hold symlinks to `/etc`, fifos,
or millions of files. `collect` never follows a link out of the workspace, never descends into a
symlinked directory, never opens anything but a regular file, and checks the limits before copying.
Fifos, sockets and devices carry no content to compare and are skipped; a symlinked directory inside
the workspace is skipped too (its files are not "in" the outputs directory).
"""

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import xxhash

from bot.errors import OutputsRejected
from bot.manifest import FileEntry, Manifest
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
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
            try:
                with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                    shutil.copyfileobj(src, out, CHUNK)
                os.chmod(temp, 0o444)  # blobs are shared between runs: nobody edits one in place
                os.replace(temp, target)  # readers see the whole blob or none
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        return Blob(hash=hash, size=target.stat().st_size)


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
    """Every file under `workdir/outputs`, stored in `store`; raises OutputsRejected on any unsafe thing."""
    workspace = Path(workdir).resolve(strict=True)
    root = _outputs_root(workspace, outputs)
    found = sorted(_scan(workspace, root, outputs), key=lambda f: f.name)
    _check_limits(found, outputs, limits)
    files = {}
    for item in found:
        blob = store.put(item.source)
        files[item.name] = FileEntry(path=item.name, size=blob.size, hash=blob.hash)
    return Manifest(files=files)


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


def _scan(workspace: Path, root: Path, outputs: str) -> Iterator[_Found]:
    """Regular files under `root`, and symlinks to regular files inside the workspace; nothing else."""
    for entry in _entries(root):
        name = Path(entry.path).relative_to(root).as_posix()
        shown = f"{outputs}/{name}"
        _check_name(name, shown)
        if entry.is_symlink():
            target = Path(os.path.realpath(entry.path))
            if not target.is_relative_to(workspace):
                raise OutputsRejected(
                    f"{shown} is a symlink to {target}, outside the workspace; outputs must be files "
                    f"the experiment wrote, not links to the machine's files"
                )
            info = _stat(target)
            if info is not None and stat.S_ISREG(info.st_mode):
                yield _Found(name, target, info.st_size)
            # links to directories are not followed, and dangling links have no content
        elif entry.is_file(follow_symlinks=False):
            yield _Found(name, Path(entry.path), entry.stat(follow_symlinks=False).st_size)
        # fifos, sockets and devices: never opened (reading a fifo would hang the worker)


def _entries(directory: Path) -> Iterator[os.DirEntry]:
    """Every entry below `directory`, descending only into real directories (no recursion limit)."""
    pending = [directory]
    while pending:
        with os.scandir(pending.pop()) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                else:
                    yield entry


def _check_name(name: str, shown: str) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise OutputsRejected(
            f"{shown.encode('utf-8', 'surrogateescape')!r} has a file name that is not UTF-8; rename it"
        ) from None


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _check_limits(found: list[_Found], outputs: str, limits: OutputLimits) -> None:
    if len(found) > limits.max_files:
        raise OutputsRejected(
            f"the outputs directory '{outputs}/' holds {len(found)} files; the limit is {limits.max_files}"
        )
    total = sum(f.size for f in found)
    if total > limits.max_bytes:
        raise OutputsRejected(
            f"the outputs directory '{outputs}/' holds {format_size(total)} ({total} bytes); "
            f"the limit is {format_size(limits.max_bytes)}"
        )


def manifest_of(directory: Path) -> Manifest:
    """Every file under `directory`, hashed where it lies (nothing is copied), by the rules of `collect`.

    For `tierbot diff`, which compares directories outside any run: links out of the directory are
    refused, linked directories, fifos and devices skipped. Read a file back as `directory / entry.path`.
    """
    root = Path(directory).resolve(strict=True)
    files = {}
    for item in sorted(_scan(root, root, str(directory)), key=lambda f: f.name):
        files[item.name] = FileEntry(path=item.name, size=item.size, hash=file_hash(item.source))
    return Manifest(files=files)
