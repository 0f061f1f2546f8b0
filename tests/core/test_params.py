"""Params files, the inputs of a run: parsed (YAML, JSON, TOML), flattened, diffed key by key, and shown
first in every report; through the real pipeline on real git repositories at the end."""

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from bot.compare.model import ParamChange, param_text
from bot.compare.params import (
    MAX_CHANGES,
    MAX_VALUES,
    ParamsUnreadable,
    compare_params,
    diff_params,
    parse_params,
)
from bot.errors import SpecInvalid, TierbotError
from bot.pipeline import Pipeline
from bot.render.markdown import render_markdown
from bot.render.slack import render_slack
from bot.render.terminal import render_terminal
from bot.request import RunRequest
from bot.spec import parse_spec
from bot.worker import Worker

from ..conftest import SIMPLE_SCRIPT, SIMPLE_SPEC, GitRepo
from ..golden.comparisons import CONTEXT

BASE_YAML = """\
train:
  lr: 0.1
  epochs: 10
  layers: [64, 32]
dropout: 0.2
optimizer: adam
seed: 1
"""
HEAD_YAML = """\
train:
  lr: 0.01
  epochs: 10
  layers: [128, 32]
  batch: 32
optimizer: adam
seed: true
"""


def commit(files: dict[str, str]):
    """A side's commit as the pipeline reads it: a file's text, None when the commit has no such file."""
    return files.get


def changes(diff) -> list[tuple]:
    return [(c.name, c.change, c.old, c.new) for c in diff.changes]


# -- parse, flatten, diff ----------------------------------------------------------------------------------


def test_nested_keys_are_dotted_lists_are_values_and_equal_keys_only_counted():
    diff = diff_params(
        "params.yaml", parse_params(BASE_YAML, "params.yaml"), parse_params(HEAD_YAML, "p.yaml")
    )
    assert changes(diff) == [
        ("dropout", "removed", 0.2, None),
        ("seed", "changed", 1, True),  # Python says 1 == True; a parameter that became a flag did change
        ("train.batch", "added", None, 32),
        ("train.layers", "changed", [64, 32], [128, 32]),
        ("train.lr", "changed", 0.1, 0.01),
    ]
    assert (diff.total, diff.unchanged) == (5, 2)  # optimizer, train.epochs
    assert (diff.base_note, diff.head_note) == (None, None)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("params.json", '{"train": {"lr": 0.1, "sizes": [1, 2]}, "name": "x", "flag": false, "none": null}'),
        ("params.toml", 'name = "x"\nflag = false\n[train]\nlr = 0.1\nsizes = [1, 2]\n'),
        ("params.yml", "name: x\nflag: false\ntrain: {lr: 0.1, sizes: [1, 2]}\n"),
    ],
)
def test_json_toml_and_yaml_read_alike(name, text):
    flat = parse_params(text, name)
    assert flat["train.lr"] == 0.1 and flat["train.sizes"] == [1, 2] and flat["name"] == "x"
    assert flat["flag"] is False


def test_yaml_params_are_read_as_written_by_yaml_1_2():
    flat = parse_params("shuffle: yes\nmode: on\nlr: 1e-3\nseed: 017\nat: 12:30\n", "params.yaml")
    assert flat == {"shuffle": "yes", "mode": "on", "lr": 0.001, "seed": 17, "at": "12:30"}


def test_values_json_cannot_hold_become_text_and_nan_equals_nan():
    flat = parse_params("when = 1979-05-27T07:32:00Z\nday = 1979-05-27\nloss = nan\nbig = inf\n", "p.toml")
    assert flat == {
        "when": "1979-05-27T07:32:00+00:00",
        "day": "1979-05-27",
        "loss": "NaN",
        "big": "Infinity",
    }
    assert diff_params("p.toml", flat, dict(flat)).total == 0
    assert json.dumps(flat)  # storable as JSON (PostgreSQL refuses NaN)


def test_an_empty_mapping_is_a_value_and_an_empty_file_has_no_keys():
    assert parse_params("a: {}\nb: {c: {}}\n", "p.yaml") == {"a": {}, "b.c": {}}
    assert parse_params("", "p.yaml") == parse_params("# nothing\n", "p.yaml") == {}
    assert parse_params("  \n", "p.json") == {}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("p.yaml", "a: [1, 2\n", "not valid YAML: "),
        ("p.json", "{'a': 1}", "not valid JSON: Expecting property name enclosed in double quotes"),
        ("p.toml", "a = \n", "not valid TOML: "),
        ("p.yaml", "- 1\n- 2\n", "not a mapping of parameters (a list)"),
        ("p.json", "[" * 10_000 + "]" * 10_000, "not valid JSON: nested too deeply"),
    ],
)
def test_what_cannot_be_read_says_why(name, text, message):
    with pytest.raises(ParamsUnreadable) as caught:
        parse_params(text, name)
    assert str(caught.value).startswith(message)


