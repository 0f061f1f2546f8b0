"""Nested JSON and YAML outputs that are not metrics: path-addressed changes, tolerance, fallbacks.

Real files in real directories, read through the manifests `tierbot diff` builds.
"""

import json
import time

import pytest

from bot.compare import Comparison, Options
from bot.compare.jsondiff import MAX_VALUE_CHARS, compact
from bot.compare.model import JsonChange, JsonDiff
from bot.errors import SpecInvalid
from bot.spec import parse_spec, spec_schema

from ..conftest import compare_trees as compare


def dump(document: object) -> str:
    return json.dumps(document, indent=2)


def only_diff(comparison: Comparison) -> JsonDiff:
    (diff,) = comparison.json_diffs
    return diff


def triples(diff: JsonDiff) -> list[tuple[str, str, str | None, str | None]]:
    return [(c.pointer, c.change, c.old, c.new) for c in diff.changes]


BASE = {
    "model": {"name": "rf", "layers": [{"units": 64}, {"units": 32}], "dropout": 0.1},
    "seed": 1,
    "tags": ["a", "b"],
    "notes": None,
}


def test_nested_changes_are_addressed_by_path_in_document_order(tmp_path):
    head = {
        "model": {"name": "rf", "layers": [{"units": 64}, {"units": 48}], "dropout": 0.2, "depth": 5},
        "seed": 1,
        "tags": ["a", "b", "c"],
        "notes": None,
    }
    comparison = compare(tmp_path, {"config.json": dump(BASE)}, {"config.json": dump(head)})
    row = comparison.file("config.json")
    assert (row.status, row.kind) == ("changed", "json")
    assert row.summary == "2 values changed, 2 added"
    diff = only_diff(comparison)
    assert triples(diff) == [
        ("model.layers[1].units", "changed", "32", "48"),
        ("model.dropout", "changed", "0.1", "0.2"),
        ("model.depth", "added", None, "5"),
        ("tags[2]", "added", None, '"c"'),
    ]
    assert (diff.total, diff.within_tolerance) == (4, 0)
    assert comparison.verdict == "changed"
    assert comparison.metrics == [] and comparison.text_diffs == []


def test_removed_keys_and_added_subtrees_are_one_change_each(tmp_path):
    head = {"model": {"name": "rf", "layers": [], "dropout": 0.1, "extra": {"a": [1, 2], "b": "x"}}}
    diff = only_diff(compare(tmp_path, {"c.json": dump(BASE)}, {"c.json": dump(head)}))
    assert triples(diff) == [
        ("model.layers[0]", "removed", '{"units":64}', None),
        ("model.layers[1]", "removed", '{"units":32}', None),
        ("model.extra", "added", None, '{"a":[1,2],"b":"x"}'),
        ("seed", "removed", "1", None),
        ("tags", "removed", '["a","b"]', None),
        ("notes", "removed", "null", None),
    ]
    assert diff.total == 6


def test_type_changes(tmp_path):
    base = {"n": 1, "flag": True, "obj": {"a": 1}, "maybe": None, "same": 1, "float": 1}
    head = {"n": "1", "flag": 1, "obj": [1], "maybe": 0, "same": 1.0, "float": 1.5}
    comparison = compare(tmp_path, {"r.json": dump(base)}, {"r.json": dump(head)})
    assert triples(only_diff(comparison)) == [
        ("n", "type", "1", '"1"'),
        ("flag", "type", "true", "1"),  # a bool is never a number, though True == 1 in Python
        ("obj", "type", '{"a":1}', "[1]"),
        ("maybe", "type", "null", "0"),
        ("float", "changed", "1", "1.5"),  # ints and floats are both numbers; 1 == 1.0
    ]
    assert comparison.file("r.json").summary == "1 value changed, 4 changed type"


def test_lists_are_compared_index_by_index(tmp_path):
    diff = only_diff(compare(tmp_path, {"l.json": "[1, 2, 3]"}, {"l.json": "[0, 1, 2, 3]"}))
    assert triples(diff) == [
        ("[0]", "changed", "1", "0"),
        ("[1]", "changed", "2", "1"),
        ("[2]", "changed", "3", "2"),
        ("[3]", "added", None, "3"),
    ]


