"""The comparison engine on real output directories: main's outputs in `base/`, the branch's in `head/`.

Manifests are made the way runs make them (xxh3-128 of each file's bytes) and files are read from disk,
so what is tested is exactly what the pipeline does with a run's outputs.
"""

import json
from pathlib import Path

import pytest

from bot.compare import Comparison, compare_outputs
from bot.compare.text import MAX_DIFF_LINES, mask
from bot.manifest import FileEntry
from bot.outputs import manifest_of
from bot.spec import CompareSection

from ..conftest import compare_trees as compare
from ..conftest import write_tree as write


def metric(comparison: Comparison, name: str, file: str = "metrics.json"):
    return next(m for m in comparison.metrics if m.name == name and m.file == file)


def metrics_spec(rules: dict, file: str = "metrics.json") -> dict:
    return {"metrics": [{"file": file, "metrics": rules}]}


# -- files ---------------------------------------------------------------------------------------------


def test_statuses_of_every_file(tmp_path):
    comparison = compare(
        tmp_path,
        base={"same.txt": "a\n", "changed.bin": b"\x00\x01", "gone.txt": "x\n", "tmp/cache.db": b"1"},
        head={"same.txt": "a\n", "changed.bin": b"\x00\x02\x03", "new.txt": "y\nz\n", "tmp/cache.db": b"2"},
        spec={"ignore": ["tmp/*"]},
    )
    rows = {f.path: (f.status, f.kind) for f in comparison.files}
    assert rows == {
        "changed.bin": ("changed", "binary"),
        "gone.txt": ("removed", "text"),
        "new.txt": ("added", "text"),
        "same.txt": ("identical", "text"),
        "tmp/cache.db": ("ignored", "binary"),
    }
    assert [f.path for f in comparison.files] == sorted(rows)
    assert comparison.file("changed.bin").summary == "size 2 B → 3 B"
    assert comparison.file("new.txt").summary == "new, 2 lines"
    assert (comparison.file("gone.txt").size_base, comparison.file("gone.txt").size_head) == (2, None)
    assert comparison.verdict == "changed"
    assert comparison.reasons[0] == "1 file changed, 1 added, 1 removed"


def test_identical_outputs_pass_without_opening_files(tmp_path):
    write(tmp_path / "out", {"metrics.json": '{"accuracy": 0.9}', "model.bin": b"\x00" * 10})
    manifest = manifest_of(tmp_path / "out")

    def never(entry: FileEntry) -> Path:
        raise AssertionError(f"{entry.path} was opened although it is identical")

    comparison = compare_outputs(manifest, manifest, never, never, CompareSection())
    assert comparison.verdict == "pass"
    assert comparison.reasons == ["no output changed (2 files identical)"]
    assert {f.status for f in comparison.files} == {"identical"}


def test_ignored_changes_still_pass(tmp_path):
    comparison = compare(
        tmp_path, {"a.txt": "1", "run.log": "x"}, {"a.txt": "1", "run.log": "y"}, spec={"ignore": ["*.log"]}
    )
    assert comparison.verdict == "pass"
    assert comparison.reasons == ["no output changed (1 file identical, 1 ignored)"]


def test_text_sniffed_without_known_extension(tmp_path):
    comparison = compare(
        tmp_path,
        {"README": "one\ntwo\n", "blob": b"\x00bin"},
        {"README": "one\nthree\n", "blob": b"\x00bin2"},
    )
    assert comparison.file("README").kind == "text"
    assert comparison.file("README").summary == "+1 −1 lines"
    assert comparison.file("blob").kind == "binary"


# -- metrics ---------------------------------------------------------------------------------------------


