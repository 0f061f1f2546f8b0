"""The metric history of the branch compared against: which runs are points, what a point keeps, and the
range every report shows beside each metric (through the real pipeline on real git repositories)."""

import json
import re
from pathlib import Path

from sqlalchemy import func, select

from bot.compare import Comparison
from bot.history import WINDOW, history, history_branch, record
from bot.outputs import manifest_of
from bot.pipeline import Pipeline
from bot.render.markdown import render_markdown
from bot.request import RunRequest
from bot.spec import parse_spec
from bot.store import Database, Run, RunState
from bot.store.models import MetricPoint

from ..conftest import SIMPLE_SPEC, GitRepo, write_tree
from .test_pipeline import compare, drain


def points(db: Database) -> list[tuple[str, str, dict]]:
    with db.session() as s:
        rows = s.execute(
            select(MetricPoint.branch, MetricPoint.sha, MetricPoint.values).order_by(MetricPoint.id)
        )
        return [tuple(row) for row in rows]


def run_main(settings, repo: GitRepo, fresh: bool = False) -> Run:
    """`tierbot run main`, by a pipeline of its own (so the commit just made on main is fetched)."""
    pipeline = Pipeline(settings)
    head = pipeline.submit(RunRequest(repository=str(repo), ref="main", fresh=fresh)).head
    drain(pipeline)
    return pipeline.run(head.id)


def test_baselines_and_runs_of_the_compared_branch_are_points_once(settings, simple_repo):
    pipeline = Pipeline(settings)
    first, _ = compare(pipeline, simple_repo, "better")
    main_sha = first.base.sha
    assert points(pipeline.db) == [("main", main_sha, {"metrics.json": {"accuracy": 0.9}})]  # not the head's

    second, _ = compare(pipeline, simple_repo, "worse")  # the baseline is shared: the same run, one point
    assert second.baseline_reused and len(points(pipeline.db)) == 1

    branch_run = pipeline.submit(RunRequest(repository=str(simple_repo), ref="better", fresh=True)).head
    drain(pipeline)  # a feature branch, which nothing is compared against: never a point
    assert pipeline.run(branch_run.id).state == RunState.succeeded and len(points(pipeline.db)) == 1

    newer = simple_repo.commit({"accuracy.txt": "0.92"}, "main moves on")
    ran = run_main(settings, simple_repo)
    assert ran.reused_run_id is None and ran.sha == newer
    again = run_main(settings, simple_repo)  # the same tree again: the outcome is reused, not a new point
    assert again.reused_run_id == ran.id
    assert points(pipeline.db)[1:] == [("main", newer, {"metrics.json": {"accuracy": 0.92}})]

    (accuracy,) = history(pipeline.db, str(simple_repo), "main")
    assert (accuracy.experiment, accuracy.tier, accuracy.file, accuracy.metric) == (
        "simple",
        "local",
        "metrics.json",
        "accuracy",
    )
    assert [(p.run, p.sha, p.value) for p in accuracy.points] == [
        (first.base.id, main_sha, 0.9),
        (ran.id, newer, 0.92),
    ]
    assert history(pipeline.db, str(simple_repo), "better") == []
    assert [p.value for p in history(pipeline.db, str(simple_repo), "main", last=1)[0].points] == [0.92]


def test_every_report_shows_mains_range_and_marks_a_value_outside_it(settings, simple_repo):
    pipeline = Pipeline(settings)
    compare(pipeline, simple_repo, "better")  # main at 0.90, the baseline
    simple_repo.commit({"accuracy.txt": "0.92"}, "main moves on")
    run_main(settings, simple_repo)  # main at 0.92
    pipeline = Pipeline(settings)
    _, worse = compare(pipeline, simple_repo, "worse")  # 0.80, against the old merge base
    ctx = pipeline.report_context(worse)
    (recent,) = ctx.history.values()
    assert (recent.branch, recent.values, recent.low, recent.high) == ("main", [0.9, 0.92], 0.9, 0.92)
    assert recent.outside(0.8) and not recent.outside(0.91) and not recent.outside(0.92 + 1e-15)

    comment = render_markdown(Comparison.model_validate(worse.result), ctx)
    assert re.search(
        r"\| `accuracy` .*\| 0\.9 \| 0\.8 \|.* · main's last 2 runs: 0\.9–0\.92 \(⚠️ outside\) \|", comment
    )
    # The HTML report was written when the comparison settled, inside its session: the range is there
    page = Path(worse.report_path).read_text()
    assert "main's last 2 runs: 0.9–0.92" in page
    assert '<span class="outside">⚠ outside</span>' in page
    assert page.count('<svg class="chart"') == 1 and "<script" not in page


def test_a_report_rendered_again_later_says_what_it_said(settings, simple_repo):
    pipeline = Pipeline(settings)
    _, comparison = compare(pipeline, simple_repo, "better")
    before = pipeline.report_context(comparison).history
    simple_repo.commit({"accuracy.txt": "0.5"}, "main moves on")
    run_main(settings, simple_repo)  # a newer point of main, after the comparison's runs
    assert pipeline.report_context(pipeline.comparison(comparison.id)).history == before
    (recent,) = before.values()
    assert recent.values == [0.9]


