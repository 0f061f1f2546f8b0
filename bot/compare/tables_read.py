"""One side of a table opened in DuckDB (CSV, TSV, Parquet, JSON Lines), or a message saying why it can't be.

Parquet is read where it lies (a view: DuckDB streams it, projects columns, and `file_row_number` gives each
row its place). Text formats are parsed once into a temporary table, in file order, so that the checks and
the diff that follow never parse them again; DuckDB spills such tables to the temp directory under its
memory cap. Types of text formats are sniffed, so they carry no declared schema (see `SideTable.textual`).
"""

import csv
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import duckdb

from bot.compare.files import SIDE_NAMES, FileUnreadable, Pair, Side

FORMATS = {
    ".csv": "CSV",
    ".tsv": "TSV",
    ".parquet": "Parquet",
    ".pq": "Parquet",
    ".jsonl": "JSON Lines",
    ".ndjson": "JSON Lines",
}
ROW = "__tierbot_row"  # the 0-based place of a row in its file
PRESENT = "__tierbot_present"  # true on every row: after an outer join, NULL marks the missing side
RAGGED_SCAN_LINES = 1_000_000  # how far to look for the first ragged line when DuckDB gives up
_GLOB = re.compile(r"[*?\[\]{}]")
NUMERIC_TYPES = frozenset(
    [
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
        "FLOAT",
        "DOUBLE",
    ]
)


class TableUnreadable(FileUnreadable):
    """One side of a table could not be read as its format; the message names the side and the reason."""


@dataclass(frozen=True)
class SideTable:
    """A side of the comparison as a DuckDB relation with its row place and presence marker."""

    relation: str  # `base` or `head`: a view (Parquet) or a temporary table (text formats)
    columns: dict[str, str]  # name → DuckDB type, in file order
    rows: int
    textual: bool  # types were sniffed from text, not declared by the file


def table_format(path: str) -> str | None:
    return FORMATS.get(PurePosixPath(path).suffix.lower())


def quote(name: str) -> str:
    """An identifier, whatever characters the file's header used."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def is_numeric(duck_type: str) -> bool:
    return duck_type in NUMERIC_TYPES or duck_type.startswith("DECIMAL")


def reason(exc: BaseException) -> str:
    """DuckDB's message, short: its first line, with a CSV error's line number and description kept."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    first = re.sub(r"^[A-Za-z ]*Error: ", "", lines[0])
    csv_line = re.match(r"CSV Error on Line: (\d+)", first)
    if csv_line:
        detail = next((line for line in lines[1:] if not line.startswith("Original Line")), "")
        first = f"line {csv_line.group(1)}: {detail}"
    return first if len(first) <= 300 else first[:300] + " …"


def _readable_path(path: Path, scratch: Path) -> Path:
    """DuckDB reads a path with glob characters as a pattern; give such a file a plain name."""
    if not _GLOB.search(str(path)):
        return path
    link = Path(tempfile.mkdtemp(dir=scratch)) / "table"
    os.symlink(path.resolve(), link)
    return link


def _first_ragged_line(path: Path, delimiter: str) -> str | None:
    """`line 3 has 3 fields, the header has 2`: what DuckDB's sniffer fails on without saying so."""
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            for record in reader:
                if header is None or reader.line_num > RAGGED_SCAN_LINES:
                    return None
                if record and len(record) != len(header):
                    return f"line {reader.line_num} has {len(record)} fields, the header has {len(header)}"
    except (csv.Error, OSError):
        return None
    return None


def _reader(fmt: str, path: Path) -> str:
    where = literal(str(path))
    if fmt == "Parquet":
        return f"read_parquet({where}, file_row_number = true)"
    if fmt == "JSON Lines":
        return f"read_json({where}, format = 'newline_delimited')"
    delimiter = "\t" if fmt == "TSV" else ","
    return f"read_csv({where}, delim = {literal(delimiter)}, header = true, quote = '\"', escape = '\"')"


def open_side(con: duckdb.DuckDBPyConnection, pair: Pair, side: Side, scratch: Path) -> SideTable:
    """Register `side` (`base`/`head`) in `con`; TableUnreadable with a clear message if it can't be read."""
    entry = pair.entry(side)
    if entry is None:
        raise FileUnreadable(f"{pair.path} does not exist on {SIDE_NAMES[side]}")
    fmt = table_format(pair.path) or "CSV"
    where = f"{SIDE_NAMES[side]}'s {pair.path}"
    locate = pair.locate_base if side == "base" else pair.locate_head
    path = locate(entry)
    if entry.size == 0:
        raise TableUnreadable(f"{where} is empty (0 bytes): there is no {fmt} table to compare")
    try:
        source = _readable_path(path, scratch)
        table = _open_parquet(con, side, source) if fmt == "Parquet" else _load_text(con, side, fmt, source)
    except duckdb.Error as exc:
        detail = reason(exc)
        if fmt in ("CSV", "TSV") and "sniffing" in detail:
            detail = _first_ragged_line(path, "\t" if fmt == "TSV" else ",") or detail
        raise TableUnreadable(f"{where} could not be read as {fmt}: {detail}") from None
    except OSError as exc:
        raise TableUnreadable(f"{where} could not be read: {exc.strerror or type(exc).__name__}") from None
    if not table.columns:
        raise TableUnreadable(f"{where} has no columns: there is no {fmt} table to compare")
    return table


def _describe(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {name: kind for name, kind, *_ in con.execute(f"DESCRIBE {relation}").fetchall()}


def _copy_in_order(con: duckdb.DuckDBPyConnection, side: Side, select: str) -> None:
    """A temporary table in file order (rowid is then each row's place), which DuckDB may spill."""
    con.execute("SET preserve_insertion_order = true")
    try:
        con.execute(f"CREATE TEMP TABLE {side}_raw AS {select}")
    finally:
        con.execute("SET preserve_insertion_order = false")
    con.execute(f"CREATE VIEW {side} AS SELECT *, rowid AS {ROW}, true AS {PRESENT} FROM {side}_raw")


def _open_parquet(con: duckdb.DuckDBPyConnection, side: Side, path: Path) -> SideTable:
    plain = f"SELECT * FROM read_parquet({literal(str(path))})"
    declared = _describe(con, plain)
    if "file_row_number" in declared:  # the file has a column of that name itself: copy it instead
        _copy_in_order(con, side, plain)
    else:
        con.execute(
            f"CREATE VIEW {side} AS SELECT * EXCLUDE (file_row_number), file_row_number AS {ROW}, "
            f"true AS {PRESENT} FROM {_reader('Parquet', path)}"
        )
    rows = con.execute(f"SELECT count(*) FROM read_parquet({literal(str(path))})").fetchone()[0]
    return SideTable(side, declared, rows, textual=False)


def _load_text(con: duckdb.DuckDBPyConnection, side: Side, fmt: str, path: Path) -> SideTable:
    _copy_in_order(con, side, f"SELECT * FROM {_reader(fmt, path)}")
    columns = _describe(con, f"{side}_raw")
    rows = con.execute(f"SELECT count(*) FROM {side}_raw").fetchone()[0]
    return SideTable(side, columns, rows, textual=True)
