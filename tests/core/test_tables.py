"""Table diffs on real files (Parquet, CSV, TSV, JSON Lines) against datacompy as an independent oracle.

Frames are written with polars into `tmp_path`, hashed like the blob store hashes them, and compared through
`compare_outputs`, exactly as the pipeline does. datacompy (PolarsCompare) uses the same tolerance rule,
`|a−b| ≤ abs + rel·|b|` with `b` its second frame, so main's table is passed second. Two deliberate
differences are kept out of its way: rows with duplicated keys are removed before datacompy sees them
(tierbot never pairs them; datacompy pairs them by order), and a NULL never faces a NaN in one cell
(datacompy counts them equal; tierbot says a value became NaN).
"""

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import xxhash
from datacompy import PolarsCompare
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.compare import Comparison, Options, compare_outputs
from bot.compare.files import kind_by_name
from bot.compare.model import TableDiff
from bot.manifest import FileEntry, Manifest
from bot.spec import CompareSection


def manifest_of(root: Path) -> Manifest:
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        digest = xxhash.xxh3_128_hexdigest(path.read_bytes()) if path.stat().st_size < 1 << 30 else rel
        files[rel] = FileEntry(path=rel, size=path.stat().st_size, hash=digest.ljust(32, "0")[:32])
    return Manifest(files=files)


