"""`tierbot diff OLD NEW` as users run it: `python -m bot diff` in a subprocess, on real directories."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.cli.diff import compare_section
from bot.compare.files import kind_by_name
from bot.spec import CompareSection, load_compare_config

from ..fakes.cli import diff_result, stderr_of, tierbot_diff

CONFIG = """\
name: iris
run: {command: python train.py}
compare:
  metrics:
    - file: metrics.json
      metrics:
        accuracy: {direction: higher, max_regression: 0.01}
  mask: ['run-\\d+']
"""


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def outputs(tmp_path: Path, accuracy_head: float = 0.85) -> tuple[Path, Path]:
    """main's and the branch's outputs: a metric, a nested config, a log, a plot."""
    plot = np.zeros((6, 6, 3), np.uint8)
    changed = plot.copy()
    changed[2, 3] = 255
    old = write(
        tmp_path / "old",
        {
            "metrics.json": '{"accuracy": 0.9}',
            "config.json": '{"lr": 0.1, "layers": [64, 32]}',
            "train.log": "run-1 start\nloss 0.5\n",
            "plots/roc.png": png(plot),
        },
    )
    new = write(
        tmp_path / "new",
        {
            "metrics.json": f'{{"accuracy": {accuracy_head}}}',
            "config.json": '{"lr": 0.1000001, "layers": [64, 48]}',
            "train.log": "run-2 start\nloss 0.4\n",
            "plots/roc.png": png(changed),
        },
    )
    (tmp_path / "tierbot.yaml").write_text(CONFIG)
    return old, new


def test_failing_metric_exits_1_and_says_fail(tmp_path):
    old, new = outputs(tmp_path)
    done = tierbot_diff(old, new, "--config", "tierbot.yaml", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "FAIL" in done.stdout
    assert "metric accuracy in metrics.json got worse by 0.05 (threshold 0.01)" in done.stdout
    assert "config.json" in done.stdout and "2 values changed" in done.stdout
    assert "2.8% of pixels differ" in done.stdout  # 1 of 36
    assert "<masked> start" in done.stdout  # the config's mask applies to the log
    assert "Traceback" not in stderr_of(done)


def test_numbers_are_printed_whole_however_long(tmp_path):
    old = write(tmp_path / "old", {"metrics.json": '{"x": 0.09090909, "big": 123456789012.5}'})
    new = write(tmp_path / "new", {"metrics.json": '{"x": 0.1, "big": -1234567890123.25}'})
    done = tierbot_diff(old, new, cwd=tmp_path)
    lines = [line.split() for line in done.stdout.splitlines() if line[:3] in ("  x", "  b")]
    rows = {words[0]: words[1:4] for words in lines}
    assert rows["x"] == ["0.0909091", "0.1", "+0.00909091"]
    assert rows["big"] == ["1.23457e+11", "-1.23457e+12", "-1.35802e+12"]
    assert "…" not in done.stdout


def test_passing_within_threshold_exits_0(tmp_path):
    old, new = outputs(tmp_path, accuracy_head=0.895)
    done = tierbot_diff(old, new, "-c", tmp_path / "tierbot.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "CHANGED" in done.stdout


def test_json_output_is_the_comparison_and_nothing_else(tmp_path):
    old, new = outputs(tmp_path)
    done = tierbot_diff(old, new, "--config", "tierbot.yaml", "--json", "--abs", "1e-3", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    result = diff_result(done)
    assert result["verdict"] == "fail"
    assert {f["path"]: f["kind"] for f in result["files"]} == {
        "config.json": "json",
        "metrics.json": "metrics",
        "plots/roc.png": "image",
        "train.log": "text",
    }
    (config,) = result["json_diffs"]
    assert (config["total"], config["within_tolerance"]) == (1, 1)  # --abs covers lr, not the layers
    assert config["changes"] == [{"pointer": "layers[1]", "change": "changed", "old": "32", "new": "48"}]
    (image,) = result["images"]
    assert (image["differing_pixels"], image["diff_image"]) == (1, None)  # no --html: no pictures


def test_html_report_with_diff_pictures(tmp_path):
    old, new = outputs(tmp_path)
    done = tierbot_diff(old, new, "--html", "out/report.html", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    diff_result(done)  # the message about the report went to stderr
    assert "out/report.html" in stderr_of(done)
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "CHANGED" in page and "config.json" in page
    (image,) = diff_result(done)["images"]
    assert (tmp_path / "out" / "report_files" / image["diff_image"]).is_file()


def test_two_files_are_named_by_the_new_one(tmp_path):
    write(tmp_path, {"a/run1.yaml": "lr: 0.1\nseed: 1\n", "b/run2.yaml": "lr: 0.2\nseed: 1\n"})
    done = tierbot_diff("a/run1.yaml", "b/run2.yaml", "--json", "--html", "new/dir/r.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = diff_result(done)
    assert [(f["path"], f["summary"]) for f in result["files"]] == [("run2.yaml", "1 value changed")]
    assert "run2.yaml" in (tmp_path / "new" / "dir" / "r.html").read_text(encoding="utf-8")


def test_options_ignore_and_mask(tmp_path):
    write(tmp_path / "old", {"a.log": "took 5 apples\n", "tmp/x.bin": b"1"})
    write(tmp_path / "new", {"a.log": "took 7 apples\n", "tmp/x.bin": b"2"})
    done = tierbot_diff("old", "new", "--ignore", "tmp/*", "--mask", r"\d+ apples", "--json", cwd=tmp_path)
    result = diff_result(done)
    assert {f["path"]: f["status"] for f in result["files"]} == {"a.log": "changed", "tmp/x.bin": "ignored"}
    assert result["files"][0]["summary"] == "only volatile tokens differ"


def test_identical_directories_pass(tmp_path):
    write(tmp_path / "old", {"a.txt": "x\n"})
    write(tmp_path / "new", {"a.txt": "x\n"})
    done = tierbot_diff("old", "new", cwd=tmp_path)
    assert done.returncode == 0 and "PASS" in done.stdout


def test_missing_path_is_a_usage_error(tmp_path):
    (tmp_path / "old").mkdir()
    done = tierbot_diff("old", "nowhere", cwd=tmp_path)
    assert done.returncode == 2
    assert "nowhere does not exist" in stderr_of(done)
    assert "Traceback" not in stderr_of(done) and done.stdout == ""


def test_directory_against_file_is_a_usage_error(tmp_path):
    write(tmp_path, {"old/a.txt": "x", "new.txt": "y"})
    done = tierbot_diff("old", "new.txt", cwd=tmp_path)
    assert done.returncode == 2
    assert "give two directories or two files: old is a directory, new.txt is a file" in stderr_of(done)


def test_bad_config_and_bad_options_are_usage_errors(tmp_path):
    write(tmp_path, {"old/a.txt": "x", "new/a.txt": "y", "bad.yaml": "compare:\n  ignore: 3\n"})
    done = tierbot_diff("old", "new", "--config", "bad.yaml", cwd=tmp_path)
    assert (done.returncode, "Traceback" in stderr_of(done)) == (2, False)
    assert "bad.yaml:2: compare.ignore" in stderr_of(done)
    done = tierbot_diff("old", "new", "--config", "missing.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "missing.yaml could not be read" in stderr_of(done)
    done = tierbot_diff("old", "new", "--mask", "(", cwd=tmp_path)
    assert done.returncode == 2 and "not a regular expression" in stderr_of(done)
    done = tierbot_diff("old", "new", "--abs", "-1", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in stderr_of(done)


def test_link_out_of_the_directory_is_a_problem_not_a_refusal(tmp_path):
    write(tmp_path, {"old/a.txt": "x", "new/a.txt": "x", "secret.txt": "s"})
    (tmp_path / "new" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    done = tierbot_diff("old", "new", "--json", cwd=tmp_path)
    comparison = diff_result(done)
    assert done.returncode == 0 and comparison["verdict"] == "changed"  # nothing else differs
    (problem,) = comparison["problems"]
    assert problem["path"] == "leak.txt" and problem["skipped"]
    assert (
        problem["message"]
        == f"skipped on the branch: a symlink to {tmp_path / 'secret.txt'}, outside the workspace: not read"
    )


# -- how options and a config combine (no subprocess needed) --------------------------------------------


def test_options_add_to_the_config_and_listed_files_keep_their_rules(tmp_path):
    (tmp_path / "c.yaml").write_text(  # a compare-only file: no `run` section needed
        "compare:\n  ignore: ['*.tmp']\n  json:\n    - file: a.json\n      tolerance: {abs: 0.5}\n"
        "  json_tolerance: {rel: 0.01}\n"
    )
    config = load_compare_config(tmp_path / "c.yaml")
    assert config.name is None
    section = compare_section(config.compare, {"a.json", "b.json"}, [], 0.2, None, ["*.bak"], ["x+"])
    assert section.ignore == ["*.tmp", "*.bak"] and section.mask == ["x+"]
    assert section.json_file("a.json").tolerance.abs == 0.5  # listed: its own rule
    assert (section.json_tolerance.abs, section.json_tolerance.rel) == (0.2, 0.01)  # --abs, config's rel
    unchanged = compare_section(config.compare, {"a.json"}, [], None, None, [], [])
    assert unchanged == config.compare


@pytest.mark.skipif(kind_by_name("p.csv", False) != "table", reason="tables are not a file kind yet")
def test_key_and_tolerance_apply_to_tables_the_config_does_not_list():
    config = CompareSection.model_validate({"tables": [{"file": "listed.csv", "key": ["k"]}]})
    section = compare_section(config, {"listed.csv", "p.csv", "notes.txt"}, ["id"], None, 0.1, [], [])
    assert [(t.file, t.key, t.tolerance.rel) for t in section.tables] == [
        ("listed.csv", ["k"], 0.0),
        ("p.csv", ["id"], 0.1),
    ]