def test_regression_beyond_absolute_threshold_fails(tmp_path):
    comparison = compare(
        tmp_path,
        {"metrics.json": json.dumps({"accuracy": 0.9})},
        {"metrics.json": json.dumps({"accuracy": 0.869})},
        metrics_spec({"accuracy": {"direction": "higher", "max_regression": 0.01}}),
    )
    accuracy = metric(comparison, "accuracy")
    assert (accuracy.change, accuracy.assessment, accuracy.failed) == ("down", "worse", True)
    assert accuracy.delta == pytest.approx(-0.031)
    assert accuracy.delta_pct == pytest.approx(-3.4444444444)
    assert comparison.verdict == "fail"
    assert comparison.reasons[0] == "metric accuracy in metrics.json got worse by 0.031 (threshold 0.01)"


def test_regression_within_threshold_is_only_changed(tmp_path):
    comparison = compare(
        tmp_path,
        {"metrics.json": json.dumps({"accuracy": 0.9})},
        {"metrics.json": json.dumps({"accuracy": 0.89})},  # exactly 0.01 worse: not beyond
        metrics_spec({"accuracy": {"direction": "higher", "max_regression": 0.01}}),
    )
    assert metric(comparison, "accuracy").assessment == "worse"
    assert not metric(comparison, "accuracy").failed
    assert comparison.verdict == "changed"
    assert "metric: 1 worse within threshold" in comparison.reasons


def test_lower_is_better_with_relative_threshold(tmp_path):
    comparison = compare(
        tmp_path,
        {"metrics.json": json.dumps({"loss": 0.40, "rmse": 2.0})},
        {"metrics.json": json.dumps({"loss": 0.43, "rmse": 2.03})},
        metrics_spec(
            {
                "loss": {"direction": "lower", "max_regression": "5%"},
                "rmse": {"direction": "lower", "max_regression": "5%"},
            }
        ),
    )
    loss, rmse = metric(comparison, "loss"), metric(comparison, "rmse")
    assert (loss.change, loss.assessment, loss.failed, loss.threshold) == ("up", "worse", True, "5%")
    assert (rmse.assessment, rmse.failed) == ("worse", False)  # 1.5% worse, within 5%
    assert comparison.verdict == "fail"
    assert comparison.reasons[0] == "metric loss in metrics.json got worse by 0.03 (7.5%; threshold 5%)"


def test_improved_metric_is_changed_not_fail(tmp_path):
    comparison = compare(
        tmp_path,
        {"metrics.json": json.dumps({"accuracy": 0.90, "loss": 0.5})},
        {"metrics.json": json.dumps({"accuracy": 0.95, "loss": 0.4})},
        metrics_spec(
            {
                "accuracy": {"direction": "higher", "max_regression": 0.0},
                "loss": {"direction": "lower", "max_regression": 0.0},
            }
        ),
    )
    assert [(m.name, m.assessment, m.failed) for m in comparison.metrics] == [
        ("accuracy", "better", False),
        ("loss", "better", False),
    ]
    assert metric(comparison, "accuracy").delta == 0.05  # no float noise: 0.95 - 0.9
    assert comparison.verdict == "changed"
    assert "metrics: 2 better" in comparison.reasons


def test_metrics_without_direction_are_neutral(tmp_path):
    comparison = compare(
        tmp_path, {"eval_metrics.json": '{"auc": 0.7}'}, {"eval_metrics.json": '{"auc": 0.6}'}
    )
    auc = metric(comparison, "auc", "eval_metrics.json")
    assert (auc.change, auc.assessment, auc.direction, auc.threshold) == ("down", "neutral", None, None)
    assert comparison.file("eval_metrics.json").kind == "metrics"  # auto-detected by its name
    assert comparison.verdict == "changed"


def test_added_and_removed_metrics(tmp_path):
    comparison = compare(
        tmp_path,
        {"metrics.json": json.dumps({"accuracy": 0.9, "old": 1, "guarded": 3})},
        {"metrics.json": json.dumps({"accuracy": 0.9, "new": 2})},
        metrics_spec({"guarded": {"direction": "lower", "max_regression": 1}}),
    )
    new, old, guarded = metric(comparison, "new"), metric(comparison, "old"), metric(comparison, "guarded")
    assert (new.base, new.head, new.change, new.delta, new.delta_pct) == (None, 2, "added", None, None)
    assert (old.base, old.head, old.change, old.failed) == (1, None, "removed", False)
    assert (guarded.change, guarded.failed) == ("removed", True)  # a guarded metric cannot just vanish
    assert metric(comparison, "accuracy").change == "same"
    assert comparison.verdict == "fail"
    assert comparison.reasons[0] == "metric guarded in metrics.json is missing on the branch (threshold 1)"