def write_frame(path: Path, frame: pl.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix
    if suffix in (".parquet", ".pq"):
        frame.write_parquet(path)
    elif suffix == ".csv":
        frame.write_csv(path)
    elif suffix == ".tsv":
        frame.write_csv(path, separator="\t")
    else:
        frame.write_ndjson(path)


def compare_dirs(tmp_path: Path, spec: dict | None = None, options: Options | None = None) -> Comparison:
    return compare_outputs(
        manifest_of(tmp_path / "base"),
        manifest_of(tmp_path / "head"),
        lambda e: tmp_path / "base" / e.path,
        lambda e: tmp_path / "head" / e.path,
        CompareSection.model_validate(spec or {}),
        options,
    )


def compare_frames(
    tmp_path: Path,
    base: pl.DataFrame,
    head: pl.DataFrame,
    name: str = "table.parquet",
    table: dict | None = None,
    options: Options | None = None,
) -> tuple[Comparison, TableDiff | None]:
    write_frame(tmp_path / "base" / name, base)
    write_frame(tmp_path / "head" / name, head)
    spec = {"tables": [{"file": name, **table}]} if table is not None else {}
    comparison = compare_dirs(tmp_path, spec, options)
    return comparison, next((t for t in comparison.tables if t.path == name), None)  # None: identical


def unique_rows(frame: pl.DataFrame, keys: set) -> pl.DataFrame:
    return frame.filter(~pl.col("id").is_in(list(keys)))


def oracle(base: pl.DataFrame, head: pl.DataFrame, abs_tol: float, rel_tol: float) -> dict:
    """datacompy on the rows whose key is unique on both sides, common columns only."""
    duplicated = {k for f in (base, head) for k in f.filter(pl.col("id").is_duplicated())["id"].to_list()}
    base, head = unique_rows(base, duplicated), unique_rows(head, duplicated)
    common = [c for c in base.columns if c in head.columns]
    compare = PolarsCompare(
        head.select(common),
        base.select(common),
        join_columns="id",
        abs_tol=abs_tol,
        rel_tol=rel_tol,
        cast_column_names_lower=False,
    )
    return {
        "added": len(compare.df1_unq_rows),
        "removed": len(compare.df2_unq_rows),
        "paired": len(compare.intersect_rows),
        "beyond": {s["column"]: s["unequal_cnt"] for s in compare.column_stats if s["unequal_cnt"]},
    }


def found(diff: TableDiff) -> dict:
    set_aside_base = diff.rows_base - diff.rows_removed
    return {
        "added": diff.rows_added,
        "removed": diff.rows_removed,
        "beyond": {c.name: c.beyond for c in diff.columns if c.beyond},
        "set_aside_base": set_aside_base,
    }


def generated(rows: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Main's table and a branch's: cells nudged within and beyond abs 1e-6, rows added, removed, shuffled."""
    rng = np.random.default_rng(seed)
    values = {f"x{i}": rng.standard_normal(rows) for i in range(4)}
    base = pl.DataFrame({"id": np.arange(rows), **values, "label": rng.choice(["a", "b", "c"], rows)})
    head = base.with_columns(
        [
            pl.when(pl.Series(rng.random(rows) < 0.02)).then(pl.col(name) + 1e-9).otherwise(pl.col(name))
            for name in values
        ]
        + [
            pl.when(pl.Series(rng.random(rows) < 0.01))
            .then(pl.lit("z"))
            .otherwise(pl.col("label"))
            .alias("label")
        ]
    ).with_columns(
        pl.when(pl.Series(rng.random(rows) < 0.01)).then(pl.col("x0") * 1.5).otherwise(pl.col("x0"))
    )
    head = head.filter(pl.Series(rng.random(rows) > 0.01))
    extra = pl.DataFrame(
        {"id": np.arange(rows, rows + 7)}
        | {name: rng.standard_normal(7) for name in values}
        | {"label": ["a"] * 7}
    )
    return base, pl.concat([head, extra]).sample(fraction=1.0, shuffle=True, seed=seed)


# -- against the oracle --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["table.parquet", "table.csv", "table.tsv", "table.jsonl"])
@pytest.mark.parametrize("abs_tol, rel_tol", [(0.0, 0.0), (1e-6, 0.0), (0.0, 0.1)])
def test_generated_tables_agree_with_datacompy(tmp_path, name, abs_tol, rel_tol):
    base, head = generated(3000, seed=len(name))
    comparison, diff = compare_frames(
        tmp_path, base, head, name, {"key": ["id"], "tolerance": {"abs": abs_tol, "rel": rel_tol}}
    )
    expected = oracle(base, head, abs_tol, rel_tol)
    assert (diff.rows_added, diff.rows_removed) == (expected["added"], expected["removed"])
    assert diff.rows_base - diff.rows_removed == expected["paired"]
    assert {c.name: c.beyond for c in diff.columns if c.beyond} == expected["beyond"]
    assert diff.rows_base == len(base) and diff.rows_head == len(head)
    assert not diff.positional and diff.key == ["id"] and not diff.key_detected
    assert comparison.verdict == "fail"


@st.composite
def table_pairs(draw):
    """Small main/branch frames: duplicate keys, nulls, NaN, ±inf, reordering, column changes, retyping."""
    n = draw(st.integers(0, 12))
    keys = st.integers(0, 15)
    floats = st.sampled_from([0.0, 1.0, -2.5, 1e-7, 3.0000001, math.nan, math.inf, -math.inf])
    ints = st.one_of(st.none(), st.integers(-3, 3))
    nullable_floats = st.one_of(st.none(), st.sampled_from([0.5, 1.0, 1.0000001, -4.0]))

    def frame(rows: int) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "id": draw(st.lists(keys, min_size=rows, max_size=rows)),
                "f": draw(st.lists(floats, min_size=rows, max_size=rows)),
                "g": draw(st.lists(nullable_floats, min_size=rows, max_size=rows)),
                "n": draw(st.lists(ints, min_size=rows, max_size=rows)),
            },
            schema={"id": pl.Int64, "f": pl.Float64, "g": pl.Float64, "n": pl.Int64},
        )

    base = frame(n)
    if draw(st.booleans()):  # the branch edits main's rows, so most keys pair
        head = pl.concat([base, frame(draw(st.integers(0, 3)))]).sample(
            fraction=1.0, shuffle=True, seed=draw(st.integers(0, 9))
        )
        head = head.with_columns(
            pl.Series(
                "f", [draw(floats) if draw(st.booleans()) else v for v in head["f"].to_list()], pl.Float64
            )
        )
    else:
        head = frame(draw(st.integers(0, 12)))
    change = draw(st.sampled_from(["none", "add", "drop", "retype"]))
    if change == "add":
        head = head.with_columns(pl.lit(1).alias("extra"))
    elif change == "drop":
        head = head.drop("g")
    elif change == "retype":
        head = head.with_columns(pl.col("n").cast(pl.Float64))
    return base, head, change


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # the same 30 examples on every run: CI never turns red by chance
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(pair=table_pairs(), tolerance=st.sampled_from([(0.0, 0.0), (1e-6, 0.0), (0.0, 0.5)]))
def test_property_agrees_with_datacompy(tmp_path_factory, pair, tolerance):
    base, head, change = pair
    tmp_path = tmp_path_factory.mktemp("prop")
    abs_tol, rel_tol = tolerance
    comparison, diff = compare_frames(
        tmp_path, base, head, table={"key": ["id"], "tolerance": {"abs": abs_tol, "rel": rel_tol}}
    )
    expected = oracle(base, head, abs_tol, rel_tol)
    if diff is None:  # the same bytes on both sides
        assert comparison.file("table.parquet").status == "identical"
        assert (expected["added"], expected["removed"], expected["beyond"]) == (0, 0, {})
        return
    duplicated = {k for f in (base, head) for k in f.filter(pl.col("id").is_duplicated())["id"].to_list()}
    assert diff.rows_added == expected["added"]
    assert diff.rows_removed == expected["removed"]
    assert {c.name: c.beyond for c in diff.columns if c.beyond} == expected["beyond"]
    assert diff.duplicate_keys_base == base.filter(pl.col("id").is_duplicated()).height
    assert diff.duplicate_keys_head == head.filter(pl.col("id").is_duplicated()).height
    set_aside = base.filter(pl.col("id").is_in(list(duplicated))).height
    assert diff.rows_base - diff.rows_removed - set_aside == expected["paired"]
    assert bool(duplicated) == any("not unique" in p.message for p in comparison.problems)
    kinds = {(c.column, c.change) for c in diff.schema_changes}
    assert kinds == {"none": set(), "add": {("extra", "added")}, "drop": {("g", "removed")}}.get(
        change, {("n", "type")}
    )
    for column in diff.columns:
        assert column.beyond <= column.changed


# -- plans: positional, keys, duplicates -----------------------------------------------------------------


def test_positional_fast_path_only_for_the_same_order(tmp_path):
    base = pl.DataFrame({"id": [3, 1, 2, 5], "x": [1.0, 2.0, 3.0, 4.0]})
    same_order = base.with_columns(pl.Series("x", [1.0, 2.5, 3.0, 4.0]))
    _, diff = compare_frames(tmp_path / "a", base, same_order, table={"key": ["id"]})
    assert diff.positional and diff.rows_changed == 1
    assert [(c.key, c.old, c.new) for c in diff.first_changes] == [({"id": "1"}, "2.0", "2.5")]
    _, shuffled = compare_frames(tmp_path / "b", base, same_order.reverse(), table={"key": ["id"]})
    assert not shuffled.positional and shuffled.rows_changed == 1
    _, reordered = compare_frames(tmp_path / "c", base, base.reverse(), table={"key": ["id"]})
    assert reordered.rows_changed == 0 and not reordered.columns
    assert "no cell changed (rows in another order)" in reordered_summary(tmp_path / "c")


def reordered_summary(root: Path) -> str:
    return compare_dirs(root, {"tables": [{"file": "table.parquet", "key": ["id"]}]}).files[0].summary


def test_duplicate_keys_are_reported_and_never_paired(tmp_path):
    base = pl.DataFrame({"id": [1, 2, 2, 3, 4], "x": [1.0, 2.0, 2.0, 3.0, 4.0]})
    head = pl.DataFrame({"id": [4, 3, 2, 1, 1], "x": [4.0, 3.5, 2.0, 1.0, 9.0]})
    comparison, diff = compare_frames(tmp_path, base, head, table={"key": ["id"]})
    assert (diff.duplicate_keys_base, diff.duplicate_keys_head) == (2, 2)
    assert diff.rows_changed == 1 and diff.first_changes[0].key == {"id": "3"}
    assert (diff.rows_added, diff.rows_removed) == (0, 0)
    problem = next(p for p in comparison.problems if "not unique" in p.message)
    assert "2 of main's and 2 of the branch's rows have a key (id) that is not unique" in problem.message
    assert "3 of main's and 3 of the branch's rows left out" in problem.message


def test_duplicates_found_by_the_join_counts_when_one_side_is_sorted(tmp_path):
    """Main sorted (proven unique cheaply); the branch shuffled with a duplicate among shared keys."""
    base = pl.DataFrame({"id": list(range(50)), "x": [float(i) for i in range(50)]})
    head = pl.concat([base, base.filter(pl.col("id") == 7)]).sample(fraction=1.0, shuffle=True, seed=1)
    _, diff = compare_frames(tmp_path, base, head, table={"key": ["id"]})
    assert (diff.duplicate_keys_base, diff.duplicate_keys_head) == (0, 2)
    assert (diff.rows_added, diff.rows_removed, diff.rows_changed) == (0, 0, 0)


def test_key_detection_rule(tmp_path):
    frame = pl.DataFrame({"name": ["a", "b", "c"], "sample_id": [3, 1, 2], "x": [1, 2, 3]})
    _, diff = compare_frames(tmp_path / "a", frame, frame.with_columns(pl.col("x") * 2), "t.csv")
    assert diff.key == ["sample_id"] and diff.key_detected
    no_names = frame.rename({"sample_id": "s"})
    _, first = compare_frames(tmp_path / "b", no_names, no_names.with_columns(pl.col("x") * 2), "t.csv")
    assert first.key == ["name"] and first.key_detected
    repeated = pl.DataFrame({"a": [1, 1, 2], "b": [1.0, 2.0, 3.0]})
    comparison, by_row = compare_frames(
        tmp_path / "c", repeated, repeated.with_columns(pl.col("b") + 1), "t.csv"
    )
    assert by_row.key == [] and by_row.rows_changed == 3
    assert by_row.first_changes[0].key == {"row": "1"}
    assert comparison.files[0].summary == "3 rows changed, compared by row number (no key)"


def test_rows_beyond_the_other_side_without_a_key_are_added_or_removed(tmp_path):
    base = pl.DataFrame({"a": [1, 1, 2], "b": [1.0, 2.0, 3.0]})
    longer = pl.concat([base, pl.DataFrame({"a": [2, None], "b": [4.0, None]})])  # an empty row too
    _, grown = compare_frames(tmp_path / "a", base, longer, "t.csv")
    assert grown.key == [] and (grown.rows_added, grown.rows_removed, grown.rows_changed) == (2, 0, 0)
    assert grown.added_keys == [{"row": "4"}, {"row": "5"}]
    _, shrunk = compare_frames(tmp_path / "b", longer, base, "t.csv")
    assert (shrunk.rows_added, shrunk.rows_removed) == (0, 2) and shrunk.removed_keys == [
        {"row": "4"},
        {"row": "5"},
    ]


def test_null_keys_pair_with_null_keys(tmp_path):
    base = pl.DataFrame({"id": [None, 1, 2], "x": [1.0, 2.0, 3.0]})
    head = pl.DataFrame({"id": [2, None, 1], "x": [3.0, 1.5, 2.0]})
    _, diff = compare_frames(tmp_path, base, head, table={"key": ["id"]})
    assert diff.rows_changed == 1 and diff.first_changes[0].key == {"id": "null"}
    assert (diff.rows_added, diff.rows_removed, diff.duplicate_keys_base) == (0, 0, 0)


# -- what is reported ------------------------------------------------------------------------------------


def test_statistics_examples_and_summary(tmp_path):
    base = pl.DataFrame({"id": [1, 2, 3, 4, 5], "p": [0.1, 0.2, 0.3, 0.4, 0.5], "label": list("abcde")})
    head = pl.DataFrame(
        {"id": [1, 2, 3, 4, 6], "p": [0.1, 0.2000001, 0.5, math.nan, 0.6], "label": list("abCdf")}
    )
    comparison, diff = compare_frames(
        tmp_path, base, head, table={"key": ["id"], "tolerance": {"abs": 1e-6}}, options=Options(examples=2)
    )
    p = next(c for c in diff.columns if c.name == "p")
    assert (p.changed, p.beyond, p.tolerance) == (3, 2, "abs 1e-06")
    assert p.max_abs_delta == pytest.approx(0.2) and p.mean_delta == pytest.approx((1e-7 + 0.2) / 2)
    assert [(c.key["id"], c.column, c.old, c.new) for c in diff.top_changes] == [
        ("4", "p", "0.4", "nan"),
        ("3", "p", "0.3", "0.5"),
    ]
    assert [(c.key["id"], c.column) for c in diff.first_changes] == [("2", "p"), ("3", "p")]
    assert diff.added_keys == [{"id": "6"}] and diff.removed_keys == [{"id": "5"}]
    assert comparison.files[0].summary == "3 rows changed (2 beyond tolerance), +1 −1 rows"
    assert comparison.files[0].kind == "table"


def test_schema_changes(tmp_path):
    base = pl.DataFrame({"id": [1, 2], "n": [1, 2], "gone": ["a", "b"]})
    head = pl.DataFrame({"id": [1, 2], "n": [1.0, 2.5], "new": [True, False]})
    comparison, diff = compare_frames(tmp_path / "pq", base, head, table={"key": ["id"]})
    assert [(c.column, c.change, c.base_type, c.head_type) for c in diff.schema_changes] == [
        ("n", "type", "BIGINT", "DOUBLE"),
        ("gone", "removed", "VARCHAR", None),
        ("new", "added", None, "BOOLEAN"),
    ]
    assert (
        diff.rows_changed == 1 and diff.columns[0].name == "n"
    )  # BIGINT → DOUBLE still compares numerically
    assert "table.parquet: columns changed: n BIGINT → DOUBLE, gone removed, new added" in comparison.reasons
    _, sniffed = compare_frames(
        tmp_path / "csv", base.drop("gone"), head.drop("new"), "t.csv", {"key": ["id"]}
    )
    assert sniffed.schema_changes == []  # text has no declared types: 1 and 1.0 are both numbers


def test_same_inputs_same_json(tmp_path):
    base, head = generated(2000, seed=3)
    runs = [
        compare_frames(tmp_path / str(i), base, head, table={"key": ["id"], "tolerance": {"abs": 1e-6}})[1]
        for i in range(2)
    ]
    assert runs[0].model_dump_json() == runs[1].model_dump_json()
    assert TableDiff.model_validate_json(runs[0].model_dump_json()) == runs[0]


def test_added_and_removed_tables(tmp_path):
    frame = pl.DataFrame({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0]})
    write_frame(tmp_path / "base" / "old.parquet", frame)
    write_frame(tmp_path / "head" / "new.csv", frame)
    comparison = compare_dirs(tmp_path, {"tables": [{"file": "old.parquet", "key": ["id"]}]})
    assert comparison.file("new.csv").summary == "new, 3 rows × 2 columns"
    assert comparison.file("old.parquet").summary == "removed, had 3 rows × 2 columns"
    assert comparison.verdict == "fail"
    assert "old.parquet is listed in tierbot.yaml but the branch did not produce it" in comparison.reasons


def test_table_kinds_by_name():
    for name in ["a.csv", "b.TSV", "c.parquet", "d.pq", "e.jsonl", "f.ndjson"]:
        assert kind_by_name(name, False) == "table"
    assert kind_by_name("metrics.csv", True) == "metrics"


# -- verdict ---------------------------------------------------------------------------------------------


def test_listed_table_beyond_tolerance_fails_and_unlisted_is_changed(tmp_path):
    base = pl.DataFrame({"id": [1, 2, 3], "p_virginica": [0.1, 0.2, 0.3], "p_setosa": [0.5, 0.5, 0.5]})
    head = base.with_columns(pl.col("p_virginica") + 0.01, pl.col("p_setosa") + 1e-9)
    write_frame(tmp_path / "base" / "predictions.csv", base)
    write_frame(tmp_path / "head" / "predictions.csv", head)
    write_frame(tmp_path / "base" / "other.csv", base)
    write_frame(tmp_path / "head" / "other.csv", head)
    listed = {"tables": [{"file": "predictions.csv", "key": ["id"], "tolerance": {"abs": 1e-6}}]}
    comparison = compare_dirs(tmp_path, listed)
    assert comparison.verdict == "fail"
    assert comparison.reasons[0] == "predictions.csv: 3 cells in p_virginica beyond tolerance abs 1e-06"
    unlisted = compare_dirs(tmp_path, {})
    assert unlisted.verdict == "changed"
    assert unlisted.file("other.csv").summary == "3 rows changed"


def test_listed_table_within_tolerance_is_changed_not_failed(tmp_path):
    base = pl.DataFrame({"id": [1, 2], "p": [0.1, 0.2]})
    listed = {"key": ["id"], "tolerance": {"abs": 1e-6}}
    comparison, diff = compare_frames(tmp_path, base, base.with_columns(pl.col("p") + 1e-9), "t.csv", listed)
    assert comparison.verdict == "changed" and diff.rows_beyond == 0
    assert comparison.file("t.csv").summary == "2 rows changed within tolerance"


# -- malformed inputs: a problem on that file, the rest still compared ----------------------------------

GOOD = pl.DataFrame({"id": [1, 2], "x": [1.0, 2.0]})


def _truncated_parquet(path: Path) -> None:
    GOOD.write_parquet(path)
    path.write_bytes(path.read_bytes()[:50])


def _huge_sparse_csv(path: Path) -> None:
    with open(path, "wb") as handle:
        handle.truncate(5 * 1024**3)  # 5 GB of NUL bytes, without using the disk


@pytest.mark.parametrize(
    "name, make, expected",
    [
        ("broken.parquet", _truncated_parquet, "the branch's broken.parquet could not be read as Parquet"),
        (
            "broken.csv",
            lambda p: p.write_text("id,x\n1,2\n2,3,4\n3,5\n"),
            "line 3 has 3 fields, the header has 2",
        ),
        ("broken.csv", lambda p: p.write_bytes(b"id,name\n1,caf\xe9\n"), "not utf-8 encoded"),
        ("broken.tsv", lambda p: p.write_bytes(b""), "the branch's broken.tsv is empty (0 bytes)"),
        ("broken.jsonl", lambda p: p.write_text('{"id": 1}\n{"id": \n'), "could not be read as JSON Lines"),
        ("broken.csv", _huge_sparse_csv, "the branch's broken.csv could not be read as CSV"),
    ],
)
def test_malformed_table_is_a_problem_and_the_rest_still_runs(tmp_path, name, make, expected):
    write_frame(tmp_path / "base" / "good.parquet", GOOD)
    write_frame(tmp_path / "head" / "good.parquet", GOOD.with_columns(pl.col("x") + 1))
    write_frame(tmp_path / "base" / name, GOOD)
    (tmp_path / "head").mkdir(exist_ok=True)
    make(tmp_path / "head" / name)
    comparison = compare_dirs(tmp_path, {"tables": [{"file": name, "key": ["id"]}]})
    problem = next(p for p in comparison.problems if p.path == name)
    assert expected in problem.message
    assert problem.blocking  # listed, and the branch's side could not be checked
    assert comparison.file(name).kind == "table" and comparison.file(name).summary.startswith("not compared")
    assert [t.path for t in comparison.tables] == ["good.parquet"]
    assert comparison.tables[0].rows_changed == 2 and comparison.verdict == "fail"


def test_unusual_file_names_are_read_as_files(tmp_path):
    name = "runs[1]/pred*.csv"
    _, diff = compare_frames(tmp_path, GOOD, GOOD.with_columns(pl.col("x") + 1), name)
    assert diff.rows_changed == 2


# -- memory cap and spill --------------------------------------------------------------------------------


def test_memory_limit_and_temp_dir_are_honoured(tmp_path):
    rows = 1_000_000
    rng = np.random.default_rng(5)
    base = pl.DataFrame(
        {"id": np.arange(rows), "a": rng.standard_normal(rows), "b": rng.standard_normal(rows)}
    )
    head = base.with_columns(pl.col("a") + pl.Series(np.where(np.arange(rows) % 1000 == 0, 1.0, 0.0)))
    head = head.sample(fraction=1.0, shuffle=True, seed=2)  # no positional fast path: a real hash join
    spill = tmp_path / "spill"
    # DuckDB gets at most 50 MB here (the test process already holds more than the rest of the cap); the
    # join's hash table needs more, so it spills (about 20 MB, as DuckDB's profiler shows) and still works
    options = Options(memory_limit="100MB", temp_dir=spill, threads=2)
    _, diff = compare_frames(tmp_path, base, head, table={"key": ["id"]}, options=options)
    assert diff.rows_changed == rows // 1000 and not diff.positional
    assert spill.is_dir() and not any(spill.iterdir())  # its scratch space was there, and was cleaned up
    assert [(c.name, c.changed, c.beyond) for c in diff.columns] == [("a", rows // 1000, rows // 1000)]
