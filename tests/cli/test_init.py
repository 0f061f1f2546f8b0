"""`tierbot init`: the proposal rules on plain inputs, the file it renders (golden), and real `tierbot`
processes in real git repositories writing a tierbot.yaml that `tierbot run` and `compare` then use."""

import base64
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from bot.cli.proposal import (
    Choice,
    DvcStage,
    EnvironmentProposal,
    Proposal,
    ProposalInvalid,
    detect_commands,
    detect_environment,
    dvc_stage,
    experiment_name,
    makefile_command,
    propose,
    pyproject_dependencies,
    spec_document,
    spec_text,
    written_directory,
)
from bot.cli.proposal_outputs import (
    VOLATILE_SHAPES,
    MetricFileProposal,
    MetricGuess,
    OutputsProposal,
    TableProposal,
    VolatileToken,
    guess_direction,
    guess_key,
    metric_file,
    propose_outputs,
    volatile_tokens,
)
from bot.masks import compile_mask
from bot.outputs import manifest_of
from bot.render.templates import yaml_scalar
from bot.spec import load_spec, parse_spec

from ..conftest import GitRepo, write_tree
from ..golden import check_golden

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


# A fast experiment: metrics, a table with an id column, a log with timestamps and durations, a picture.
EXPERIMENT = f"""\
import base64, json, pathlib, time
out = pathlib.Path("out"); out.mkdir(exist_ok=True)
accuracy = float(open("accuracy.txt").read())
metrics = {{"test": {{"accuracy": accuracy, "log_loss": 0.25}}, "n_test": 3}}
(out / "metrics.json").write_text(json.dumps(metrics))
(out / "predictions.csv").write_text("id,label,p_a\\n1,a,0.5\\n2,b,0.25\\n3,a,0.75\\n")
(out / "train.log").write_text(
    time.strftime("%Y-%m-%d %H:%M:%S") + " started, epoch time %.3f\\n" % time.time()
    + "fitted in %.4fs\\n" % time.perf_counter()
)
(out / "plot.png").write_bytes(base64.b64decode({base64.b64encode(_png()).decode()!r}))
print("trained, accuracy", accuracy)
"""


# -- the proposal rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "direction"),
    [
        ("test.accuracy", "higher"),
        ("f1_macro", "higher"),
        ("val/auc", "higher"),
        ("precision@5", "higher"),
        ("r2_score", "higher"),
        ("top1Acc", "higher"),
        ("test.log_loss", "lower"),
        ("valLoss", "lower"),
        ("mean_squared_error", "lower"),
        ("rmse", "lower"),
        ("neg_mean_squared_error", "higher"),  # scikit-learn's negated scorers
        ("accuracy.test", "higher"),  # the last part only names the split
        ("loss.mean", "lower"),
        ("n_test", None),
        ("epochs", None),
        ("seconds", None),
        ("loss.n_batches", None),  # the last part names another number
        ("accuracy_loss", None),  # says both
        ("history[3]", None),
    ],
)
def test_direction_is_guessed_from_the_metric_name(path: str, direction: str | None):
    assert guess_direction(path) == direction


def test_metric_files_are_named_so_or_mostly_numbers():
    named = metric_file("metrics.json", {"run": "a", "notes": "b", "acc": 1}, named=True)
    assert named is not None and [g.path for g in named.metrics] == ["acc"]
    scores = metric_file("scores.json", {"test": {"auc": 0.9, "n": 3}, "model": "rf", "curve": [1, 2]}, False)
    assert scores == MetricFileProposal(
        "scores.json", [MetricGuess("test.auc", "higher"), MetricGuess("test.n", None)], series=2
    )
    assert metric_file("config.yaml", {"model": "rf", "optimizer": "adam", "lr": 0.1}, named=False) is None
    assert metric_file("rows.json", [{"a": 1}, {"a": 2}], named=False) is None
    many = metric_file("metrics.json", {f"m{i}": i for i in range(60)}, named=True)
    assert many is not None and len(many.metrics) == 50 and many.more == 10


