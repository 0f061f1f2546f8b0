"""Tables (CSV, TSV, Parquet, JSON Lines): a keyed, tolerance-aware diff in DuckDB, with bounded memory.

Each comparison gets its own DuckDB connection, capped by `Options` (`memory_limit`, `threads`) and
spilling to a scratch directory under `Options.temp_dir`. `memory_limit` bounds the process while it
compares (see `duckdb_memory`), not only DuckDB's buffers. Reading is `tables_read`, pairing rows and
writing the rows that differ is `tables_join`, counting and examples are `tables_stats`.

**The key** is tierbot.yaml's `key` for the table. Without one it is detected, deterministically: the first
column present on both sides named `id`, then `key`, then ending in `_id` (case-insensitive, in main's
column order) that is unique in main's table; else main's first column if it is unique on both sides;
else there is no key and rows are compared by row number (the summary says so).

**Tolerance** per column: `|branch − main| ≤ abs + rel·|main|` from the table's `columns`, else its
`tolerance`; a table not listed in tierbot.yaml is compared exactly. NULL equals NULL and NaN equals NaN;
a non-finite value is within tolerance only of itself. Columns of different types on the two sides are
compared as numbers when both are numeric, else as text. Text formats have no declared types, so a
numeric column sniffed as BIGINT on one side and DOUBLE on the other is not a schema change there.
"""

import os
import re
import tempfile
from pathlib import Path

import duckdb

from bot.compare.files import SIDE_NAMES, Options, Outcome, Pair, Rules, Side, size_change
from bot.compare.model import FileProblem, SchemaChange, TableDiff
from bot.compare.tables_join import KeyColumn, RowPairing, ValueColumn, comparable_type
from bot.compare.tables_read import SideTable, TableUnreadable, is_numeric, open_side, reason
from bot.compare.tables_stats import counts, examples, one_sided_keys
from bot.spec import TableFile, Tolerance

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
MIN_DUCKDB_MEMORY = 32 * 2**20


