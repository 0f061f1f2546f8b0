"""What a run produced: its output files by relative path, with size and content hash, and the entries
of its outputs directory that were not read (a link out of the workspace, a FIFO...), each with why."""

from pydantic import BaseModel, ConfigDict


class FileEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str  # POSIX path relative to the outputs directory
    size: int
    hash: str  # xxh3-128, hex


class SkippedEntry(BaseModel):
    """Something the experiment left that tierbot did not read; the comparison lists it as a problem."""

    model_config = ConfigDict(frozen=True)

    path: str  # POSIX path relative to the outputs directory; bytes that are not UTF-8 as `\xe9`
    reason: str  # for people: "a symlink to /etc/passwd, outside the workspace: not read"


class Manifest(BaseModel):
    files: dict[str, FileEntry] = {}
    skipped: list[SkippedEntry] = []  # sorted by path

    def total_size(self) -> int:
        return sum(f.size for f in self.files.values())