def test_key_is_the_first_unique_never_empty_column(tmp_path: Path):
    def key_of(name: str, text: str) -> TableProposal:
        (tmp_path / name).write_text(text)
        return guess_key(tmp_path / name, name)

    assert key_of("a.csv", "label,id\nx,2\nx,1\n").key == "id"  # named first, wherever it is
    assert key_of("b.csv", "label,user_id\nx,7\ny,8\n").key == "user_id"
    assert key_of("c.csv", "id,sampleId\n1,a\n,b\n").key == "sampleId"  # id has an empty cell
    assert key_of("d.csv", "epoch,loss\n1,0.5\n2,0.25\n").key == "epoch"  # then any unique column
    assert key_of("e.csv", "label,p\nx,0.5\nx,0.25\n").key is None  # a float is unique by accident
    proposal = key_of("f.csv", "label,user_id\nx,7\nx,7\n")
    assert proposal.key is None and "paired by their order" in proposal.why
    assert "not read" in key_of("g.csv", "").why
    pl.DataFrame({"score": [0.1, 0.2], "key": ["a", "b"]}).write_parquet(tmp_path / "h.parquet")
    assert guess_key(tmp_path / "h.parquet", "h.parquet").key == "key"
    (tmp_path / "i.jsonl").write_text('{"uuid": "u1", "v": 1}\n{"uuid": "u2", "v": 1}\n')
    assert guess_key(tmp_path / "i.jsonl", "i.jsonl") == TableProposal(
        "i.jsonl", "uuid", "unique and never empty in this run's 2 rows"
    )


LOG = """\
2026-01-31 12:34:56,789 INFO fitted in 0.030s at 45.2it/s
I0131 12:34:56.789012 12345 train.py:42] step 1
run id 20260131_123456, started at 1769862896.25, 2026/01/31
took 1h02m, then 1m23.4s
"""


def test_masks_are_proposed_only_for_what_the_built_in_masks_miss():
    tokens = {token.example: token for token in volatile_tokens(LOG, "train.log")}
    builtin = sorted(example for example, token in tokens.items() if token.builtin)
    proposed = sorted(example for example, token in tokens.items() if not token.builtin)
    assert builtin == ["0.030s", "2026-01-31 12:34:56,789", "45.2it/s"]
    assert proposed == [
        "1769862896.25",
        "1h02m",
        "2026/01/31",
        "20260131_123456",
        "I0131 12:34:56.789012 12345",
    ]
    for example, token in tokens.items():
        assert compile_mask(token.pattern).search(example), "a proposed pattern matches what it was found in"
    masked = LOG
    for token in tokens.values():
        masked = compile_mask(token.pattern).sub("<masked>", masked)
    assert "1m23.4s" not in masked and "1769862896" not in masked and "12345" not in masked


def test_every_volatile_shape_is_a_valid_mask():
    for what, pattern in VOLATILE_SHAPES:
        assert compile_mask(pattern), what
    assert volatile_tokens("no times here, 42 rows\n", "a.log") == []


def test_outputs_are_classified_as_a_comparison_would(tmp_path: Path):
    out = tmp_path / "out"
    write_tree(
        out,
        {
            "metrics.json": json.dumps({"test": {"accuracy": 0.9}, "loss_curve": [0.5, 0.4]}),
            "eval/scores.yaml": "auc: 0.8\nn: 10\n",
            "config.json": json.dumps({"model": "rf", "optimizer": "adam", "seed": 1}),
            "predictions.csv": "id,p\n1,0.5\n2,0.25\n",
            "steps.csv": "label,p\nx,0.5\nx,0.5\n",
            "plot.png": _png(),
            "train.log": LOG,
            "stdout": "started at 1769862896.25\n",
            "model.pkl": b"\x80\x04\x00binary",
            "broken_metrics.json": "{not json",
        },
    )
    found = propose_outputs(out, manifest_of(out))
    assert [m.file for m in found.metrics] == ["eval/scores.yaml", "metrics.json"]
    assert found.metrics[1] == MetricFileProposal("metrics.json", [MetricGuess("test.accuracy", "higher")], 2)
    assert [(t.file, t.key) for t in found.tables] == [("predictions.csv", "id")]
    assert [t.file for t in found.unkeyed] == ["steps.csv"]
    assert found.images == ["plot.png"]
    assert found.other == ["broken_metrics.json", "config.json", "model.pkl", "stdout", "train.log"]
    assert "1769862896.25" in [t.example for t in found.masks]
    assert any(
        "broken_metrics.json looks like a metrics file but could not be read" in n for n in found.notes
    )