def test_removing_a_guarded_metrics_file_fails(tmp_path):
    comparison = compare(
        tmp_path,
        {"metrics.json": '{"accuracy": 0.9, "n": 5}'},
        {},
        metrics_spec({"accuracy": {"direction": "higher", "max_regression": 0.01}}),
    )
    assert comparison.file("metrics.json").summary == "removed, had 2 metrics"
    assert [(m.name, m.change, m.failed) for m in comparison.metrics] == [
        ("accuracy", "removed", True),
        ("n", "removed", False),
    ]
    assert comparison.verdict == "fail"


def test_nested_metrics_are_flattened_and_bools_and_strings_skipped(tmp_path):
    base = {"test": {"accuracy": 0.9, "per_class": [0.8, {"f1": 0.7}]}, "done": True, "model": "rf", "n": 3}
    head = {"test": {"accuracy": 0.9, "per_class": [0.85, {"f1": 0.7}]}, "done": False, "model": "rf", "n": 3}
    comparison = compare(tmp_path, {"metrics.json": json.dumps(base)}, {"metrics.json": json.dumps(head)})
    assert [m.name for m in comparison.metrics] == [
        "n",
        "test.accuracy",
        "test.per_class[0]",
        "test.per_class[1].f1",
    ]
    assert metric(comparison, "test.per_class[0]").change == "up"
    assert comparison.file("metrics.json").summary == "1 metric changed"


def test_a_long_list_is_one_row_its_last_value_judged_by_the_lists_rule(tmp_path):
    epochs = 40
    base = {"loss": [1 / (i + 1) for i in range(epochs)], "per_class": [0.7, 0.8, 0.9]}
    head = {"loss": [1.2 / (i + 1) for i in range(epochs - 5)], "per_class": [0.7, 0.8, 0.95]}
    comparison = compare(
        tmp_path,
        {"metrics.json": json.dumps(base)},
        {"metrics.json": json.dumps(head)},
        metrics_spec({"loss": {"direction": "lower", "max_regression": "10%"}}),
    )
    listed = ["loss[-1]", "per_class[0]", "per_class[1]", "per_class[2]"]
    assert [m.name for m in comparison.metrics] == listed
    last = metric(comparison, "loss[-1]")
    assert (last.base, last.head) == (1 / epochs, 1.2 / (epochs - 5))
    assert (last.assessment, last.failed) == ("worse", True)
    assert not comparison.problems  # `loss`'s rule found its metric
    assert [s.name for s in comparison.series] == ["loss", "per_class"]  # the curve is drawn whole


def test_a_list_long_on_one_side_only_is_one_row_on_both(tmp_path):
    comparison = compare(
        tmp_path,
        {"metrics.json": json.dumps({"loss": [0.5, 0.4]})},
        {"metrics.json": json.dumps({"loss": [0.5 - i / 100 for i in range(12)]})},
    )
    assert [m.name for m in comparison.metrics] == ["loss[-1]"]
    assert (metric(comparison, "loss[-1]").base, metric(comparison, "loss[-1]").head) == (0.4, 0.39)


def test_listed_elements_are_in_their_order(tmp_path):
    base, head = {"f1": [0.5] * 10, "a2": 1, "a10": 1}, {"f1": [0.6] * 10, "a2": 2, "a10": 2}
    comparison = compare(tmp_path, {"metrics.json": json.dumps(base)}, {"metrics.json": json.dumps(head)})
    names = [m.name for m in comparison.metrics]
    assert names == ["a2", "a10", *(f"f1[{i}]" for i in range(10))]


