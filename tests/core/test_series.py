"""Metric series (lists in metrics files, tables of steps listed in `compare.plots`) and the one chart
renderer that draws them and main's history: computed by the real engine from real files."""

import json
import math
import re
from pathlib import Path

import pytest

from bot.compare import Comparison, compare_outputs
from bot.compare.model import MetricChange, MetricSeries, SeriesSide
from bot.compare.series import BUCKETS, decimate, side_of
from bot.errors import SpecInvalid
from bot.history import MetricRange
from bot.manifest import FileEntry
from bot.outputs import manifest_of
from bot.render.chart import history_svg, series_svg, sparkline
from bot.spec import CompareSection, parse_spec

from ..conftest import compare_trees, write_tree

PLOTS = {"plots": [{"file": "steps.csv", "x": "step", "y": ["loss", "val_loss"]}]}
STEPS = "step,loss,val_loss\n100,0.9,\n200,0.7,0.8\n300,0.5,\n400,0.4,0.6\n"


def test_lists_of_numbers_in_metrics_files_are_series_of_both_sides(tmp_path):
    base = {"metrics.json": json.dumps({"acc": 0.9, "loss": [0.9, 0.7, 0.5], "train": {"lr": [0.1, 0.05]}})}
    head = {"metrics.json": json.dumps({"acc": 0.91, "loss": [0.9, 0.6, 0.4, 0.3], "one": [1]})}
    comparison = compare_trees(tmp_path, base, head)
    assert [(s.file, s.name, s.x) for s in comparison.series] == [
        ("metrics.json", "loss", None),
        ("metrics.json", "train.lr", None),  # on main only; a list of one is no series
    ]
    loss, lr = comparison.series
    assert loss.base == SeriesSide(x=[0, 1, 2], y=[0.9, 0.7, 0.5], points=3, last=0.5)
    assert (loss.head.x, loss.head.points, loss.head.last) == ([0, 1, 2, 3], 4, 0.3)
    assert lr.head is None and lr.base.y == [0.1, 0.05]


def test_a_table_of_steps_is_a_series_per_column_against_its_x(tmp_path):
    head = STEPS.replace("0.4,0.6", "0.35,0.5") + "500,0.3,\n"
    comparison = compare_trees(tmp_path, {"steps.csv": STEPS}, {"steps.csv": head}, PLOTS)
    loss, val_loss = comparison.series
    assert (loss.name, loss.x, loss.base.x, loss.base.y) == (
        "loss",
        "step",
        [100, 200, 300, 400],
        [0.9, 0.7, 0.5, 0.4],
    )
    assert (loss.head.points, loss.head.last) == (5, 0.3)
    assert (val_loss.base.x, val_loss.base.y) == ([200, 400], [0.8, 0.6])  # empty cells are no point
    assert val_loss.head.last == 0.5


def test_identical_files_are_opened_only_for_the_plots_the_spec_lists_and_once(tmp_path):
    write_tree(tmp_path, {"metrics.json": '{"loss": [0.9, 0.5]}', "steps.csv": STEPS})
    manifest, opened = manifest_of(tmp_path), []

    def locate(entry: FileEntry) -> Path:
        opened.append(entry.path)
        return tmp_path / entry.path

    spec = CompareSection.model_validate(PLOTS)
    comparison = compare_outputs(manifest, manifest, locate, locate, spec)
    assert comparison.verdict == "pass" and opened == ["steps.csv"]
    assert [s.name for s in comparison.series] == ["loss", "val_loss"]  # steps.csv's columns, no metrics list
    assert all(s.base == s.head for s in comparison.series)


def test_a_tsv_without_x_is_drawn_against_its_row_numbers(tmp_path):
    steps = "loss\tacc\n0.9\t0.5\n0.8\tn/a\n0.7\t0.6\n"
    spec = {"plots": [{"file": "log/steps.tsv", "y": "acc"}]}
    (acc,) = compare_trees(tmp_path, {"log/steps.tsv": steps}, {"log/steps.tsv": steps}, spec).series
    assert (acc.x, acc.base.x, acc.base.y) == (None, [1, 3], [0.5, 0.6])  # `n/a` is no number