def parse_size(text: str) -> int | None:
    """`500MB` → 500_000_000 (DuckDB's units: KB = 1000, KiB = 1024); None when it isn't a size."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        return None
    try:
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    except ValueError:
        return None


def _resident_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def duckdb_memory(limit: str) -> str:
    """The cap is for the whole process while it compares: DuckDB gets what the process does not already
    hold, less a quarter for what DuckDB allocates outside its buffer manager (Parquet readers, join
    probe buffers: about 80 MB beyond its limit in a 10M-row join, measured) —
    but never less than half the cap, so a process that is already large still gets a working budget."""
    total = parse_size(limit)
    if total is None:
        return limit  # a form DuckDB knows and we don't (e.g. a percentage): DuckDB judges it
    budget = max(total - _resident_bytes() - total // 4, total // 2, MIN_DUCKDB_MEMORY)
    return f"{budget // 2**20}MiB"


def _connect(options: Options, scratch: Path) -> duckdb.DuckDBPyConnection:
    config: dict[str, str | int | bool] = {
        "temp_directory": str(scratch / "spill"),
        "preserve_insertion_order": False,  # the diff never depends on row order; not keeping it is faster
    }
    if options.memory_limit:
        config["memory_limit"] = duckdb_memory(options.memory_limit)
    if options.threads:
        config["threads"] = options.threads
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET enable_progress_bar = false")  # a library prints nothing on the caller's terminal
    return con


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def schema_changes(base: SideTable, head: SideTable) -> list[SchemaChange]:
    """Columns removed or retyped (in main's order), then columns added (in the branch's order)."""
    found = []
    for name, base_type in base.columns.items():
        head_type = head.columns.get(name)
        if head_type is None:
            found.append(SchemaChange(column=name, change="removed", base_type=base_type))
        elif head_type != base_type:
            sniffed = base.textual and head.textual and is_numeric(base_type) and is_numeric(head_type)
            if not sniffed:
                found.append(
                    SchemaChange(column=name, change="type", base_type=base_type, head_type=head_type)
                )
    found += [
        SchemaChange(column=name, change="added", head_type=kind)
        for name, kind in head.columns.items()
        if name not in base.columns
    ]
    return found


def detect_key(pairing: RowPairing, common: list[str]) -> list[str]:
    """The documented rule (module docstring); [] means compare by row number."""
    lower = {name: name.lower() for name in common}
    named = [n for n in common if lower[n] == "id"] + [n for n in common if lower[n] == "key"]
    named += [n for n in common if lower[n].endswith("_id") and n not in named]
    for name in named:
        if _unique(pairing, "base", name):
            return [name]
    first = next(iter(pairing.tables["base"].columns))
    if first in common and _unique(pairing, "base", first) and _unique(pairing, "head", first):
        return [first]
    return []


def _unique(pairing: RowPairing, side: Side, name: str) -> bool:
    key = [KeyColumn(name, 0, None)]
    return pairing.sorted_unique(side, key) or pairing.grouped_unique(side, key)


def _value_columns(
    base: SideTable, head: SideTable, key: list[str], spec: TableFile | None
) -> list[ValueColumn]:
    common = [name for name in base.columns if name in head.columns and name not in key]
    columns = []
    for index, name in enumerate(common):
        base_type, head_type = base.columns[name], head.columns[name]
        cast = comparable_type(base_type, head_type)
        numeric = cast == "DOUBLE" or (cast is None and is_numeric(base_type))
        tolerance = (spec.columns.get(name, spec.tolerance) if spec else None) or Tolerance()
        columns.append(ValueColumn(name, index, cast, numeric, tolerance))
    return columns


def summarize(diff: TableDiff) -> str:
    """`12 rows changed (3 beyond tolerance), +2 −1 rows, 1 column added`."""
    parts = []
    if diff.rows_changed:
        text = _plural(diff.rows_changed, "row") + " changed"
        if diff.rows_beyond == 0:
            text += " within tolerance"
        elif diff.rows_beyond < diff.rows_changed:
            text += f" ({diff.rows_beyond:,} beyond tolerance)"
        parts.append(text)
    if diff.rows_added or diff.rows_removed:
        parts.append(f"+{diff.rows_added:,} −{diff.rows_removed:,} rows")
    for change, word in (("added", "added"), ("removed", "removed"), ("type", "retyped")):
        count = sum(1 for c in diff.schema_changes if c.change == change)
        if count:
            parts.append(f"{_plural(count, 'column')} {word}")
    duplicates = diff.duplicate_keys_base + diff.duplicate_keys_head
    if duplicates:
        parts.append(_plural(duplicates, "row") + " with duplicate keys")
    if not parts:
        in_order = diff.positional or not diff.key
        parts.append("no cell changed" + ("" if in_order else " (rows in another order)"))
    if not diff.key:
        parts.append("compared by row number (no key)")
    return ", ".join(parts)


def _duplicates_problem(pair: Pair, diff: TableDiff, set_aside: dict[Side, int]) -> FileProblem:
    sides = [
        f"{count:,} of {SIDE_NAMES[side]}'s"
        for side, count in (("base", diff.duplicate_keys_base), ("head", diff.duplicate_keys_head))
        if count
    ]
    left_out = " and ".join(
        f"{set_aside.get(side, 0):,} of {SIDE_NAMES[side]}'s" for side in ("base", "head")
    )
    return FileProblem(
        path=pair.path,
        message=f"{pair.path}: {' and '.join(sides)} rows have a key ({', '.join(diff.key)}) that is not "
        f"unique; rows with such keys were not paired ({left_out} rows left out of the comparison)",
    )


def diff_tables(
    con: duckdb.DuckDBPyConnection, pair: Pair, base: SideTable, head: SideTable, rules: Rules
) -> tuple[TableDiff, list[FileProblem]]:
    """Both sides present: the keyed diff and any problems (a missing key column, duplicate keys)."""
    spec = rules.spec.table_file(pair.path)
    diff = TableDiff(path=pair.path, rows_base=base.rows, rows_head=head.rows, listed=spec is not None)
    diff.schema_changes = schema_changes(base, head)
    problems = []
    common = [name for name in base.columns if name in head.columns]
    pairing = RowPairing(con, base, head, [])
    if spec and spec.key:
        missing = [name for name in spec.key if name not in common]
        if missing:
            problems.append(
                FileProblem(
                    path=pair.path,
                    message=f"{pair.path}: key column {', '.join(missing)} from tierbot.yaml is not in both "
                    f"tables; rows were compared by row number",
                )
            )
            key = []
        else:
            key = list(spec.key)
    else:
        key = detect_key(pairing, common)
        diff.key_detected = bool(key)
    pairing = RowPairing(con, base, head, key)
    values = _value_columns(base, head, key, spec)
    pairing.pair(values)
    diff.key, diff.positional = key, pairing.positional and bool(key)
    diff.duplicate_keys_base, diff.duplicate_keys_head = pairing.duplicates.base, pairing.duplicates.head
    found = counts(con, values)
    diff.rows_added, diff.rows_removed = found.rows_added, found.rows_removed
    diff.rows_changed, diff.rows_beyond, diff.columns = found.rows_changed, found.rows_beyond, found.columns
    keys = pairing.keys or [KeyColumn("row", 0, None)]
    names = key or ["row"]
    n = rules.options.examples
    diff.top_changes, diff.first_changes = examples(con, values, keys, names, n)
    diff.added_keys = one_sided_keys(con, keys, names, "present_h", n)
    diff.removed_keys = one_sided_keys(con, keys, names, "present_b", n)
    if pairing.duplicates.any:
        problems.append(_duplicates_problem(pair, diff, pairing.duplicates.set_aside))
    return diff, problems


def compare_table(pair: Pair, rules: Rules) -> Outcome:
    """Never raises for a bad table: it becomes a problem on this file (blocking when the branch's side of a
    table listed in tierbot.yaml can't be read: its tolerances could not be checked)."""
    options = rules.options
    listed = rules.spec.table_file(pair.path) is not None
    if options.temp_dir is not None:
        Path(options.temp_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tierbot-table-", dir=options.temp_dir) as scratch:
        side: Side = "base"
        try:
            with _connect(options, Path(scratch)) as con:
                sides: dict[Side, SideTable] = {}
                for side in pair.sides:
                    sides[side] = open_side(con, pair, side, Path(scratch))
                if len(sides) == 1:
                    return _one_sided(pair, sides, listed)
                side = "head"  # a failure while diffing: the branch's table is what could not be checked
                diff, problems = diff_tables(con, pair, sides["base"], sides["head"], rules)
        except TableUnreadable as exc:
            return _unreadable(pair, str(exc), blocking=listed and side == "head")
        except duckdb.Error as exc:
            message = f"{pair.path} could not be compared as a table: {reason(exc)}"
            return _unreadable(pair, message, blocking=listed)
    return Outcome("table", summarize(diff), table=diff, problems=problems)


def _one_sided(pair: Pair, sides: dict[Side, SideTable], listed: bool) -> Outcome:
    side, table = next(iter(sides.items()))
    diff = TableDiff(path=pair.path, listed=listed)
    if side == "head":
        diff.rows_head = table.rows
        summary = f"new, {_plural(table.rows, 'row')} × {_plural(len(table.columns), 'column')}"
    else:
        diff.rows_base = table.rows
        summary = f"removed, had {_plural(table.rows, 'row')} × {_plural(len(table.columns), 'column')}"
    return Outcome("table", summary, table=diff)


def _unreadable(pair: Pair, message: str, blocking: bool) -> Outcome:
    suffix = "; its tolerances could not be checked" if blocking else ""
    problem = FileProblem(path=pair.path, message=message + suffix, blocking=blocking)
    return Outcome("table", f"not compared; {size_change(pair)}", problems=[problem])