def test_aliases_are_walked_within_a_bound():
    """A few hundred bytes of nested YAML aliases name 10⁶ values: refused, not walked."""
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)]
    with pytest.raises(ParamsUnreadable, match=f"more than {MAX_VALUES:,} values"):
        parse_params("\n".join(lines), "p.yaml")
    assert parse_params("base: &b {lr: 0.1}\nrun:\n  <<: *b\n  seed: 1\n", "p.yaml") == {
        "base.lr": 0.1,
        "run.lr": 0.1,
        "run.seed": 1,
    }  # merge keys, DVC users' habit, still work


def test_many_changes_keep_the_first_and_count_all():
    base = {f"k{i:04d}": i for i in range(300)}
    head = {f"k{i:04d}": i + 1 for i in range(300)}
    diff = diff_params("p.yaml", base, head)
    assert len(diff.changes) == MAX_CHANGES and diff.total == 300 and diff.unchanged == 0
    assert diff.changes[0].name == "k0000"


def test_value_text_quotes_only_what_would_read_as_another_type():
    assert [param_text(v) for v in (0.01, True, None, [1, "a"], {"b": 1})] == [
        "0.01",
        "true",
        "null",
        '[1, "a"]',
        '{"b": 1}',
    ]
    assert [param_text(v) for v in ("adam", "0.1", "true", "", " x", "a b")] == [
        "adam",
        '"0.1"',
        '"true"',
        '""',
        '" x"',
        "a b",
    ]
    change = ParamChange(name="seed", change="changed", old="1", new=1)
    assert (change.old_text, change.new_text) == ('"1"', "1")


# -- which files, from which commit -------------------------------------------------------------------------


def test_dvc_params_yaml_by_default_when_a_commit_has_it():
    assert compare_params(None, commit({}), commit({"other.yaml": "a: 1"})) == []
    (added,) = compare_params(None, commit({}), commit({"params.yaml": "lr: 0.1\n"}))
    assert (added.path, added.base_note, added.head_note) == ("params.yaml", "missing", None)
    assert changes(added) == [("lr", "added", None, 0.1)]  # a new params file: every key is new
    assert compare_params([], commit({"params.yaml": "a: 1"}), commit({"params.yaml": "a: 2"})) == []


def test_listed_files_are_read_on_both_sides_and_said_when_missing_or_broken():
    base = commit({"params.yaml": BASE_YAML, "configs/train.json": '{"lr": 1}', "gone.toml": "a = 1"})
    head = commit({"params.yaml": BASE_YAML, "configs/train.json": "{broken"})
    yaml_file, json_file, toml_file, nowhere = compare_params(
        ["params.yaml", "configs/train.json", "gone.toml", "never.yaml"], base, head
    )
    assert (yaml_file.total, yaml_file.unchanged) == (0, 6)
    assert json_file.base_note is None and json_file.head_note.startswith("not valid JSON: ")
    assert json_file.changes == [] and json_file.total == 0  # one broken side: nothing diffed
    assert (toml_file.head_note, changes(toml_file)) == ("missing", [("a", "removed", 1, None)])
    assert (nowhere.base_note, nowhere.head_note, nowhere.total) == ("missing", "missing", 0)


def test_a_side_that_cannot_be_read_is_said_not_raised():
    def unreachable(path: str) -> str:
        raise TierbotError(f"Cannot fetch the repository to read {path}")

    (diff,) = compare_params(None, commit({"params.yaml": "a: 1"}), unreachable)
    assert diff.head_note == "could not be read: Cannot fetch the repository to read params.yaml"
    assert diff.changes == [] and diff.base_note is None


def test_the_spec_names_params_files_by_extension():
    spec = "run: {command: x}\ncompare:\n  params: %s\n"
    assert parse_spec(spec % "params.yaml").compare.params == ["params.yaml"]  # one needs no brackets
    assert parse_spec(spec % "[a.json, b/c.toml, a.json]").compare.params == ["a.json", "b/c.toml"]
    assert parse_spec("run: {command: x}\n").compare.params is None  # DVC's default applies
    for value, message in [
        ("[params.ini]", "compare.params: 'params.ini' is not a YAML, JSON or TOML file"),
        ("[../secrets.yaml]", "compare.params: a params file must be a relative path inside the repository"),
        ("[" + ", ".join(f"p{i}.yaml" for i in range(21)) + "]", "compare.params: at most 20 params files"),
    ]:
        with pytest.raises(SpecInvalid, match=re.escape(message)):
            parse_spec(spec % value)


