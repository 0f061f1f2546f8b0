"""Pairing the rows of two tables in DuckDB, and keeping only the rows that differ.

The plan, cheapest first:

1. **Same keys, same order** (checked by zipping the key columns, stopping at the first difference): the
   rows are zipped by position (`POSITIONAL JOIN`), with no hash table at all (`positional=True`).
2. Otherwise a **full outer hash join** on the key whose hash table holds, for each of main's rows, only
   its key, its place and a hash of its values (`_write_candidates`): rows whose hashes differ, with the
   branch's values, are the few `candidates`; main's values for those are then fetched by place in one
   more scan of main's table. Joining whole rows kept all of main's table in the hash table: at 10M rows
   × 10 columns that peaked at 1.5 GB against 0.9 GB this way, and was no faster (two scans of main
   cost less than building and probing a table eight times as wide).

Either way only the rows that differ, or exist on one side, reach the small table `diff`; everything
that is reported is computed from that table afterwards.

Keys must be unique to be paired. Proving it costs little when a side's key is sorted (an integer key
that is its row number plus a constant takes one aggregate; any other, one pass comparing each key with
the one before it); otherwise a `GROUP BY` on one side proves that side, and the join's own
counts prove the other: with one side unique, the other has no duplicate among the keys both share exactly
when it has as many paired rows as the unique side, and its one-sided rows are in `diff` to be checked.
Only when a duplicate turns up are duplicated keys listed on both sides, set aside, and the diff rerun.
"""

from dataclasses import dataclass, field

import duckdb

from bot.compare.files import Side
from bot.compare.tables_read import PRESENT, ROW, SideTable, is_numeric, literal, quote
from bot.spec import Tolerance

OTHER: dict[Side, Side] = {"base": "head", "head": "base"}
INTEGER_TYPES = frozenset(
    ["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"]
)
ALIAS: dict[Side, str] = {"base": "b", "head": "h"}
FINGERPRINT = "__tierbot_fingerprint"  # a hash of a row's compared values


@dataclass(frozen=True)
class ValueColumn:
    """A column on both sides, compared cell by cell."""

    name: str
    index: int  # its place among the compared columns: names `b{index}` / `h{index}` in `diff`
    cast: str | None  # the type both sides are compared as when their types differ
    numeric: bool
    tolerance: Tolerance

    def side(self, alias: str) -> str:
        column = f"{alias}.{quote(self.name)}"
        return f"CAST({column} AS {self.cast})" if self.cast else column


@dataclass(frozen=True)
class KeyColumn:
    name: str
    index: int  # named `k{index}` in `diff`
    cast: str | None

    def side(self, alias: str) -> str:
        column = f"{alias}.{quote(self.name)}"
        return f"CAST({column} AS {self.cast})" if self.cast else column


@dataclass
class Duplicates:
    """Rows whose key is not unique on their own side, and what was set aside because of them."""

    base: int = 0
    head: int = 0
    set_aside: dict[Side, int] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.base or self.head)


def comparable_type(base_type: str, head_type: str) -> str | None:
    """None when the types match; numbers of different types compare as DOUBLE, anything else as text."""
    if base_type == head_type:
        return None
    return "DOUBLE" if is_numeric(base_type) and is_numeric(head_type) else "VARCHAR"


def _key_tuple(keys: list[KeyColumn], alias: str) -> str:
    parts = [key.side(alias) for key in keys]
    return parts[0] if len(parts) == 1 else f"row({', '.join(parts)})"


def _fingerprint(values: list[ValueColumn], alias: str) -> str:
    """One hash of a row's compared values, each as the type both sides are compared as."""
    return f"hash({', '.join(v.side(alias) for v in values)})" if values else "0"


def _same_key(keys: list[KeyColumn], left: str = "b", right: str = "h") -> str:
    return " AND ".join(f"{key.side(left)} IS NOT DISTINCT FROM {key.side(right)}" for key in keys)


