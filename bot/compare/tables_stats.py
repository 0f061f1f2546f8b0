"""What the small `diff` table says: counts per column, |Δ| statistics, and deterministic examples.

`diff` holds only rows that differ or exist on one side, so these queries are cheap however large the
tables were. Statistics of Δ (max |Δ|, mean Δ, p99 |Δ|) are over the changed cells of a numeric column
whose Δ is finite; a value that became NULL, NaN or infinite counts as changed (and beyond any tolerance)
but has no Δ. Every result is independent of the order rows arrive in: exact quantiles, sums taken in
value order, examples ordered by |Δ|, then key, then column.
"""

import math
from dataclasses import dataclass

import duckdb

from bot.compare.model import CellChange, ColumnDiff
from bot.compare.numbers import denoise, format_number
from bot.compare.tables_join import KeyColumn, ValueColumn, tolerance_literal
from bot.spec import Tolerance

BOTH = "present_b AND present_h"
MAX_CELL_CHARS = 200


def tolerance_text(tolerance: Tolerance, numeric: bool = True) -> str:
    """`abs 1e-06`, `rel 0.01`, `abs 1e-06, rel 0.01`, or `exact`."""
    if not numeric or (tolerance.abs == 0 and tolerance.rel == 0):
        return "exact"
    parts = [f"abs {format_number(tolerance.abs)}"] if tolerance.abs else []
    parts += [f"rel {format_number(tolerance.rel)}"] if tolerance.rel else []
    return ", ".join(parts)


def changed(v: ValueColumn) -> str:
    return f"(b{v.index} IS DISTINCT FROM h{v.index})"


def delta(v: ValueColumn) -> str:
    return f"(CAST(h{v.index} AS DOUBLE) - CAST(b{v.index} AS DOUBLE))"


def beyond(v: ValueColumn) -> str:
    """Changed, and not within |a−b| ≤ abs + rel·|main|; non-finite values are within only when equal."""
    tol = v.tolerance
    if not v.numeric or (tol.abs == 0 and tol.rel == 0):
        return changed(v)
    base = f"CAST(b{v.index} AS DOUBLE)"
    head = f"CAST(h{v.index} AS DOUBLE)"
    within = (
        f"coalesce(isfinite({base}) AND isfinite({head}) AND abs({head} - {base}) <= "
        f"{tolerance_literal(tol.abs)} + {tolerance_literal(tol.rel)} * abs({base}), false)"
    )
    return f"({changed(v)} AND NOT {within})"


def _number(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return denoise(value)


@dataclass
class Counts:
    rows_added: int
    rows_removed: int
    rows_changed: int
    rows_beyond: int
    columns: list[ColumnDiff]


def counts(con: duckdb.DuckDBPyConnection, values: list[ValueColumn]) -> Counts:
    """One aggregate query over `diff`: row counts, and per column changed/beyond counts and Δ statistics."""
    select = [
        "count(*) FILTER (WHERE present_h IS NULL)",
        "count(*) FILTER (WHERE present_b IS NULL)",
        f"count(*) FILTER (WHERE {BOTH} AND ({' OR '.join(changed(v) for v in values) or 'false'}))",
        f"count(*) FILTER (WHERE {BOTH} AND ({' OR '.join(beyond(v) for v in values) or 'false'}))",
    ]
    for v in values:
        select += [
            f"count(*) FILTER (WHERE {BOTH} AND {changed(v)})",
            f"count(*) FILTER (WHERE {BOTH} AND {beyond(v)})",
        ]
        if v.numeric:
            finite = f"WHERE {BOTH} AND {changed(v)} AND isfinite({delta(v)})"
            select += [
                f"count(*) FILTER ({finite})",
                f"max(abs({delta(v)})) FILTER ({finite})",
                f"sum({delta(v)} ORDER BY {delta(v)}) FILTER ({finite})",
                f"quantile_cont(abs({delta(v)}), 0.99) FILTER ({finite})",
            ]
    row = list(con.execute(f"SELECT {', '.join(select)} FROM diff").fetchone())
    removed, added, rows_changed, rows_beyond = (int(x) for x in row[:4])
    rest = iter(row[4:])
    columns = []
    for v in values:
        column = ColumnDiff(
            name=v.name,
            changed=int(next(rest)),
            beyond=int(next(rest)),
            tolerance=tolerance_text(v.tolerance, v.numeric),
        )
        if v.numeric:
            finite, largest, total, p99 = next(rest), next(rest), next(rest), next(rest)
            if finite:
                column.max_abs_delta = _number(largest)
                mean = total / finite
                # Deltas that cancel out leave float residue (1e-18) that reads as a change; it is zero.
                column.mean_delta = _number(0.0 if abs(mean) <= 1e-12 * largest else mean)
                column.p99_abs_delta = _number(p99)
        if column.changed:
            columns.append(column)
    return Counts(added, removed, rows_changed, rows_beyond, columns)


def _text(value: object) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS] + " …"