def test_makefile_train_target():
    assert makefile_command("all: train\n\ntrain: data\n\tpython train.py\n") == "make train"
    assert makefile_command(".PHONY: train\ntrain:\n\tpython train.py\n") == "make train"
    for text in ("train := 1\n", "retrain:\n\tx\n", "  train:\n", "train::\n", "test:\n\tpytest\n"):
        assert makefile_command(text) is None, text


def test_dvc_stage_with_metrics_is_chosen():
    text = """\
stages:
  prepare:
    cmd: python prepare.py
    outs: [data/clean.csv]
  sweep:
    foreach: [1, 2]
    do:
      cmd: python train.py --seed ${item}
  train:
    cmd: [python train.py, python evaluate.py]
    wdir: src
    outs: [../outputs/model.pkl]
    metrics:
      - ../outputs/metrics.json: {cache: false}
"""
    stage = dvc_stage(text)
    assert stage is not None and stage.name == "train"
    assert stage.command == "cd src && python train.py && python evaluate.py"
    assert stage.outputs == "outputs"
    first = dvc_stage("stages:\n  only:\n    cmd: python run.py\n    outs: [metrics.json]\n")
    assert first is not None and first.command == "python run.py" and first.outputs is None
    templated = (
        "stages:\n  a:\n    cmd: python t.py --lr ${lr}\n  b:\n    cmd: python u.py\n    wdir: my dir\n"
    )
    assert dvc_stage(templated) == DvcStage("b", "cd 'my dir' && python u.py", None)
    assert dvc_stage("stages: [not, a, mapping]\n") is None
    assert dvc_stage("stages:\n  x: {cmd: [unclosed\n") is None


def test_commands_best_first(tmp_path: Path):
    write_tree(
        tmp_path,
        {
            "dvc.yaml": "stages:\n  train:\n    cmd: python src/train.py\n    metrics: [results/m.json]\n",
            "Makefile": "train:\n\tpython train.py\n",
            "train.py": "",
            "main.py": "",
        },
    )
    commands, hint = detect_commands(tmp_path)
    assert [c.value for c in commands] == [
        "python src/train.py",
        "make train",
        "python train.py",
        "python main.py",
    ]
    assert hint == "results"
    assert detect_commands(tmp_path / "nothing-here") == ([], None)


def test_environment_from_requirements_or_pyproject(tmp_path: Path):
    write_tree(tmp_path / "a", {"requirements.txt": "numpy\n", "requirements-dev.txt": "pytest\n"})
    assert detect_environment(tmp_path / "a").requirements == Choice(
        "requirements.txt", "found at the repository root"
    )
    write_tree(
        tmp_path / "b",
        {
            "requirements/dev.txt": "",
            "requirements/test.txt": "",
            "requirements/zz.txt": "",
            "requirements/base.txt": "",
        },
    )
    assert detect_environment(tmp_path / "b").requirements.value == "requirements/base.txt"
    write_tree(
        tmp_path / "c",
        {
            "pyproject.toml": '[project]\nname = "x"\ndependencies = ["numpy>=1.26", "pandas"]\n',
            "Dockerfile": "",
        },
    )
    env = detect_environment(tmp_path / "c")
    assert env.requirements.value == "requirements-tierbot.txt" and env.generated == ["numpy>=1.26", "pandas"]
    assert env.dockerfile.value == "Dockerfile"
    poetry = '[tool.poetry.dependencies]\npython = "^3.11"\n'
    assert pyproject_dependencies(poetry)[0] is None and "poetry export" in pyproject_dependencies(poetry)[1]
    assert "could not be read" in pyproject_dependencies("[project\n")[1]
    assert detect_environment(tmp_path / "d") == EnvironmentProposal()