def test_yaml_and_toml_metrics(tmp_path):
    comparison = compare(
        tmp_path,
        {"scores.yaml": "eval:\n  f1: 0.80\n  count: 100\n", "train_metrics.toml": "[train]\nloss = 0.5\n"},
        {"scores.yaml": "eval:\n  f1: 0.70\n  count: 100\n", "train_metrics.toml": "[train]\nloss = 0.25\n"},
        metrics_spec({"eval.f1": {"direction": "higher", "max_regression": "10%"}}, file="scores.yaml"),
    )
    f1 = metric(comparison, "eval.f1", "scores.yaml")
    assert (f1.base, f1.head, f1.failed) == (0.8, 0.7, True)  # 12.5% worse
    loss = metric(comparison, "train.loss", "train_metrics.toml")
    assert (loss.delta, loss.delta_pct) == (-0.25, -50.0)
    assert comparison.file("train_metrics.toml").kind == "metrics"
    assert comparison.verdict == "fail"


def test_yaml_metrics_are_read_as_yaml_1_2(tmp_path):
    """`1e-3` is a number (PyYAML alone reads it as text, so the metric would vanish); `yes` is a word."""
    comparison = compare(
        tmp_path,
        {"metrics.yaml": "lr: 1e-3\nloss: 2.5E-2\nconverged: yes\n"},
        {"metrics.yaml": "lr: 1e-4\nloss: 2.0E-2\nconverged: no\n"},
    )
    read = [(m.name, m.base, m.head) for m in comparison.metrics]
    assert read == [("loss", 0.025, 0.02), ("lr", 1e-3, 1e-4)]


def test_metrics_of_added_and_removed_files(tmp_path):
    comparison = compare(tmp_path, {"old_metrics.json": '{"a": 1, "b": 2}'}, {"new_metrics.yml": "c: 3\n"})
    assert comparison.file("old_metrics.json").summary == "removed, had 2 metrics"
    assert comparison.file("new_metrics.yml").summary == "new, 1 metric"
    assert [(m.file, m.name, m.change) for m in comparison.metrics] == [
        ("new_metrics.yml", "c", "added"),
        ("old_metrics.json", "a", "removed"),
        ("old_metrics.json", "b", "removed"),
    ]


def test_nan_on_the_branch_is_worse_and_fails_a_guarded_metric(tmp_path):
    comparison = compare(
        tmp_path,
        {"metrics.json": '{"loss": 0.5}'},
        {"metrics.json": '{"loss": NaN}'},
        metrics_spec({"loss": {"direction": "lower", "max_regression": 0.1}}),
    )
    loss = metric(comparison, "loss")
    assert (loss.change, loss.assessment, loss.failed, loss.delta) == ("changed", "worse", True, None)
    assert "became NaN" in comparison.reasons[0]
    again = Comparison.model_validate_json(comparison.model_dump_json())
    assert again.model_dump_json() == comparison.model_dump_json()
    # What the pipeline stores must be strict JSON (PostgreSQL refuses NaN).
    assert json.loads(json.dumps(comparison.model_dump(mode="json"), allow_nan=False))


def test_unparseable_metrics_is_a_problem_and_the_rest_is_compared(tmp_path):
    comparison = compare(
        tmp_path,
        {"metrics.json": '{"accuracy": 0.9}', "notes.txt": "a\n", "other.bin": b"\x00"},
        {"metrics.json": '{"accuracy": 0.9,,}', "notes.txt": "b\n", "other.bin": b"\x01"},
        metrics_spec({"accuracy": {"direction": "higher", "max_regression": 0.01}}),
    )
    (problem,) = comparison.problems
    assert problem.path == "metrics.json"
    assert problem.message.startswith("the branch's metrics.json could not be parsed as metrics: Expecting")
    assert problem.blocking  # the guarded accuracy could not be checked on the branch
    assert comparison.file("metrics.json").summary == "unparseable; +1 −1 lines"
    assert comparison.text_diff("metrics.json") is not None
    assert comparison.file("notes.txt").summary == "+1 −1 lines"
    assert comparison.file("other.bin").status == "changed"
    assert comparison.verdict == "fail"