def _key_order(keys: list[KeyColumn]) -> str:
    return ", ".join(f"k{k.index} ASC NULLS FIRST" for k in keys)


def _cells(values: list[ValueColumn], keys: list[KeyColumn]) -> str:
    """Every changed cell of a paired row: key, column, old, new, Δ (numeric columns), beyond."""
    key_text = ", ".join(f"CAST(k{k.index} AS VARCHAR) AS t{k.index}" for k in keys)
    key_values = ", ".join(f"k{k.index}" for k in keys)
    parts = [
        f"SELECT {key_values}, {key_text}, {v.index} AS col, CAST(b{v.index} AS VARCHAR) AS old, "
        f"CAST(h{v.index} AS VARCHAR) AS new, {delta(v) if v.numeric else 'NULL::DOUBLE'} AS delta, "
        f"{v.numeric} AS numeric, {beyond(v)} AS beyond FROM diff WHERE {BOTH} AND {changed(v)}"
        for v in values
    ]
    return " UNION ALL ".join(parts)


def examples(
    con: duckdb.DuckDBPyConnection, values: list[ValueColumn], keys: list[KeyColumn], names: list[str], n: int
) -> tuple[list[CellChange], list[CellChange]]:
    """The top `n` changed cells by |Δ| (numeric columns; no Δ ranks first), and the first `n` by key."""
    if not values or n <= 0:
        return [], []
    cells = _cells(values, keys)
    rank = "CASE WHEN isfinite(delta) THEN abs(delta) ELSE 'inf'::DOUBLE END"
    order = f"{_key_order(keys)}, col"
    columns = ", ".join(f"t{k.index}" for k in keys) + ", col, old, new, delta, beyond"
    top = con.execute(
        f"SELECT {columns} FROM ({cells}) WHERE numeric ORDER BY {rank} DESC, {order} LIMIT {n}"
    ).fetchall()
    first = con.execute(f"SELECT {columns} FROM ({cells}) ORDER BY {order} LIMIT {n}").fetchall()
    by_index = {v.index: v.name for v in values}

    def cell(record: tuple) -> CellChange:
        key = {name: _text(value) for name, value in zip(names, record[: len(keys)], strict=True)}
        col, old, new, change, is_beyond = record[len(keys) :]
        number = None if change is None or math.isnan(change) else denoise(change)
        return CellChange(
            key=key, column=by_index[col], old=_text(old), new=_text(new), delta=number, beyond=is_beyond
        )

    return [cell(r) for r in top], [cell(r) for r in first]


def one_sided_keys(
    con: duckdb.DuckDBPyConnection, keys: list[KeyColumn], names: list[str], present: str, n: int
) -> list[dict[str, str]]:
    """The first `n` keys (in key order) of rows that exist only where `present` (`present_b`/`present_h`)."""
    missing = "present_h" if present == "present_b" else "present_b"
    text = ", ".join(f"CAST(k{k.index} AS VARCHAR)" for k in keys)
    records = con.execute(
        f"SELECT {text} FROM diff WHERE {missing} IS NULL ORDER BY {_key_order(keys)} LIMIT {max(n, 0)}"
    ).fetchall()
    return [{name: _text(value) for name, value in zip(names, record, strict=True)} for record in records]
