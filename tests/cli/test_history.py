"""`tierbot history` as a user runs it, on a real repository whose main was compared against; and its
table, pinned by a golden file (tests/golden/history.term.txt, rendered from hand-built histories)."""

from datetime import UTC, datetime

from rich.console import Console

from bot.cli.history import tables
from bot.history import HistoryPoint, MetricHistory

from ..conftest import GitRepo
from ..fakes.cli import json_document
from ..golden import check_golden


def test_history_shows_mains_points_after_a_compare(tierbot, simple_repo: GitRepo, tmp_path):
    repo = ("--repo", str(simple_repo))
    empty = tierbot("history", *repo)
    assert empty.returncode == 0, empty.stderr
    assert "No history of main yet" in empty.stdout

    compared = tierbot("compare", "better", *repo)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "main's last 1 run: 0.9" in compared.stdout  # the report quotes the point its baseline made

    shown = tierbot("history", *repo)
    assert shown.returncode == 0, shown.stderr
    head, columns, row = shown.stdout.splitlines()
    assert head == "simple on tier local · main's runs, oldest first"
    assert columns.split() == ["metric", "history", "last", "min", "–", "max", "runs", "commits"]
    assert row.split()[:7] == ["accuracy", "▄", "0.9", "0.9", "–", "0.9", "1"]
    assert tierbot("history", "metrics.json:accuracy", "-n", "5", *repo).stdout == shown.stdout
    assert "No history of main, tier gpu yet" in tierbot("history", "--tier", "gpu", *repo).stdout

    wrong = tierbot("history", "acuracy", *repo)
    assert wrong.returncode == 2
    assert (
        "main's history has no metric 'acuracy'. Did you mean accuracy? Its metrics: accuracy."
        in wrong.stderr
    )
    outside = tierbot("history", "--repo", str(tmp_path))
    assert outside.returncode == 2 and "is not a git repository" in outside.stderr


def test_history_json_is_the_documented_shape(tierbot, simple_repo: GitRepo):
    assert tierbot("compare", "better", "--repo", str(simple_repo)).returncode == 0
    document = json_document(tierbot("history", "--repo", str(simple_repo), "--json"))
    (accuracy,) = document["history"]
    assert (accuracy["branch"], accuracy["metric"], accuracy["file"]) == ("main", "accuracy", "metrics.json")
    assert [point["value"] for point in accuracy["points"]] == [0.9]


def point(run: int, value: float) -> HistoryPoint:
    return HistoryPoint(
        run=run, sha=f"{run:07x}" + "0" * 33, value=value, recorded_at=datetime(2025, 1, run, tzinfo=UTC)
    )


def metric(file: str, name: str, values: list[float], experiment: str = "iris") -> MetricHistory:
    points = [point(run, value) for run, value in enumerate(values, start=1)]
    return MetricHistory(
        experiment=experiment, tier="local", branch="main", file=file, metric=name, points=points
    )


def test_history_table_golden():
    """Names that need escaping, one metric in two files (FILE:NAME), a flat one, a single point."""
    found = [
        metric("metrics.json", "test.accuracy", [0.905, 0.915, 0.91, 0.912, 0.93, 0.9]),
        metric("metrics.json", "loss", [0.31, 0.3, 0.29, 0.295]),
        metric("eval/metrics.yaml", "loss", [0.4, 0.4, 0.4]),
        metric("metrics.json", "[bold]x[/bold]", [1.0]),
        metric("metrics.json", "f1", [0.5, 0.7], experiment="iris-small"),
    ]
    console = Console(record=True, width=160)
    console.print(tables(found, "main"), highlight=False, emoji=False)
    text = console.export_text()
    check_golden("history.term.txt", text)
    assert "[bold]x[/bold]" in text and "eval/metrics.yaml:loss" in text and "metrics.json:loss" in text