def test_unparseable_unguarded_metrics_is_not_a_failure(tmp_path):
    comparison = compare(tmp_path, {"metrics.yaml": "a: 1\n"}, {"metrics.yaml": "a: [1\n"})
    assert len(comparison.problems) == 1 and not comparison.problems[0].blocking
    assert comparison.verdict == "changed"
    assert "1 problem comparing files (see below)" in comparison.reasons


def test_rule_for_a_metric_that_does_not_exist_is_reported(tmp_path):
    comparison = compare(
        tmp_path,
        {"metrics.json": '{"acc": 0.9}'},
        {"metrics.json": '{"acc": 0.91}'},
        metrics_spec({"accuracy": {"direction": "higher"}}),
    )
    assert [p.message for p in comparison.problems] == [
        "tierbot.yaml has a rule for metric accuracy, but metrics.json has no numeric value by that name on "
        "either side"
    ]


def test_metrics_file_listed_but_never_produced(tmp_path):
    comparison = compare(tmp_path, {"a.txt": "1"}, {"a.txt": "1"}, metrics_spec({}, file="eval/metrics.json"))
    assert [p.path for p in comparison.problems] == ["eval/metrics.json"]
    assert comparison.verdict == "pass"


# -- text ------------------------------------------------------------------------------------------------

LOG_BASE = """\
2024-05-01T10:00:00.123Z INFO starting run 3f2a9c1e7b in /tmp/tierbot-abc123/work
Mon, 01 Jan 2024 10:00:00 +0000 loaded 150000 rows in 1.23s
epoch 1: loss=0.51 (12ms/step) id=123e4567-e89b-12d3-a456-426614174000 elapsed 0:00:03
done at 10:00:04
"""
LOG_HEAD = """\
2024-06-11T23:59:59+02:00 INFO starting run 9d8e7f6a5b in /tmp/tierbot-zz9/work
Tue, 11 Jun 2024 23:59:59 +0200 loaded 150000 rows in 2.5s
epoch 1: loss=0.51 (340ms/step) id=00000000-1111-2222-3333-444444444444 elapsed 0:01:13
done at 23:59:59
"""


def test_log_that_differs_only_in_volatile_tokens(tmp_path):
    comparison = compare(tmp_path, {"train.log": LOG_BASE}, {"train.log": LOG_HEAD})
    log = comparison.file("train.log")
    assert (log.status, log.kind, log.summary, log.volatile_only) == (
        "changed",
        "text",
        "only volatile tokens differ",
        True,
    )
    assert comparison.text_diffs == []
    assert comparison.verdict == "changed"
    assert comparison.reasons == ["1 file changed (only in volatile tokens)"]


def test_masked_diff_shows_only_real_changes(tmp_path):
    head = LOG_HEAD.replace("loss=0.51", "loss=0.49")
    comparison = compare(tmp_path, {"train.log": LOG_BASE}, {"train.log": head})
    (diff,) = comparison.text_diffs
    assert (diff.lines_added, diff.lines_removed, diff.truncated) == (1, 1, False)
    assert "-epoch 1: loss=0.51 (<duration>/step) id=<uuid> elapsed <time>" in diff.diff.splitlines()
    assert "+epoch 1: loss=0.49 (<duration>/step) id=<uuid> elapsed <time>" in diff.diff.splitlines()
    assert diff.diff.startswith("--- a/train.log\n+++ b/train.log\n@@")
    assert comparison.file("train.log").summary == "+1 −1 lines"


def test_mask_keeps_plain_numbers():
    assert mask("rows 150000000 sha 1a2b3c4d5e6f seed 12345678") == "rows 150000000 sha <hex> seed 12345678"
    assert mask("at 0x7f3a2b1c9d, /var/folders/xy/T/tmpab/x.txt") == "at <hex>, <tmp>"


