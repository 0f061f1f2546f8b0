"""What a run produced: its output files by relative path, with size and content hash."""

from pydantic import BaseModel, ConfigDict


class FileEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str  # POSIX path relative to the outputs directory
    size: int
    hash: str  # xxh3-128, hex


class Manifest(BaseModel):
    files: dict[str, FileEntry] = {}

    def total_size(self) -> int:
        return sum(f.size for f in self.files.values())
