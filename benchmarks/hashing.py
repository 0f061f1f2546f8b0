"""Hashing speed of identical outputs: `file_hash` on a large file from the page cache.

    python benchmarks/hashing.py [--size-gb 2] [--repeat 3] [--dir /tmp]

Writes a file of random-looking bytes, reads it once to warm the page cache, then hashes it `--repeat`
times with `bot.outputs.file_hash` and prints the best and median GB/s (1 GB = 10^9 bytes), next to a
plain 1 MiB `read()` loop for reference. Target: at least 5 GB/s. The file is removed afterwards.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import xxhash

from bot.outputs import file_hash

BLOCK = 64 * 1024 * 1024


def write_file(path: Path, size: int) -> None:
    """Random 64 MiB block repeated: incompressible enough, and quick to write."""
    block = os.urandom(BLOCK)
    with open(path, "wb") as out:
        written = 0
        while written < size:
            part = block[: min(BLOCK, size - written)]
            out.write(part)
            written += len(part)


def plain_read(path: Path) -> str:
    digest = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def timed(function, path: Path, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function(path)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the file (default: temp dir)")
    args = parser.parse_args()
    size = int(args.size_gb * 1e9)
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        path = Path(scratch) / "big.bin"
        write_file(path, size)
        plain_read(path)  # warm the page cache
        assert file_hash(path) == plain_read(path), "file_hash disagrees with a plain streaming xxh3-128"
        for name, function in (("file_hash", file_hash), ("1 MiB read() loop", plain_read)):
            times = timed(function, path, args.repeat)
            best, median = size / min(times) / 1e9, size / statistics.median(times) / 1e9
            print(f"{name:>18}: {size / 1e9:.1f} GB, best {best:.1f} GB/s, median {median:.1f} GB/s")


if __name__ == "__main__":
    main()