class RowPairing:
    """Two sides registered in one DuckDB connection, and the key (possibly none) to pair their rows by."""

    def __init__(self, con: duckdb.DuckDBPyConnection, base: SideTable, head: SideTable, key: list[str]):
        self.con = con
        self.tables = {"base": base, "head": head}
        self.keys = [
            KeyColumn(name, i, comparable_type(base.columns[name], head.columns[name]))
            for i, name in enumerate(key)
        ]
        self._sorted: dict[Side, bool] = {}
        self._grouped: dict[Side, bool] = {}
        self.duplicates = Duplicates()
        self.positional = False

    def _scalar(self, sql: str) -> object:
        return self.con.execute(sql).fetchone()[0]

    # -- uniqueness --------------------------------------------------------------------------------------

    def sorted_unique(self, side: Side, keys: list[KeyColumn] | None = None) -> bool:
        """Strictly increasing (or decreasing) in the order DuckDB reads it, without NULLs: then unique.

        Any order in which every key differs from the previous one proves uniqueness, so the proof holds
        whatever order the scan delivers; an unlucky order only sends us to the slower GROUP BY.
        """
        keys = keys if keys is not None else self.keys
        if len(keys) == 1 and self._counts_rows(side, keys[0]):
            return True
        current = _key_tuple(keys, "s")
        nulls = " OR ".join(f"s.{quote(k.name)} IS NULL" for k in keys)
        up, down, null_rows = self.con.execute(
            f"SELECT bool_and(prev < cur), bool_and(prev > cur), count(*) FILTER (WHERE has_null) FROM "
            f"(SELECT {current} AS cur, lag({current}) OVER () AS prev, ({nulls}) AS has_null FROM {side} s)"
        ).fetchone()
        return null_rows == 0 and (up is not False or down is not False)

    def _counts_rows(self, side: Side, key: KeyColumn) -> bool:
        """The commonest key of all, `id = row number + c`, proven by one parallel aggregate (no window)."""
        if key.cast or self.tables[side].columns[key.name] not in INTEGER_TYPES:
            return False  # (a cast to DOUBLE could make distinct huge integers equal)
        offset = f"(CAST(s.{quote(key.name)} AS HUGEINT) - s.{ROW})"
        low, high, nulls = self.con.execute(
            f"SELECT min({offset}), max({offset}), count(*) - count(s.{quote(key.name)}) FROM {side} s"
        ).fetchone()
        return nulls == 0 and low == high

    def grouped_unique(self, side: Side, keys: list[KeyColumn] | None = None) -> bool:
        """A GROUP BY over the whole side; NULL is a key value like any other (NULL keys pair)."""
        keys = keys if keys is not None else self.keys
        names = ", ".join(k.side("s") for k in keys)
        return not self._scalar(
            f"SELECT EXISTS (SELECT 1 FROM {side} s GROUP BY {names} HAVING count(*) > 1)"
        )

    def unique(self, side: Side, thorough: bool = True) -> bool:
        """Proven unique: by sortedness (cheap), then, if `thorough`, by GROUP BY. Each proof runs once."""
        if side not in self._sorted:
            self._sorted[side] = self.sorted_unique(side)
        if self._sorted[side] or not thorough:
            return self._sorted[side]
        if side not in self._grouped:
            self._grouped[side] = self.grouped_unique(side)
        return self._grouped[side]

    def same_order(self) -> bool:
        """The same keys in the same order on both sides: stops at the first row where they differ."""
        if self.tables["base"].rows != self.tables["head"].rows:
            return False
        differs = " OR ".join(f"{k.side('b')} IS DISTINCT FROM {k.side('h')}" for k in self.keys)
        return not self._scalar(
            f"SELECT EXISTS (SELECT 1 FROM base b POSITIONAL JOIN head h WHERE {differs})"
        )

    def list_duplicates(self) -> None:
        """Every key that is not unique on either side, in `dup_keys`, with the rows that share them."""
        keys = ", ".join(f"{k.side('s')} AS k{k.index}" for k in self.keys)
        names = ", ".join(f"k{k.index}" for k in self.keys)
        for side in ("base", "head"):
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE dup_{side} AS SELECT {keys}, count(*) AS n FROM {side} s "
                f"GROUP BY ALL HAVING count(*) > 1"
            )
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE dup_keys AS "
            f"SELECT {names} FROM dup_base UNION SELECT {names} FROM dup_head"
        )
        self.duplicates.base = int(self._scalar("SELECT coalesce(sum(n), 0) FROM dup_base"))
        self.duplicates.head = int(self._scalar("SELECT coalesce(sum(n), 0) FROM dup_head"))
        for side in ("base", "head"):
            dropped = self._kept(side, dropped=True) if self.duplicates.any else None
            self.duplicates.set_aside[side] = (
                int(self._scalar(f"SELECT count(*) FROM {dropped}")) if dropped else 0
            )

    def _kept(self, side: Side, dropped: bool = False) -> str:
        """The side's rows whose key is unique on both sides (or, `dropped`, the others)."""
        if not self.duplicates.any:
            return side
        match = " AND ".join(f"{k.side('s')} IS NOT DISTINCT FROM d.k{k.index}" for k in self.keys)
        join = "SEMI" if dropped else "ANTI"
        return f"(SELECT s.* FROM {side} s {join} JOIN dup_keys d ON {match})"

    # -- the diff ----------------------------------------------------------------------------------------

    def write_diff(self, values: list[ValueColumn]) -> None:
        """Rows that differ or exist on one side only, with both sides' values, into the table `diff`."""
        if not self.positional:
            self._write_candidates(values)
            self._fetch_base_values(values)
            return
        select = [f"b.{PRESENT} AS present_b", f"h.{PRESENT} AS present_h"]
        select += self._paired_keys() if self.keys else [f"coalesce(b.{ROW}, h.{ROW}) + 1 AS k0"]
        select += [f"{v.side('b')} AS b{v.index}, {v.side('h')} AS h{v.index}" for v in values]
        differs = [f"b.{PRESENT} IS NULL", f"h.{PRESENT} IS NULL"]  # (the longer side's rest)
        differs += [f"{v.side('b')} IS DISTINCT FROM {v.side('h')}" for v in values]
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE diff AS SELECT {', '.join(select)} "
            f"FROM base b POSITIONAL JOIN head h WHERE {' OR '.join(differs)}"
        )

    def _paired_keys(self) -> list[str]:
        return [f"coalesce({k.side('b')}, {k.side('h')}) AS k{k.index}" for k in self.keys]

    def _write_candidates(self, values: list[ValueColumn]) -> None:
        """The keyed join, with main's side narrowed to key, row place and one hash of its values: rows
        whose hashes differ (or that exist on one side) become `candidates`, with the branch's values and
        main's row place. A hash equal by chance (2⁻⁶⁴ a row) would hide a change; a hash that differs
        for equal values (NaN, −0.0) costs nothing, `_fetch_base_values` compares values exactly.
        Main's presence is its row place (never NULL on a real row): one column less to hash-join."""
        keys = "".join(f"b.{quote(k.name)}, " for k in self.keys)
        narrow = (
            f"SELECT {keys}b.{ROW}, {_fingerprint(values, 'b')} AS {FINGERPRINT} FROM {self._kept('base')} b"
        )
        select = [f"CASE WHEN b.{ROW} IS NOT NULL THEN true END AS present_b", f"h.{PRESENT} AS present_h"]
        select += self._paired_keys() + [f"b.{ROW} AS row_b"]
        select += [f"{v.side('h')} AS h{v.index}" for v in values]
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE candidates AS SELECT {', '.join(select)} FROM ({narrow}) b "
            f"FULL OUTER JOIN {self._kept('head')} h ON {_same_key(self.keys)} WHERE b.{ROW} IS NULL "
            f"OR h.{PRESENT} IS NULL OR b.{FINGERPRINT} <> {_fingerprint(values, 'h')}"
        )

    def _fetch_base_values(self, values: list[ValueColumn]) -> None:
        """`diff`: the candidates with main's values, read by row place in one more scan of main, and only
        those whose values really differ."""
        fetched = "".join(f", {v.side('b')} AS b{v.index}" for v in values)
        paired = ["c.present_b", "c.present_h"] + [f"c.k{k.index}" for k in self.keys]
        paired += [f"b.b{v.index}, c.h{v.index}" for v in values]
        differs = ["c.present_b IS NULL", "c.present_h IS NULL"]
        differs += [f"b.b{v.index} IS DISTINCT FROM c.h{v.index}" for v in values]
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE diff AS SELECT {', '.join(paired)} FROM candidates c LEFT JOIN "
            f"(SELECT b.{ROW} AS row_b{fetched} FROM base b WHERE b.{ROW} IN "
            f"(SELECT row_b FROM candidates)) b ON b.row_b = c.row_b WHERE {' OR '.join(differs)}"
        )

    def pair(self, values: list[ValueColumn]) -> None:
        """Choose the cheapest sound plan, write `diff`, and rerun without duplicates if any turned up."""
        if not self.keys:
            self.positional = True  # by row number
            self.write_diff(values)
            return
        if self.same_order() and self.unique("base"):
            self.positional = True
            self.write_diff(values)
            return
        proven = next((side for side in ("base", "head") if self.unique(side, thorough=False)), None)
        if proven is None and self.unique("base"):
            proven = "base"
        if proven is None:
            self.list_duplicates()
        self.write_diff(values)
        if proven is not None and self._other_side_has_duplicates(proven):
            self.list_duplicates()
            self.write_diff(values)

    def _other_side_has_duplicates(self, proven: Side) -> bool:
        """With `proven` unique each of its rows pairs once, so any surplus is the other side's duplicate."""
        other = OTHER[proven]
        only_proven, only_other = self.con.execute(
            f"SELECT count(*) FILTER (WHERE present_{ALIAS[other]} IS NULL), "
            f"count(*) FILTER (WHERE present_{ALIAS[proven]} IS NULL) FROM diff"
        ).fetchone()
        paired_proven = self.tables[proven].rows - only_proven
        paired_other = self.tables[other].rows - only_other
        if paired_other != paired_proven:
            return True
        names = ", ".join(f"k{k.index}" for k in self.keys)
        return bool(
            self._scalar(
                f"SELECT EXISTS (SELECT 1 FROM diff WHERE present_{ALIAS[proven]} IS NULL "
                f"GROUP BY {names} HAVING count(*) > 1)"
            )
        )


def tolerance_literal(value: float) -> str:
    return f"CAST({literal(repr(float(value)))} AS DOUBLE)"
