"""Bounded input (issue 19): what hostile input cost before its bound, and what it costs now.

- A YAML alias bomb in tierbot.yaml: parsed and walked as before (PyYAML, validation, the spec's
  fingerprint), against `parse_spec` refusing it; each level is nine times the values of the last.
- `(a+)+$` on a line of `a`s ending in `!`: Python's `re` against RE2, as `compare.mask` runs it now.
- Masking a log with one `compare.mask` pattern: `re` line by line (before), RE2 line by line, and RE2
  over the whole file at once (now: a call into RE2 costs microseconds, whatever it matches).
- Refusing an outputs directory with too many files: walking all of it (before), against stopping at
  the first file past the limit (now).
"""

import argparse
import contextlib
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from bot.compare.text import masked
from bot.errors import OutputsRejected, SpecInvalid
from bot.outputs import BlobStore, OutputLimits, _walk, collect
from bot.spec import Spec, compile_mask, parse_spec

SPEC = (
    "run: {command: python train.py}\ndeploy:\n  artifact: model.pkl\n  predict: serve.py:predict\n  smoke:\n"
)


def alias_bomb(levels: int) -> str:
    lines = ['    l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return SPEC + "\n".join(lines) + "\n"


def seconds(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def refused(function: Callable[[], object], *errors: type[Exception]) -> Callable[[], None]:
    def call() -> None:
        with contextlib.suppress(*errors):
            function()

    return call


def yaml_bombs(max_levels: int) -> None:
    print("YAML alias bomb in tierbot.yaml: levels, bytes, before (load, validate, fingerprint), now")
    for levels in range(4, max_levels + 1):
        text = alias_bomb(levels)
        before = seconds(lambda text=text: Spec.model_validate(yaml.safe_load(text)).fingerprint())
        now = seconds(refused(lambda text=text: parse_spec(text), SpecInvalid))
        print(f"  {levels}  {len(text):4d} B  {before:9.3f} s  {now * 1000:7.3f} ms")


def catastrophic_regex(max_length: int) -> None:
    print("(a+)+$ on 'a' * n + '!': n, Python re, RE2")
    pattern, linear = re.compile("(a+)+$"), compile_mask("(a+)+$")
    for length in range(16, max_length + 1, 2):
        line = "a" * length + "!"
        before = seconds(lambda line=line: pattern.sub("<masked>", line))
        now = seconds(lambda line=line: linear.sub("<masked>", line))
        print(f"  {length:2d}  {before:8.3f} s  {now * 1e6:7.1f} µs")
    line = "a" * 1_000_000 + "!"
    print(f"  RE2 on a 1 MB line: {seconds(lambda: linear.sub('<masked>', line)) * 1000:.1f} ms")


def masking(lines: int) -> None:
    log = [f"step {i} loss 0.{i % 99991:05d} took 12.5s run-{i}" for i in range(lines)]
    pattern, linear = re.compile(r"run-\d+"), compile_mask(r"run-\d+")
    builtins = seconds(lambda: masked(log, []))
    print(f"Masking `run-\\d+` in {lines:,} lines, each a match (built-in masks alone: {builtins:.3f} s):")
    print(f"  re, line by line (before): {seconds(lambda: [pattern.sub('<masked>', x) for x in log]):.3f} s")
    print(f"  RE2, line by line:         {seconds(lambda: [linear.sub('<masked>', x) for x in log]):.3f} s")
    print(f"  RE2, whole file (now):     {seconds(lambda: masked(log, [linear])) - builtins:.3f} s")


def output_walk(files: int, limit: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outputs = Path(tmp) / "work" / "outputs"
        for index in range(files):
            folder = outputs / f"d{index // 1000}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index}.txt").touch()
        work = Path(tmp) / "work"
        full = seconds(lambda: sum(1 for _ in _walk(work, outputs)))
        store, limits = BlobStore(Path(tmp) / "blobs"), OutputLimits(max_files=limit, max_bytes=10**12)
        now = seconds(refused(lambda: collect(work, "outputs", store, limits), OutputsRejected))
        what = f"Refusing {files:,} output files (limit {limit:,})"
        print(f"{what}: walking them all {full:.3f} s, stopping past the limit {now:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", type=int, default=7, help="deepest alias bomb (8: ~10 s, 2 GB before)")
    parser.add_argument("--length", type=int, default=24, help="longest line for `re` (each +2: 4x the time)")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=10_000)
    args = parser.parse_args()
    yaml_bombs(args.levels)
    catastrophic_regex(args.length)
    masking(args.lines)
    output_walk(args.files, args.limit)


if __name__ == "__main__":
    main()