def test_the_directory_the_command_wrote():
    before = {"train.py": 1, "out/old.txt": 1, "data/raw.csv": 1}
    after = before | {"out/old.txt": 2, "out/new.json": 3, "logs/a.log": 3, "logs/b.log": 3, "cache.db": 3}
    assert written_directory(before, after) == ("out", {"out": 2, "logs": 2, ".": 1})
    assert written_directory(before, before | {"logs/a.log": 2, "x/y": 2, "x/z": 2})[0] == "x"
    assert written_directory(before, before | {"metrics.json": 2}) == (None, {".": 1})


def test_experiment_name():
    assert experiment_name("my repo (v2)") == "my-repo-v2-"
    assert experiment_name("__") == "experiment"
    assert experiment_name("iris") == "iris"


@settings(max_examples=300)
@given(st.text())
def test_yaml_scalars_read_back_as_written(value: str):
    assert yaml.safe_load(f"key: {yaml_scalar(value)}   # comment\n") == {"key": value}


# -- the file -------------------------------------------------------------------------------------------

FOUND = OutputsProposal(
    metrics=[
        MetricFileProposal(
            "metrics.json",
            [
                MetricGuess("test.accuracy", "higher"),
                MetricGuess("test.log_loss", "lower"),
                MetricGuess("n_test", None),
            ],
            series=4,
        )
    ],
    tables=[TableProposal("predictions.csv", "id", "unique and never empty in this run's 45 rows")],
    unkeyed=[
        TableProposal("steps.csv", None, "no column is unique and never empty, so rows are paired by order")
    ],
    images=["confusion_matrix.png"],
    masks=[
        VolatileToken("Unix time", r"\b1[5-9]\d{8}(\d{3})?(\.\d+)?\b", "1769862896.25", "train.log", False)
    ],
    builtin=[VolatileToken("date and time", "", "2026-01-31 12:34:56,789", "train.log", True)],
    other=["model.pkl", "train.log"],
)


def iris_proposal(found: OutputsProposal | None = FOUND) -> Proposal:
    return Proposal(
        name="iris",
        commands=[Choice("python train.py", "train.py exists")],
        environment=EnvironmentProposal(
            requirements=Choice("requirements.txt", "found at the repository root")
        ),
        outputs="outputs",
        found=found,
    )


def test_written_file_golden():
    text = spec_text(iris_proposal())
    check_golden("tierbot-init.yaml", text)
    spec = parse_spec(text)
    assert spec.compare.metrics[0].metrics["test.accuracy"].direction == "higher"
    assert spec.compare.tables[0].key == ["id"] and spec.compare.mask == [FOUND.masks[0].pattern]


def test_written_file_without_outputs_is_valid():
    spec = parse_spec(spec_text(iris_proposal(found=None)))
    assert spec.run.command == "python train.py" and spec.compare.metrics == []


def test_hostile_names_stay_values_and_comments():
    hostile = OutputsProposal(
        metrics=[
            MetricFileProposal("m: x\n#.json", [MetricGuess("yes", None), MetricGuess("a'b #c", "lower")])
        ],
        tables=[TableProposal("p\r\n- file: evil.csv", "null", "why\nkey: [x]")],
        images=["x\n  mask: ['.*']"],
        masks=[VolatileToken("t", "'\\d+'", "e\nmask: []", "f\n", False)],
    )
    proposal = iris_proposal(hostile)
    proposal.commands = [Choice("python -c 'print(1)' # not a comment", "given\nrun: {}")]
    spec = parse_spec(spec_text(proposal))
    assert spec.model_dump(mode="json", by_alias=True)["compare"]["mask"] == ["'\\d+'"]
    assert spec.run.command == "python -c 'print(1)' # not a comment"
    assert spec.compare.tables[0].file == "p\r\n- file: evil.csv" and spec.compare.tables[0].key == ["null"]
    assert list(spec.compare.metrics[0].metrics) == ["yes", "a'b #c"]


def test_an_invalid_proposal_is_never_rendered():
    proposal = iris_proposal()
    proposal.outputs = "../elsewhere"
    with pytest.raises(ProposalInvalid):
        spec_text(proposal)
    proposal = iris_proposal(OutputsProposal(masks=[VolatileToken("x", "(a", "a", "f", False)]))
    with pytest.raises(ProposalInvalid):
        spec_text(proposal)
    with pytest.raises(ProposalInvalid):
        spec_document(Proposal("x", [], EnvironmentProposal(), "outputs"))