# -- end to end: the real pipeline, a real repository, every report ---------------------------------------


@pytest.fixture
def params_repo(tmp_path: Path) -> GitRepo:
    """main with DVC's params.yaml; `tuned` changes the learning rate, adds epochs, drops dropout."""
    repo = GitRepo(tmp_path / "repo")
    repo.commit(
        {
            "tierbot.yaml": SIMPLE_SPEC,
            "make.py": SIMPLE_SCRIPT,
            "accuracy.txt": "0.90",
            "params.yaml": "train:\n  lr: 0.1\ndropout: 0.2\nseed: 7\n",
        },
        "main",
    )
    repo.branch("tuned")
    repo.commit({"accuracy.txt": "0.93", "params.yaml": "train:\n  lr: 0.01\n  epochs: 20\nseed: 7\n"})
    repo.branch("huge")
    repo.commit({"params.yaml": "a: 1\n" + "#" * 2_000_000 + "\n"})
    repo.git("checkout", "-q", "main")
    return repo


def compared(pipeline: Pipeline, repo: GitRepo, branch: str):
    submission = pipeline.submit(RunRequest(repository=str(repo), ref=branch, base="main"))
    worker = Worker(pipeline)
    while worker.run_once():
        pass
    return pipeline.comparison(submission.comparison.id)


def test_params_are_read_at_both_commits_and_shown_first_in_every_report(settings, params_repo):
    from bot.compare import Comparison

    pipeline = Pipeline(settings)
    record = compared(pipeline, params_repo, "tuned")
    assert record.state == "done", record.reason
    (stored,) = record.result["params"]
    assert stored["path"] == "params.yaml" and (stored["total"], stored["unchanged"]) == (3, 1)
    assert [(c["name"], c["change"], c["old"], c["new"]) for c in stored["changes"]] == [
        ("dropout", "removed", 0.2, None),
        ("train.epochs", "added", None, 20),
        ("train.lr", "changed", 0.1, 0.01),  # numbers stay numbers in the stored result
    ]
    assert record.verdict == "changed"  # params are not judged: accuracy moved, that is all
    assert not any("param" in reason for reason in record.result["reasons"])

    result = Comparison.model_validate(record.result)
    html = Path(record.report_path).read_text()
    assert html.index("<h2>Params</h2>") < html.index("<h2>Files")
    assert '<td><code>train.lr</code></td><td class="num"><code class="value">0.1</code>' in html
    markdown = render_markdown(result, CONTEXT)
    assert markdown.index("### Params") < markdown.index("### Files")
    assert "- `train.lr` `0.1` → `0.01`\n" in markdown
    assert "- `train.epochs` (new) `20`\n" in markdown and "- `dropout` `0.2` (removed)\n" in markdown
    out = io.StringIO()
    render_terminal(result, CONTEXT, Console(file=out, width=120, color_system=None))
    text = out.getvalue()
    assert text.index("Params") < text.index("Files")
    assert "params.yaml 3 keys differ, 1 unchanged" in text and "train.lr      0.1 → 0.01" in text
    sections = [b["text"]["text"] for b in render_slack(result, CONTEXT)["blocks"] if b["type"] == "section"]
    assert sections[1].startswith("*Params*\n`params.yaml` · 3 keys differ, 1 unchanged\n")  # after reasons
    assert "• `train.lr` `0.1` → `0.01`" in sections[1] and "• `dropout` `0.2` (removed)" in sections[1]


def test_a_params_file_too_large_to_read_is_a_note_not_a_failure(settings, params_repo):
    record = compared(Pipeline(settings), params_repo, "huge")
    assert record.state == "done", record.reason
    (stored,) = record.result["params"]
    assert stored["base_note"] is None and stored["changes"] == []
    assert stored["head_note"].startswith("could not be read: params.yaml at ")
    assert "tierbot reads files of up to 1,048,576 bytes" in stored["head_note"]


def test_results_stored_before_params_existed_still_load():
    from bot.compare import Comparison

    old = {"verdict": "pass", "reasons": ["every output file is identical"], "files": []}
    assert Comparison.model_validate(old).params == []