def test_per_file_tolerance_and_the_default(tmp_path):
    base = {"loss": 1.0, "acc": 0.9, "big": 1000.0, "steps": 10}
    head = {"loss": 1.1, "acc": 0.75, "big": 1004.0, "steps": 11}
    files = {"a.json": dump(base), "b.json": dump(base)}
    spec = {
        "json": [{"file": "a.json", "tolerance": {"abs": 0.1, "rel": 0.005}}],
        "json_tolerance": {"abs": 0.5},
    }
    comparison = compare(tmp_path, files, {"a.json": dump(head), "b.json": dump(head)}, spec)
    listed, default = comparison.json_diffs
    # a.json: |Δ| ≤ 0.1 + 0.005·|main|: loss (0.1 ≤ 0.105) and big (4 ≤ 5.1) are within
    assert triples(listed) == [("acc", "changed", "0.9", "0.75"), ("steps", "changed", "10", "11")]
    assert (listed.total, listed.within_tolerance) == (2, 2)
    assert comparison.file("a.json").summary == "2 values changed; 2 more within tolerance"
    # b.json, not listed: the default |Δ| ≤ 0.5
    assert triples(default) == [("big", "changed", "1000.0", "1004.0"), ("steps", "changed", "10", "11")]
    assert (default.total, default.within_tolerance) == (2, 2)


def test_float_noise_at_the_boundary_is_within(tmp_path):
    comparison = compare(
        tmp_path,
        {"x.json": '{"v": 1.0, "w": 1.0}'},
        {"x.json": '{"v": 1.1, "w": 1.1000001}'},
        {"json_tolerance": {"abs": 0.1}},
    )
    diff = only_diff(comparison)  # 1.1 - 1.0 == 0.10000000000000009 in floats
    assert (triples(diff), diff.within_tolerance) == ([("w", "changed", "1.0", "1.1000001")], 1)


def test_exact_by_default(tmp_path):
    diff = only_diff(compare(tmp_path, {"x.json": '{"v": 0.1}'}, {"x.json": '{"v": 0.10000000001}'}))
    assert triples(diff) == [("v", "changed", "0.1", "0.10000000001")]


def test_only_within_tolerance_is_reported_as_such(tmp_path):
    comparison = compare(
        tmp_path, {"x.json": '{"v": 1.0}'}, {"x.json": '{"v": 1.05}'}, {"json_tolerance": {"rel": 0.1}}
    )
    diff = only_diff(comparison)
    assert (diff.total, diff.within_tolerance, diff.changes) == (0, 1, [])
    assert comparison.file("x.json").summary == "1 value changed within tolerance"
    assert comparison.verdict == "changed"


def test_nan_equals_nan_and_infinities(tmp_path):
    base = '{"a": NaN, "b": NaN, "c": Infinity, "d": 1, "e": Infinity, "f": 1e400, "g": 1}'
    huge = "123456789012345678901234567890"  # an int beyond any float
    head = f'{{"a": NaN, "b": 1, "c": Infinity, "d": Infinity, "e": 5, "f": 1e400, "g": {huge}}}'
    spec = {"json_tolerance": {"abs": 1e9, "rel": 0.5}}
    comparison = compare(tmp_path, {"x.json": base}, {"x.json": head}, spec)
    assert triples(only_diff(comparison)) == [
        ("b", "changed", "NaN", "1"),
        ("d", "changed", "1", "Infinity"),
        ("e", "changed", "Infinity", "5"),  # not within rel·|∞|
        ("g", "changed", "1", huge),
    ]


def test_formatting_and_key_order_only(tmp_path):
    comparison = compare(
        tmp_path, {"x.json": '{"a": 1, "b": [1, 2]}'}, {"x.json": '{\n "b": [1,2],\n "a": 1\n}'}
    )
    row = comparison.file("x.json")
    assert row.summary == "no value changed (formatting or key order differs)"
    assert row.volatile_only and comparison.json_diffs == []


