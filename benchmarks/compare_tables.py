"""Table diff speed: tierbot against reading the two files with polars (the floor) and datacompy-polars.

    python benchmarks/compare_tables.py [--format parquet|csv|both] [--rows N] [--memory-limit 500MB]
                                        [--threads N] [--dir DIR] [--skip-datacompy] [--repeat 3]

Generates main's table (`id` and 9 float columns, N rows) and the branch's: 0.1% of cells changed (half
within the tolerance abs 1e-6, half beyond it), 0.1% of rows removed and 0.1% added, rows shuffled. Then
runs each contender in its own child process (so peak memory is its own: VmHWM) on warm files:

- floor: `polars.read_parquet` / `read_csv` of both files;
- join floor: the least any keyed diff in DuckDB does: read both files, hash each row's values, one full
  outer join on `id`, count the rows whose hashes differ (no values fetched, nothing written);
- tierbot: what `tierbot diff` does on the two files: `outputs_of` (hashes both) and `compare_outputs`
  with the table's key `id` and tolerance, optionally under `--memory-limit` with a spill directory;
- datacompy: read both with polars and `PolarsCompare(join_columns="id", abs_tol=1e-6)`.

The floor, the join floor and tierbot run `--repeat` times each, taking turns; their median times and
highest peaks are compared (datacompy runs once). Prints each time and peak memory, and the ratios.
Defaults: 10,000,000 rows of Parquet, 1,000,000 of CSV.
Targets (2-core machine): Parquet 10M rows, tierbot ≤ 1.8× the floor, ≥ 4× faster than datacompy, peak
≤ 1.5 GB (and under the cap when one is set); CSV 1M rows, tierbot ≤ 3× the floor.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ABS_TOL = 1e-6
VALUE_COLUMNS = [f"x{i}" for i in range(9)]


def generate(rows: int, directory: Path, fmt: str) -> tuple[Path, Path]:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(7)
    values = {name: rng.standard_normal(rows) for name in VALUE_COLUMNS}
    base = pl.DataFrame({"id": np.arange(rows, dtype=np.int64), **values})
    changed = {name: column.copy() for name, column in values.items()}
    cells = rows * len(VALUE_COLUMNS) // 1000
    where_rows, where_columns = rng.integers(0, rows, cells), rng.integers(0, len(VALUE_COLUMNS), cells)
    amounts = np.where(np.arange(cells) % 2 == 0, ABS_TOL / 1000, 0.5)  # half within tolerance, half beyond
    for index, name in enumerate(VALUE_COLUMNS):
        hit = where_columns == index
        changed[name][where_rows[hit]] += amounts[hit]
    keep = np.ones(rows, dtype=bool)
    keep[rng.choice(rows, rows // 1000, replace=False)] = False
    head = pl.DataFrame({"id": np.arange(rows, dtype=np.int64), **changed}).filter(pl.Series(keep))
    extra = rows // 1000
    added = pl.DataFrame(
        {"id": np.arange(rows, rows + extra, dtype=np.int64)}
        | {name: rng.standard_normal(extra) for name in VALUE_COLUMNS}
    )
    head = pl.concat([head, added]).sample(fraction=1.0, shuffle=True, seed=3)
    paths = directory / f"main.{fmt}", directory / f"branch.{fmt}"
    for frame, path in zip((base, head), paths, strict=True):
        frame.write_parquet(path) if fmt == "parquet" else frame.write_csv(path)
    return paths


def peak_memory() -> int:
    """This process's peak resident memory in bytes (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def task_floor(base: Path, head: Path, fmt: str, args: argparse.Namespace) -> dict:
    import polars as pl

    read = pl.read_parquet if fmt == "parquet" else pl.read_csv
    started = time.perf_counter()
    frames = read(base), read(head)
    return {"seconds": time.perf_counter() - started, "rows": [len(f) for f in frames]}


def task_join_floor(base: Path, head: Path, fmt: str, args: argparse.Namespace) -> dict:
    import duckdb

    config = {"preserve_insertion_order": False} | ({"threads": args.threads} if args.threads else {})
    con = duckdb.connect(config=config)
    values = ", ".join(VALUE_COLUMNS)
    narrow = [f"(SELECT id, hash({values}) AS fp FROM '{path}')" for path in (base, head)]
    started = time.perf_counter()
    differing = con.execute(
        f"SELECT count(*) FROM {narrow[0]} b FULL OUTER JOIN {narrow[1]} h ON b.id = h.id "
        "WHERE b.fp IS DISTINCT FROM h.fp"
    ).fetchone()[0]
    return {"seconds": time.perf_counter() - started, "rows_differing": differing}


def task_tierbot(base: Path, head: Path, fmt: str, args: argparse.Namespace) -> dict:
    from bot.cli.diff import outputs_of
    from bot.compare import Options, compare_outputs
    from bot.spec import CompareSection

    spec = CompareSection.model_validate(
        {"tables": [{"file": head.name, "key": ["id"], "tolerance": {"abs": ABS_TOL}}]}
    )
    spill = Path(tempfile.mkdtemp(prefix="spill-", dir=args.dir))
    options = Options(memory_limit=args.memory_limit, temp_dir=spill, threads=args.threads)
    started = time.perf_counter()
    old, new = outputs_of(base, head)  # hashed (the manifests), as `tierbot diff` does
    comparison = compare_outputs(old.manifest, new.manifest, old.locate, new.locate, spec, options)
    seconds = time.perf_counter() - started
    table = comparison.tables[0]
    return {
        "seconds": seconds,
        "verdict": comparison.verdict,
        "summary": comparison.files[0].summary,
        "rows_changed": table.rows_changed,
        "positional": table.positional,
        "problems": [p.message for p in comparison.problems],
    }