def stored_run(db: Database, **fields) -> Run:
    """A succeeded run of main's, as a row (fields override)."""
    run = Run(
        **{
            "repository": "r",
            "ref": "main",
            "sha": "c" * 40,
            "tree_sha": "t",
            "experiment": "simple",
            "tier": "local",
            "role": "baseline",
            "cache_key": "k",
            "spec": {},
            "requested_by": {},
            "state": RunState.succeeded,
        }
        | fields
    )
    with db.session() as s:
        s.add(run)
    return run


def made(ref: str, role: str = "run", trusted: bool = True) -> Run:
    """A run of acme/models, not stored: what `history_branch` is asked about."""
    return Run(
        repository="acme/models", ref=ref, sha="a" * 40, role=role, trusted=trusted, experiment="e", tier="t"
    )


def test_which_runs_are_points(db, tmp_path: Path):
    """Only trusted runs of a branch compared against: a baseline (its base's name), or a run asked for by
    that branch's name; never a feature branch, a commit given by its sha, HEAD, or a fork's code."""
    with db.session() as s:
        assert history_branch(s, made("main", "baseline")) == "main"
        assert history_branch(s, made("release", "baseline")) == "release"  # a stacked pull request's base
        assert history_branch(s, made("main", "baseline", trusted=False)) is None
        assert history_branch(s, made("main")) is None  # nothing was compared against main yet
    base = stored_run(db, repository="acme/models")
    write_tree(tmp_path, {"metrics.json": '{"accuracy": 1}'})
    record(db, base, manifest_of(tmp_path), parse_spec(SIMPLE_SPEC), lambda entry: tmp_path / entry.path)
    with db.session() as s:
        assert history_branch(s, made("main")) == "main"
        assert history_branch(s, made("main", "head")) == "main"
        assert history_branch(s, made("main", trusted=False)) is None
        for ref in ("feature-x", "HEAD", "1a2b3c4", "b" * 40, ""):
            assert history_branch(s, made(ref)) is None, ref


METRICS = {
    "test": {"accuracy": 0.9, "f1": 0.8},
    "loss": [0.9, 0.7, 0.5],  # a series: drawn, not a metric of the history
    "diverged": float("nan"),
    "epochs": 3,
    "cached": True,
}


def test_a_point_keeps_the_finite_numbers_of_the_declared_files_and_a_retry_replaces_it(db, tmp_path: Path):
    outputs = tmp_path / "out"
    outputs.mkdir()
    (outputs / "metrics.json").write_text(json.dumps(METRICS))
    (outputs / "other_metrics.json").write_text('{"x": 1}')  # not declared in the spec: not kept
    manifest = manifest_of(outputs)
    spec = parse_spec(SIMPLE_SPEC)
    run = stored_run(db)
    for _ in range(2):  # a second attempt of the run (its worker lost its lease) collects again
        record(db, run, manifest, spec, lambda entry: outputs / entry.path)
    assert points(db) == [
        ("main", "c" * 40, {"metrics.json": {"epochs": 3, "test.accuracy": 0.9, "test.f1": 0.8}})
    ]
    (f1,) = [h for h in history(db, "r", "main") if h.metric == "test.f1"]
    assert [p.value for p in f1.points] == [0.8]


def test_a_metrics_file_that_cannot_be_read_is_no_point_and_no_failure(db, tmp_path: Path):
    outputs = tmp_path / "out"
    outputs.mkdir()
    (outputs / "metrics.json").write_text("{not json")
    run = Run(
        repository="r", ref="main", sha="d" * 40, role="baseline", trusted=True, experiment="e", tier="t"
    )
    record(db, run, manifest_of(outputs), parse_spec(SIMPLE_SPEC), lambda entry: outputs / entry.path)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(MetricPoint)) == 0


def test_only_the_last_window_of_points_makes_the_range(settings, simple_repo):
    """A report's range is main's last WINDOW runs, not all of them."""
    pipeline = Pipeline(settings)
    compare(pipeline, simple_repo, "better")
    with pipeline.db.session() as s:
        base = s.scalars(select(Run).where(Run.role == "baseline")).one()
        for value in range(WINDOW + 5):
            clone = Run(**{c.key: getattr(base, c.key) for c in Run.__table__.columns if c.key != "id"})
            clone.cache_key = f"old-{value}"
            s.add(clone)
            s.flush()
            values = {"metrics.json": {"accuracy": float(value)}}
            s.add(
                MetricPoint(
                    run_id=clone.id,
                    repository=base.repository,
                    branch="main",
                    experiment="simple",
                    tier="local",
                    sha=base.sha,
                    values=values,
                )
            )
    _, comparison = compare(pipeline, simple_repo, "worse")
    (recent,) = pipeline.report_context(comparison).history.values()
    assert recent.count == WINDOW and recent.values == [float(v) for v in range(5, WINDOW + 5)]