def test_yaml_documents_and_awkward_keys(tmp_path):
    base = "model:\n  lr: 0.1\n  'a.b': 1\n  'with space': x\n  5: five\nlist:\n  - {k: 1}\n"
    head = "model:\n  lr: 0.2\n  'a.b': 2\n  'with space': y\n  5: FIVE\nlist:\n  - {k: 2}\n"
    comparison = compare(tmp_path, {"cfg.yaml": base, "cfg.yml": base}, {"cfg.yaml": head, "cfg.yml": head})
    first, second = comparison.json_diffs
    assert triples(first) == [
        ("model.lr", "changed", "0.1", "0.2"),
        ('model["a.b"]', "changed", "1", "2"),
        ('model["with space"]', "changed", '"x"', '"y"'),
        ("model[5]", "changed", '"five"', '"FIVE"'),
        ("list[0].k", "changed", "1", "2"),
    ]
    assert triples(second) == triples(first)
    assert [f.kind for f in comparison.files] == ["json", "json"]


def test_ignore_paths(tmp_path):
    base = {"meta": {"created": "mon", "host": "a"}, "runs": [{"s": 1, "ok": 1}, {"s": 2, "ok": 1}], "v": 1}
    head = {"meta": {"created": "tue", "host": "b"}, "runs": [{"s": 5, "ok": 1}, {"s": 6, "ok": 0}], "v": 1}
    spec = {"json": [{"file": "r.json", "ignore_paths": ["meta.created", "runs[*].s"]}]}
    diff = only_diff(compare(tmp_path, {"r.json": dump(base)}, {"r.json": dump(head)}, spec))
    assert triples(diff) == [("meta.host", "changed", '"a"', '"b"'), ("runs[1].ok", "changed", "1", "0")]
    spec = {"json": [{"file": "r.json", "ignore_paths": ["meta", "runs"]}]}
    comparison = compare(tmp_path, {"r.json": dump(base)}, {"r.json": dump(head)}, spec)
    assert comparison.json_diffs == [] and comparison.file("r.json").volatile_only


def test_changes_listed_are_capped_and_all_counted(tmp_path):
    base = {f"k{i:03}": i for i in range(100)}
    head = {f"k{i:03}": i + 1 for i in range(100)}
    comparison = compare(
        tmp_path, {"x.json": dump(base)}, {"x.json": dump(head)}, options=Options(examples=3)
    )
    diff = only_diff(comparison)
    assert diff.total == 100
    assert [c.pointer for c in diff.changes] == [f"k{i:03}" for i in range(12)]
    assert comparison.file("x.json").summary == "100 values changed"


def test_long_values_are_shortened():
    long = {"text": "x" * 500, "list": list(range(1000))}
    shown = compact(long)
    assert len(shown) == MAX_VALUE_CHARS and shown.endswith("…")
    assert shown.startswith('{"text":"xxx')
    assert compact({"a": [1, {"b": None}], "c": "é"}) == '{"a":[1,{"b":null}],"c":"é"}'


def test_long_changed_value_in_a_diff(tmp_path):
    diff = only_diff(compare(tmp_path, {"x.json": '{"s": "a"}'}, {"x.json": json.dumps({"s": "b" * 300})}))
    (change,) = diff.changes
    assert change == JsonChange(pointer="s", change="changed", old='"a"', new='"' + "b" * 78 + "…")


def test_scalar_document(tmp_path):
    diff = only_diff(compare(tmp_path, {"x.json": "1"}, {"x.json": '"1"'}))
    assert triples(diff) == [("(root)", "type", "1", '"1"')]


def test_added_and_removed_documents(tmp_path):
    comparison = compare(tmp_path, {"old.json": "[1, 2]"}, {"new.yaml": "a: 1\nb: 2\n"})
    assert comparison.file("new.yaml").summary == "new, an object of 2 keys"
    assert comparison.file("old.json").summary == "removed, was a list of 2 items"
    assert comparison.json_diffs == []