def task_datacompy(base: Path, head: Path, fmt: str, args: argparse.Namespace) -> dict:
    import polars as pl
    from datacompy import PolarsCompare

    read = pl.read_parquet if fmt == "parquet" else pl.read_csv
    started = time.perf_counter()
    compare = PolarsCompare(read(head), read(base), join_columns="id", abs_tol=ABS_TOL, rel_tol=0)
    unequal = sum(stat["unequal_cnt"] for stat in compare.column_stats)
    return {"seconds": time.perf_counter() - started, "unequal_cells": unequal}


TASKS = {
    "floor": task_floor,
    "join floor": task_join_floor,
    "tierbot": task_tierbot,
    "datacompy": task_datacompy,
}


def run_child(task: str, base: Path, head: Path, fmt: str, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        task,
        "--format",
        fmt,
        "--base",
        str(base),
        "--head",
        str(head),
    ]
    if args.memory_limit:
        command += ["--memory-limit", args.memory_limit]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.dir:
        command += ["--dir", str(args.dir)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_run(done: list[dict]) -> dict:
    """The run of median time, with every run's time and the highest peak; the first error if any."""
    failed = [result for result in done if "error" in result]
    if failed:
        return failed[0]
    ordered = sorted(done, key=lambda result: result["seconds"])
    return ordered[len(ordered) // 2] | {
        "all_seconds": [result["seconds"] for result in done],
        "peak_bytes": max(result["peak_bytes"] for result in done),
    }


def bench(fmt: str, rows: int, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tierbot-bench-", dir=args.dir) as scratch:
        started = time.perf_counter()
        base, head = generate(rows, Path(scratch), fmt)
        sizes = base.stat().st_size + head.stat().st_size
        print(
            f"\n{fmt}: {rows:,} rows × 10 columns, {sizes / 1e6:,.0f} MB in all, made in "
            f"{time.perf_counter() - started:.1f} s"
        )
        run_child("floor", base, head, fmt, args)  # warm the page cache and the imports
        # The floor, the join floor and tierbot take turns, `--repeat` times each: on a shared 2-core
        # machine one run of any can be off by a third, so each is its median. datacompy runs once
        # (15-25 s, 6 GB).
        runs: dict[str, list[dict]] = {"floor": [], "join floor": [], "tierbot": []}
        for _ in range(args.repeat):
            for task in runs:
                runs[task].append(run_child(task, base, head, fmt, args))
        if not args.skip_datacompy:
            runs["datacompy"] = [run_child("datacompy", base, head, fmt, args)]
    cap = f" (memory limit {args.memory_limit})" if args.memory_limit else ""
    results = {task: median_run(done) for task, done in runs.items()}
    for task, result in results.items():
        if "error" in result:
            print(f"  {task:>10}: failed: {result['error']}")
            continue
        extra = {k: v for k, v in result.items() if k not in ("seconds", "peak_bytes", "all_seconds")}
        label = task + (cap if task == "tierbot" else "")
        each = " / ".join(f"{seconds:.2f}" for seconds in result["all_seconds"])
        print(
            f"  {label:>10}: {result['seconds']:6.2f} s (runs: {each}), "
            f"peak {result['peak_bytes'] / 1e6:7,.0f} MB  {extra}"
        )
    for upper, lower in (("tierbot", "floor"), ("join floor", "floor"), ("tierbot", "join floor")):
        if "seconds" in results.get(upper, {}) and "seconds" in results.get(lower, {}):
            print(f"  {upper} / {lower}: {results[upper]['seconds'] / results[lower]['seconds']:.2f}×")
    if "seconds" in results.get("tierbot", {}) and "seconds" in results.get("datacompy", {}):
        ratio = results["datacompy"]["seconds"] / results["tierbot"]["seconds"]
        print(f"  datacompy / tierbot: {ratio:.2f}× faster")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--format", choices=["parquet", "csv", "both"], default="both")
    parser.add_argument("--rows", type=int, default=None, help="rows (default 10M Parquet, 1M CSV)")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory cap for tierbot, e.g. 500MB")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dir", type=Path, default=None, help="where files and spill go (default: temp)")
    parser.add_argument("--skip-datacompy", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the floors and of tierbot (medians)")
    parser.add_argument("--child", choices=sorted(TASKS), help=argparse.SUPPRESS)
    parser.add_argument("--base", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--head", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.child:
        fmt = "parquet" if args.format == "parquet" else "csv"
        result = TASKS[args.child](args.base, args.head, fmt, args)
        print(json.dumps(result | {"peak_bytes": peak_memory()}))
        return
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
    for fmt in ("parquet", "csv") if args.format == "both" else (args.format,):
        default = 10_000_000 if fmt == "parquet" else 1_000_000
        bench(fmt, args.rows or default, args)


if __name__ == "__main__":
    main()
