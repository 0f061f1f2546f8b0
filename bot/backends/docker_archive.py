"""The code into a container and its workdir back out, as tar streams through the engine.

In: the checkout without `.git` (its alternates and remote name the bot's mirror), every entry owned by
the unprivileged user the command runs as, under one top directory.

Out: the container's workdir from `get_archive`, extracted into a fresh directory of the bot's where
the worker collects outputs as from a local sandbox (`bot.outputs.collect`). The tar is the engine's,
but names, links and sizes in it are the experiment's, so extraction trusts none of them:
- Python's `data` filter: no absolute names, no `..`, no device files, no set-id bits, links only to
  inside; whatever it refuses is left out and said in the log;
- a symlink that points out of the workdir (`outputs/etc -> /etc`) is recreated only after everything
  else is on disk, so nothing can be written through it, and `collect` then lists it, unread, as it does
  for a local run;
- a count and a byte bound while reading, so a tar with a million files or a terabyte of zeros fails
  the run instead of filling the disk.
"""

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from bot.backends.process import LogSink
from bot.errors import OutputsRejected
from bot.units import format_size

TOP = "work"  # the directory the archives hold: the container's workdir is <volume>/work
NOBODY = 65534
HEADER_BYTES = 64 * 1024  # tar headers per entry, counted against the raw bound (PAX headers may be long)


_REFUSALS = {
    tarfile.AbsolutePathError: "an absolute name",
    tarfile.OutsideDestinationError: "a name outside the workdir",
    tarfile.SpecialFileError: "a device or a pipe",
}


@dataclass
class CodeArchive:
    file: IO[bytes]
    files: int
    bytes: int


def code_archive(checkout: Path) -> CodeArchive:
    """The checkout as a tar under `work/`, without `.git`, owned by nobody. Links stay links."""
    spool = tempfile.SpooledTemporaryFile(max_size=16 * 1024**2)  # noqa: SIM115 (the caller closes it)
    counted = CodeArchive(spool, 0, 0)

    def own(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if PurePosixPath(info.name).name == ".git":
            return None  # a directory (or a worktree's file) left out with everything in it
        counted.files += 1
        counted.bytes += info.size if info.isreg() else 0
        info.uid = info.gid = NOBODY
        info.uname = info.gname = ""
        info.mode |= 0o200  # the owner may write: the command works in its copy
        return info

    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(checkout, arcname=TOP, recursive=True, filter=own)
    spool.seek(0)
    return counted


@dataclass(frozen=True)
class ExtractLimits:
    max_files: int
    max_bytes: int


def extract_workdir(
    chunks: Iterator[bytes], parent: Path, run_id: int, limits: ExtractLimits, sink: LogSink
) -> Path:
    """The archived workdir in a new directory under `parent`, which the caller removes. Raises
    OutputsRejected past the limits (having removed what it wrote)."""
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix=f"run-{run_id}-", dir=parent))
    guard = _Guard(dest, limits)
    raw_bound = limits.max_bytes + (limits.max_files + 1) * HEADER_BYTES
    try:
        with tarfile.open(fileobj=_Bounded(chunks, raw_bound), mode="r|") as archive:
            archive.extractall(dest, filter=guard)
        guard.link_out()
    except BaseException:
        _remove(dest)
        raise
    for refused in guard.refused:
        sink.line(f"[tierbot: not copied out of the container: {refused}]")
    return dest


class _Guard:
    """The extraction filter: strips the top directory, counts, and sorts out links that point out."""

    def __init__(self, dest: Path, limits: ExtractLimits):
        self.dest, self.limits = dest, limits
        self.files = self.bytes = 0
        self.links_out: list[tuple[str, str]] = []
        self.refused: list[str] = []

    def __call__(self, member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        self._count(member)
        if member.name.rstrip("/") == TOP:
            return None  # the workdir itself: dest stands for it, private to the bot
        if not member.name.startswith(f"{TOP}/"):
            self.refused.append(f"{member.name} (outside the workdir)")
            return None
        inner = member.replace(name=member.name[len(TOP) + 1 :], deep=False)
        if inner.islnk() and inner.linkname.startswith(f"{TOP}/"):  # hard links name the archive's paths
            inner = inner.replace(linkname=inner.linkname[len(TOP) + 1 :], deep=False)
        try:
            return tarfile.data_filter(inner, path)
        except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
            if not inner.issym():
                self.refused.append(f"{inner.name} (a hard link out of the workdir)")
                return None
            self.links_out.append((inner.name, inner.linkname))  # made last, see link_out
        except tarfile.FilterError as exc:  # said in our words: the filter's name the bot's paths
            self.refused.append(
                f"{inner.name} ({_REFUSALS.get(type(exc), 'refused by the extraction filter')})"
            )
        return None

    def _count(self, member: tarfile.TarInfo) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise OutputsRejected(f"the container's workdir holds more than {self.limits.max_files} entries")
        if member.isreg():
            self.bytes += member.size
            if self.bytes > self.limits.max_bytes:
                raise OutputsRejected(
                    f"the container's workdir holds more than {format_size(self.limits.max_bytes)}"
                )

    def link_out(self) -> None:
        """The symlinks that point out of the workdir, as links (never followed): made after every
        other entry, so none was written through them; collect() lists them as not read."""
        root = self.dest.resolve()
        for name, target in self.links_out:
            link = self.dest / name
            if link.parent.resolve().is_relative_to(root) and not os.path.lexists(link):
                os.symlink(target, link)


class _Bounded(io.RawIOBase):
    """The engine's chunks as a file, refusing to read past `bound` bytes."""

    def __init__(self, chunks: Iterator[bytes], bound: int):
        self._chunks, self._bound = chunks, bound
        self._buffer = memoryview(b"")  # a view: tarfile reads 10 KiB at a time from 2 MiB chunks
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = memoryview(chunk)
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        self._read += count
        if self._read > self._bound:
            raise OutputsRejected(f"the container's workdir is larger than {format_size(self._bound)}")
        return count


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