def test_propose_reads_the_repository(tmp_path: Path):
    shutil.copytree(EXAMPLES / "iris", tmp_path / "iris", ignore=shutil.ignore_patterns("tierbot.yaml"))
    proposal = propose(tmp_path / "iris")
    assert proposal.commands[0] == Choice("python train.py", "train.py exists")
    assert proposal.environment.requirements.value == "requirements.txt"
    assert (proposal.name, proposal.outputs, proposal.found) == ("iris", "outputs", None)
    write_tree(
        tmp_path / "iris" / "results", {"metrics.json": '{"test": {"f1": 0.5}}', "p.csv": "id,y\n1,2\n"}
    )
    document = spec_document(propose(tmp_path / "iris"))
    assert document["run"] == {"command": "python train.py", "outputs": "results"}
    assert document["compare"]["metrics"] == [
        {"file": "metrics.json", "metrics": {"test.f1": {"direction": "higher"}}}
    ]
    assert document["compare"]["tables"] == [{"file": "p.csv", "key": ["id"]}]
    assert propose(tmp_path / "iris", read_outputs=False).found is None


# -- real `tierbot init` processes ------------------------------------------------------------------------


def experiment_repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"make.py": EXPERIMENT, "accuracy.txt": "0.90", ".gitignore": "out/\n"}, "experiment")
    return repo