def test_custom_mask_from_spec(tmp_path):
    base = {"serve.log": "worker pid=4411 ready\nhost node-17 up\n"}
    head = {"serve.log": "worker pid=9 ready\nhost node-3 up\n"}
    assert compare(tmp_path / "plain", base, head).file("serve.log").summary == "+2 −2 lines"
    masked = compare(tmp_path / "masked", base, head, {"mask": [r"pid=\d+", r"node-\d+"]})
    assert masked.file("serve.log").summary == "only volatile tokens differ"


def test_long_diff_is_capped(tmp_path):
    base = "".join(f"line {i}\n" for i in range(1000))
    head = "".join(f"line {i} changed\n" for i in range(1000))
    (diff,) = compare(tmp_path, {"out.txt": base}, {"out.txt": head}).text_diffs
    assert (diff.lines_added, diff.lines_removed, diff.truncated) == (1000, 1000, True)
    assert len(diff.diff.splitlines()) == MAX_DIFF_LINES
    assert diff.diff_lines == 2003


def test_non_utf8_text_is_a_problem_and_compared_by_size(tmp_path):
    comparison = compare(tmp_path, {"notes.txt": "café\n"}, {"notes.txt": "caf\xe9\n".encode("latin-1")})
    (problem,) = comparison.problems
    assert problem.message == (
        "the branch's notes.txt is not UTF-8 text (byte 0xe9 at offset 3); it was compared as bytes"
    )
    assert not problem.blocking
    assert comparison.file("notes.txt").kind == "binary"
    assert comparison.file("notes.txt").summary == "size 6 B → 5 B"
    assert comparison.verdict == "changed"


def test_empty_files(tmp_path):
    comparison = compare(
        tmp_path,
        {"empty.txt": "", "was_empty.log": "", "metrics.json": ""},
        {"empty.txt": "", "was_empty.log": "now\n", "metrics.json": '{"a": 1}'},
    )
    assert comparison.file("empty.txt").status == "identical"
    assert comparison.file("was_empty.log").summary == "+1 −0 lines"
    assert [p.message for p in comparison.problems] == [
        "main's metrics.json could not be parsed as metrics: the file is empty"
    ]
    assert comparison.file("metrics.json").summary == "unparseable; +1 −0 lines"


def test_unreadable_file_is_a_problem(tmp_path):
    write(tmp_path / "base", {"a.txt": "1\n", "b.txt": "x\n"})
    write(tmp_path / "head", {"a.txt": "2\n", "b.txt": "y\n"})
    base, head = manifest_of(tmp_path / "base"), manifest_of(tmp_path / "head")
    (tmp_path / "head" / "a.txt").unlink()  # the blob store lost it
    comparison = compare_outputs(
        base,
        head,
        lambda e: tmp_path / "base" / e.path,
        lambda e: tmp_path / "head" / e.path,
        CompareSection(),
    )
    (problem,) = comparison.problems
    assert problem.path == "a.txt" and "could not be read" in problem.message
    assert comparison.file("a.txt").summary.startswith("not compared")
    assert comparison.file("b.txt").summary == "+1 −1 lines"


def test_same_inputs_give_byte_identical_json(tmp_path):
    base = {"metrics.json": '{"b": 1, "a": 2.5}', "x.log": LOG_BASE, "m.bin": b"\x00\x01", "z.txt": "q"}
    head = {"metrics.json": '{"a": 2.4, "b": 1, "c": 7}', "x.log": LOG_HEAD + "more\n", "n.bin": b"\x00"}
    first = compare(tmp_path, base, head).model_dump_json()
    second = compare(tmp_path, base, head).model_dump_json()
    assert first == second
    assert Comparison.model_validate_json(first).model_dump_json() == first
    stored = json.loads(first)  # what the pipeline keeps in the database and reads back
    assert Comparison.model_validate(stored).model_dump_json() == first