def test_metrics_files_still_go_to_metrics(tmp_path):
    comparison = compare(
        tmp_path,
        {"metrics.json": '{"acc": 0.9}', "params.json": '{"lr": 1}'},
        {"metrics.json": '{"acc": 0.8}', "params.json": '{"lr": 1}'},
    )
    assert comparison.file("metrics.json").kind == "metrics"
    assert comparison.file("params.json").kind == "json"  # identical: kind by name
    assert comparison.json_diffs == [] and len(comparison.metrics) == 1


def test_unparseable_document_is_a_problem_and_diffed_as_text(tmp_path):
    comparison = compare(
        tmp_path,
        {"bad.json": '{"a": 1}\n', "good.json": '{"a": 1}', "bad.yaml": "a: [1\n"},
        {"bad.json": '{"a": 2,\n', "good.json": '{"a": 2}', "bad.yaml": "a: [2\n"},
    )
    messages = [p.message for p in comparison.problems]
    assert len(messages) == 3
    assert messages[0].startswith("the branch's bad.json could not be parsed as JSON: Expecting property")
    assert messages[1].startswith("main's bad.yaml could not be parsed as YAML: ")
    assert messages[2].startswith("the branch's bad.yaml could not be parsed as YAML: ")
    assert not any(p.blocking for p in comparison.problems)
    bad = comparison.file("bad.json")
    assert (bad.kind, bad.summary) == ("json", "unparseable; +1 −1 lines")
    assert comparison.text_diff("bad.json") is not None
    assert triples(only_diff(comparison)) == [("a", "changed", "1", "2")]  # good.json, still compared
    assert comparison.verdict == "changed"


def test_non_utf8_document_is_compared_by_size(tmp_path):
    comparison = compare(tmp_path, {"x.json": '"caf"'}, {"x.json": '"caf\xe9"'.encode("latin-1")})
    (problem,) = comparison.problems
    assert problem.message == "the branch's x.json is not UTF-8 (byte 0xe9 at offset 4)"
    assert comparison.file("x.json").summary == "unreadable; size 5 B → 6 B"


def test_empty_document_is_a_problem(tmp_path):
    comparison = compare(tmp_path, {"x.yaml": "a: 1\n"}, {"x.yaml": ""})
    (problem,) = comparison.problems
    assert problem.message == "the branch's x.yaml could not be parsed as YAML: the file is empty"


def test_yaml_alias_bomb_is_bounded(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = "\n".join(levels) + "\n"  # 10^9 leaves from a 600-byte file
    start = time.monotonic()
    comparison = compare(tmp_path, {"b.yaml": bomb}, {"b.yaml": bomb + "more: 1\n"})
    assert time.monotonic() - start < 30
    (problem,) = comparison.problems
    assert problem.message == "b.yaml was compared as text: it has more than 1,000,000 values"
    assert comparison.file("b.yaml").summary == "unparseable; +1 −0 lines"


def test_same_inputs_give_the_same_json(tmp_path):
    base = {"b.json": dump(BASE), "c.yaml": "x: [1, 2, {y: 3}]\n"}
    head = {"b.json": dump({**BASE, "seed": 2, "z": [1]}), "c.yaml": "x: [2, 1, {y: 4}, 5]\n"}
    first = compare(tmp_path, base, head).model_dump_json()
    assert compare(tmp_path, base, head).model_dump_json() == first
    assert Comparison.model_validate_json(first).model_dump_json() == first


def test_spec_json_section():
    spec = parse_spec(
        "run: {command: x}\ncompare:\n  json:\n    - file: out/c.json\n      tolerance: {abs: 0.01}\n"
        "      ignore_paths: [meta]\n  json_tolerance: {rel: 0.001}\n"
    )
    listed = spec.compare.json_file("out/c.json")
    assert listed is not None and (listed.tolerance.abs, listed.ignore_paths) == (0.01, ["meta"])
    assert spec.compare.json_tolerance.rel == 0.001 and spec.compare.json_file("other.json") is None
    assert "json" in spec_schema()["$defs"]["CompareSection"]["properties"]
    with pytest.raises(
        SpecInvalid, match=r"tierbot.yaml:3: compare.json\[0\].file: compare.json\[\].file must"
    ):
        parse_spec("run: {command: x}\ncompare:\n  json: [{file: ../c.json}]\n")