def test_init_yes_writes_a_spec_that_runs_and_compares(tierbot, tmp_path: Path):
    repo = experiment_repo(tmp_path)
    done = tierbot("init", "--yes", "--command", "python make.py", cwd=repo.path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "trained, accuracy 0.9" in done.stdout  # the trial run's output reaches the terminal
    text = (repo.path / "tierbot.yaml").read_text()
    schema = json.loads(tierbot("schema").stdout)
    jsonschema.validate(yaml.safe_load(text), schema)
    spec = load_spec(repo.path / "tierbot.yaml")
    assert spec.run.outputs == "out"
    rules = spec.compare.metrics[0].metrics
    assert (
        rules["test.accuracy"].direction,
        rules["test.log_loss"].direction,
        rules["n_test"].direction,
    ) == (
        "higher",
        "lower",
        None,
    )
    assert [(t.file, t.key) for t in spec.compare.tables] == [("predictions.csv", ["id"])]
    assert len(spec.compare.mask) == 1 and compile_mask(spec.compare.mask[0]).search("at 1769862896.250")
    assert "Images are compared pixel by pixel, with no setting: plot.png." in text
    assert "(date and time) in train.log" in text

    repo.commit({"tierbot.yaml": text}, "tierbot.yaml")
    ran = tierbot("run", cwd=repo.path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    repo.branch("better")
    repo.commit({"accuracy.txt": "0.95"}, "better")
    compared = tierbot("compare", "better", cwd=repo.path)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "test.accuracy" in compared.stdout and "CHANGED" in compared.stdout.upper()


def test_init_reads_an_existing_outputs_directory_without_running(tierbot, tmp_path: Path):
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"train.py": "raise SystemExit('must not run')\n", "requirements.txt": "numpy\n"})
    write_tree(repo.path / "results", {"metrics.yaml": "val:\n  loss: 0.5\n", "preds.csv": "row_id,y\n1,2\n"})
    done = tierbot("init", "-y", cwd=repo.path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Reading the outputs already in results/" in done.stdout and "must not run" not in done.stderr
    assert "results/ is not ignored by git" in done.stdout
    spec = load_spec(repo.path / "tierbot.yaml")
    assert (spec.run.command, spec.run.outputs, spec.environment.requirements) == (
        "python train.py",
        "results",
        "requirements.txt",
    )
    assert spec.compare.metrics[0].metrics["val.loss"].direction == "lower"
    assert spec.compare.tables[0].key == ["row_id"]


def test_init_on_the_iris_example_without_running(tierbot, tmp_path: Path):
    repo = GitRepo(tmp_path / "iris")
    shutil.copytree(
        EXAMPLES / "iris", repo.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("tierbot.yaml")
    )
    repo.git("add", "-A")
    done = tierbot("init", "--yes", "--no-run", "--repo", str(repo.path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No outputs were read" in done.stdout
    spec = load_spec(repo.path / "tierbot.yaml")
    assert (spec.name, spec.run.command, spec.run.outputs) == ("iris", "python train.py", "outputs")
    assert spec.environment.requirements == "requirements.txt"


def test_init_writes_requirements_from_pyproject(tierbot, tmp_path: Path):
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"main.py": "", "pyproject.toml": '[project]\nname = "x"\ndependencies = ["numpy>=1.26"]\n'})
    done = tierbot("init", "--yes", "--no-run", cwd=repo.path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert load_spec(repo.path / "tierbot.yaml").environment.requirements == "requirements-tierbot.txt"
    assert (repo.path / "requirements-tierbot.txt").read_text().splitlines()[1:] == ["numpy>=1.26"]
    assert "git add tierbot.yaml requirements-tierbot.txt" in done.stdout
    assert (
        "requirements-tierbot.txt was written from pyproject.toml" in (repo.path / "tierbot.yaml").read_text()
    )


def test_init_asks_and_keeps_only_what_is_accepted(cli_env, tmp_path: Path):
    repo = experiment_repo(tmp_path)
    repo.commit({"Makefile": "train:\n\tpython make.py\n"})
    # command: the proposed `make train`; run it: yes; metrics: yes; the table: no; the mask: no.
    done = subprocess.run(
        [sys.executable, "-m", "bot", "init"],
        input="\ny\ny\nn\nn\n",
        cwd=repo.path,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1. make train" in done.stdout and "Guard the table predictions.csv" in done.stdout
    spec = load_spec(repo.path / "tierbot.yaml")
    assert spec.run.command == "make train" and spec.compare.metrics[0].file == "metrics.json"
    assert spec.compare.tables == [] and spec.compare.mask == []
    text = (repo.path / "tierbot.yaml").read_text()
    assert "predictions.csv is compared and reported, not guarded: declined at `tierbot init`" in text


def test_init_refuses_to_replace_a_spec_without_force(tierbot, tmp_path: Path):
    repo = experiment_repo(tmp_path)
    (repo.path / "tierbot.yaml").write_text("mine\n")
    refused = tierbot("init", "--yes", "--command", "python make.py", cwd=repo.path)
    assert refused.returncode == 2 and "already exists" in refused.stderr and "--force" in refused.stderr
    assert (repo.path / "tierbot.yaml").read_text() == "mine\n"
    forced = tierbot("init", "--yes", "--force", "--command", "python make.py", cwd=repo.path)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert load_spec(repo.path / "tierbot.yaml").run.command == "python make.py"


def test_init_outside_a_git_repository_is_a_plain_error(tierbot, tmp_path: Path):
    (tmp_path / "plain").mkdir()
    done = tierbot("init", "--yes", cwd=tmp_path / "plain")
    assert done.returncode == 2
    assert "is not inside a git repository" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "plain" / "tierbot.yaml").exists()


def test_init_writes_nothing_when_the_command_fails_or_finds_none(tierbot, tmp_path: Path):
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"train.py": "raise SystemExit(5)\n"})
    failed = tierbot("init", "--yes", cwd=repo.path)
    assert failed.returncode == 3 and "exited with status 5" in failed.stderr
    assert "Nothing was written" in failed.stderr and not (repo.path / "tierbot.yaml").exists()
    nowhere = tierbot("init", "--yes", "--command", "true", cwd=repo.path)
    assert nowhere.returncode == 3 and "wrote no directory" in nowhere.stderr
    started = time.monotonic()
    stopped = tierbot("init", "--yes", "--command", "sleep 60 & sleep 60", "--timeout", "1", cwd=repo.path)
    assert stopped.returncode == 3 and "did not finish within 1 s" in stopped.stderr
    assert time.monotonic() - started < 30, "the whole process group is stopped, not only the shell"
    (repo.path / "train.py").unlink()
    none = tierbot("init", "--yes", cwd=repo.path)
    assert none.returncode == 2 and "--command" in none.stderr