def test_plot_problems_are_said_and_change_no_verdict(tmp_path):
    spec = {"plots": [*PLOTS["plots"], {"file": "gone.csv", "y": "loss"}]}
    broken = STEPS.replace("val_loss", "validation")
    comparison = compare_trees(tmp_path, {"steps.csv": STEPS}, {"steps.csv": broken}, spec)
    messages = {p.path: p.message for p in comparison.problems}
    assert messages["gone.csv"] == "tierbot.yaml lists plot file gone.csv, but neither run made it"
    assert messages["steps.csv"] == (
        "not plotted: the branch's steps.csv has no column 'val_loss' to plot "
        "(its columns: step, loss, validation)"
    )
    loss, val_loss = comparison.series  # main's side is still drawn
    assert loss.head is None and val_loss.base.y == [0.8, 0.6]
    same = compare_trees(tmp_path / "same", {"steps.csv": STEPS}, {"steps.csv": STEPS}, spec)
    assert same.verdict == "pass" and not any(p.blocking for p in same.problems)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{file: steps.parquet, y: loss}",
            "compare.plots[0].file: must be a CSV or TSV file (.csv or .tsv), not",
        ),
        ("{file: ../steps.csv, y: loss}", "must be a relative path inside the repository"),
        (
            "{file: steps.csv, y: []}",
            "compare.plots[0]: y needs a column to draw: y: loss, or y: [loss, val_loss]",
        ),
        ("{file: steps.csv, x: step, y: [step]}", "x 'step' is also in y"),
        ("{file: steps.csv, y: [loss, loss]}", "y names a column twice"),
        ("{file: steps.csv}", "compare.plots[0].y: required, but missing"),
        ("{file: steps.csv, y: 3}", "compare.plots[0].y: must be text or a list of text, not 3"),
        ("{file: steps.csv, y: loss, xx: step}", "compare.plots[0].xx: unknown field; did you mean x?"),
    ],
)
def test_plots_are_validated_in_the_users_words(entry: str, message: str):
    with pytest.raises(SpecInvalid) as caught:
        parse_spec(f"run: {{command: go}}\ncompare:\n  plots:\n    - {entry}\n")
    (problem,) = caught.value.problems
    assert problem.startswith("tierbot.yaml:4: ") and message in problem, problem


def test_plots_take_one_column_or_a_list():
    spec = parse_spec("run: {command: go}\ncompare:\n  plots:\n    - {file: s.csv, y: loss}\n")
    assert (spec.compare.plots[0].x, spec.compare.plots[0].y) == (None, ["loss"])


def test_decimate_keeps_the_shape_of_a_long_series():
    ys = [math.sin(i / 100) for i in range(10_000)]
    ys[4_321] = 5.0  # a spike an average or every n-th point would lose
    xs, thin = decimate(range(10_000), ys)
    assert len(thin) <= 2 * BUCKETS + 2 and xs == sorted(xs)
    assert (xs[0], xs[-1]) == (0, 9_999) and 4_321 in xs and max(thin) == 5.0 and min(thin) == min(ys)
    assert decimate([1, 2, 3], [3, 1, 2]) == ([1, 2, 3], [3, 1, 2])  # short series stay as they are


def test_a_stored_side_draws_finite_points_and_keeps_the_whole_series_last_value():
    side = side_of([0, 1, 2, 3], [0.5, float("inf"), 0.4, float("nan")])
    assert (side.x, side.y, side.points) == ([0, 2], [0.5, 0.4], 4) and math.isnan(side.last)
    stored = Comparison(verdict="pass", reasons=[], series=[MetricSeries(file="m.json", name="l", base=side)])
    assert math.isnan(Comparison.model_validate_json(stored.model_dump_json()).series[0].base.last)
    assert Comparison.model_validate({"verdict": "pass", "reasons": []}).series == []  # stored before series


NASTY = "<b>x</b>&\"'"


def test_one_renderer_draws_series_and_history_escaped_without_script():
    series = MetricSeries(
        file=f"{NASTY}.csv",
        name=NASTY,
        x="step",
        base=SeriesSide(x=[0, 1, 2], y=[0.9, 0.7, 0.5], points=3, last=0.5),
        head=SeriesSide(x=[0, 1, 2], y=[0.9, 0.6, 0.4], points=3, last=0.4),
    )
    drawn = str(series_svg(series))
    assert drawn.startswith('<svg class="chart"') and drawn.count("<polyline") == 2
    assert 'stroke-dasharray="6 4"' in drawn  # the branch dashed: not by colour alone
    assert NASTY not in drawn and "&lt;b&gt;x&lt;/b&gt;&amp;&#34;&#39;" in drawn
    assert not re.search(r"<script|href=|xlink|url\(", drawn)

    recent = MetricRange(
        file="m.json", name=NASTY, branch=NASTY, values=[0.9, 0.91, 0.905], commits=["a", "b", "c"]
    )
    metric = MetricChange(file="m.json", name=NASTY, base=0.905, head=0.95, change="up")
    chart = str(history_svg(metric, recent))
    assert (
        chart.count("<polyline") == 1 and chart.count("<path") == 2
    )  # the branch's diamond, and in the legend
    assert "the branch: 0.95" in chart and NASTY not in chart
    assert (
        ">a<" in chart and ">c<" in chart and ">branch<" in chart
    )  # the commits and the branch on the x axis
    gone = str(history_svg(metric.model_copy(update={"head": None}), recent))
    assert gone.count("<path") == 0 and ">branch<" not in gone  # no value on the branch: no diamond


def test_sparkline():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([3, 3, 3]) == "▄▄▄" and sparkline([]) == ""
    long = sparkline([i % 100 for i in range(10_000)], width=40)
    assert len(long) <= 40 and "█" in long and "▁" in long
