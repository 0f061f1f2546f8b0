"""The metric history of the branches comparisons are made against: a point per run, ranges for reports.

Which runs are points. A comparison's baseline runs at the merge base of its base branch, a commit of
that branch, and is stored under the base's name (`Run.ref`: `main`, the pull request's base, `--base`),
so every baseline is a point of its base branch's history. Any other run is a point when the ref it was
asked for is the name of a branch that already has a history: `tierbot run main`, `/run experiment main`
— but not a feature branch, which nothing is compared against, nor a commit given by its sha (a pull
request's head), nor `HEAD`. The core knows no default branch, only the names requests gave, and every
door compares against the default branch unless told otherwise (`tierbot compare`: origin's HEAD, else
main or master; Slack: main; GitHub: the pull request's base), so the default branch's history is there,
and a stacked branch's base gets one too, which is what its reports want. Untrusted code is never a point.

When. Once, when a run's outputs are collected (`record`, from `bot.worker`): every run that executes
passes there, and only those. A run that takes an earlier run's outcome (`bot.reuse`) never does, so the
same outputs of the same commit are never a second point; a baseline shared by many comparisons is one
run, so one point. A point keeps the finite numbers of the metrics files the spec declares
(`compare.metrics`), but those inside lists (series, drawn by `bot.compare.series`); it outlives the files
(`tierbot gc`). Reports show the range of main's last `WINDOW` points beside each metric (`ranges_for`),
and `tierbot history` lists a branch's points (`history`).
"""

import json
import logging
import math
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import Row, delete, select
from sqlalchemy.orm import Session, object_session

from bot.compare.files import Pair
from bot.compare.metrics import MetricsUnparseable, load_metrics
from bot.manifest import FileEntry, Manifest
from bot.spec import Spec
from bot.store import ComparisonRecord, Database, Run, RunState
from bot.store.models import MetricPoint

log = logging.getLogger(__name__)

WINDOW = 20  # points of main's history a report shows beside each metric
MAX_VALUES = 1_000  # numbers a point keeps: those the spec names first, then the others by name
_NOT_A_BRANCH = re.compile(r"^(HEAD|[0-9a-f]{7,64})$")  # HEAD, or a commit given by its sha
_IN_A_LIST = re.compile(r"\[\d+\]")  # `loss[3]`: an element of a series, not a metric of its own

Values = dict[str, dict[str, int | float]]  # metrics file → flattened metric name → number


class MetricRange(BaseModel):
    """One metric's values in the last runs of the branch compared against, oldest first: what a report
    shows beside the branch's value ("main's last 20 runs: 0.905–0.915") and draws as a line."""

    file: str
    name: str
    branch: str
    values: list[float]
    commits: list[str]  # the points' commits, short, in the same order

    @staticmethod
    def key_of(file: str, name: str) -> str:
        return json.dumps([file, name])

    @property
    def count(self) -> int:
        return len(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def outside(self, value: float | int | None) -> bool:
        """Whether a value is beyond the range of the branch's runs (float noise at its edges is not)."""
        if value is None or not math.isfinite(value):
            return False
        nearest = min(max(value, self.low), self.high)
        return not math.isclose(value, nearest, rel_tol=1e-9, abs_tol=1e-12)


class HistoryPoint(BaseModel):
    run: int
    sha: str
    value: float | int
    recorded_at: datetime


class MetricHistory(BaseModel):
    """One metric of one experiment and tier on a branch, its points oldest first (`tierbot history`)."""

    experiment: str
    tier: str
    branch: str
    file: str
    metric: str
    points: list[HistoryPoint]


# -- recording ------------------------------------------------------------------------------------------


def metric_values(manifest: Manifest, spec: Spec, locate: Callable[[FileEntry], Path]) -> Values:
    """The finite numbers of the spec's metrics files that the run made, outside lists; a file that cannot
    be read gives none (its comparison says why)."""
    values: Values = {}
    room = MAX_VALUES
    for listed in spec.compare.metrics:
        entry = manifest.files.get(listed.file)
        if entry is None or room <= 0:
            continue
        try:
            numbers = load_metrics(Pair(listed.file, None, entry, locate, locate), "head")
        except MetricsUnparseable:
            continue
        names = sorted(numbers, key=lambda name: (name not in listed.metrics, name))
        kept = [n for n in names if not _IN_A_LIST.search(n) and math.isfinite(numbers[n])][:room]
        if kept:
            values[listed.file] = {name: numbers[name] for name in kept}
            room -= len(kept)
    return values


def history_branch(s: Session, run: Run) -> str | None:
    """The branch whose history the run is a point of, or None (the rule in the module's docstring)."""
    if not run.trusted or not run.ref or _NOT_A_BRANCH.match(run.ref):
        return None
    if run.role == "baseline":
        return run.ref
    known = select(MetricPoint.id).where(
        MetricPoint.repository == run.repository, MetricPoint.branch == run.ref
    )
    return run.ref if s.scalar(known.limit(1)) is not None else None


def record(
    db: Database, run: Run, manifest: Manifest, spec: Spec, locate: Callable[[FileEntry], Path]
) -> None:
    """Keep the run's metrics as a point of its branch's history, when it is one. Never fails the run: a
    history without this point is better than an experiment reported as failed for it."""
    try:
        values = metric_values(manifest, spec, locate)
        if not values:
            return
        with db.session() as s:
            branch = history_branch(s, run)
            if branch is None:
                return
            s.execute(delete(MetricPoint).where(MetricPoint.run_id == run.id))  # a retried attempt's
            s.add(
                MetricPoint(
                    run_id=run.id,
                    repository=run.repository,
                    branch=branch,
                    experiment=run.experiment,
                    tier=run.tier,
                    sha=run.sha,
                    values=values,
                )
            )
    except Exception:  # a bug or a database hiccup here must not fail the run that just succeeded
        log.exception("run %s: its metric history point was not recorded", run.id)


# -- reading --------------------------------------------------------------------------------------------


def _points(s: Session, where: list, last: int) -> list[Row]:
    """The newest `last` points that match, of runs that succeeded (a point of a run that then lost its
    worker and failed on its next attempt is not one), oldest first. Rows, not ORM objects: building those
    was most of the time a long history took to read (benchmarks/overhead.py)."""
    columns = MetricPoint.run_id, MetricPoint.sha, MetricPoint.values, MetricPoint.recorded_at
    query = (
        select(*columns)
        .join(Run, Run.id == MetricPoint.run_id)
        .where(Run.state == RunState.succeeded, *where)
        .order_by(MetricPoint.run_id.desc())
        .limit(last)
    )
    return list(reversed(s.execute(query).all()))


def ranges_for(db: Database, comparison: ComparisonRecord) -> dict[str, MetricRange]:
    """Each metric's range in the last WINDOW points of the base branch (experiment and tier of the
    baseline), by `MetricRange.key_of`. Only points of runs the comparison's own runs do not predate, so
    a report rendered again later says what it said. In the comparison's session when it has one (every
    SQLite transaction takes the write lock: a second session would wait for the first)."""
    session = object_session(comparison)
    if session is not None:
        return _ranges(session, comparison)
    with db.session() as s:
        return _ranges(s, comparison)


def _ranges(s: Session, comparison: ComparisonRecord) -> dict[str, MetricRange]:
    base = comparison.base_run
    where = [
        MetricPoint.repository == base.repository,
        MetricPoint.branch == (base.ref or ""),
        MetricPoint.experiment == base.experiment,
        MetricPoint.tier == base.tier,
        MetricPoint.run_id <= max(comparison.head_run_id, comparison.base_run_id),
    ]
    ranges: dict[str, MetricRange] = {}
    for point, file, name, value in _each_value(_points(s, where, WINDOW)):
        found = ranges.setdefault(
            MetricRange.key_of(file, name),
            MetricRange(file=file, name=name, branch=base.ref, values=[], commits=[]),
        )
        found.values.append(value)
        found.commits.append(point.sha[:7])
    return ranges


def _each_value(points: list[Row]) -> Iterator[tuple[Row, str, str, int | float]]:
    """(point, metrics file, metric, number) of every number of the points, in their order."""
    for point in points:
        for file, numbers in point.values.items():
            for name, value in numbers.items():
                yield point, file, name, value


def history(
    db: Database,
    repository: str,
    branch: str,
    experiment: str | None = None,
    tier: str | None = None,
    last: int = WINDOW,
) -> list[MetricHistory]:
    """Every metric of the branch's last `last` points, per experiment and tier, oldest point first."""
    where = [MetricPoint.repository == repository, MetricPoint.branch == branch]
    where += [MetricPoint.experiment == experiment] if experiment is not None else []
    where += [MetricPoint.tier == tier] if tier is not None else []
    with db.session() as s:
        groups = s.execute(
            select(MetricPoint.experiment, MetricPoint.tier)
            .where(*where)
            .distinct()
            .order_by("experiment", "tier")
        ).all()
        found: list[MetricHistory] = []
        for group_experiment, group_tier in groups:
            points = _points(
                s, [*where, MetricPoint.experiment == group_experiment, MetricPoint.tier == group_tier], last
            )
            found += _by_metric(points, group_experiment, group_tier, branch)
    return found


def _by_metric(points: list[Row], experiment: str, tier: str, branch: str) -> list[MetricHistory]:
    series: dict[tuple[str, str], MetricHistory] = {}
    for point, file, name, value in _each_value(points):
        metric = series.setdefault(
            (file, name),
            MetricHistory(experiment=experiment, tier=tier, branch=branch, file=file, metric=name, points=[]),
        )
        metric.points.append(
            HistoryPoint(run=point.run_id, sha=point.sha, value=value, recorded_at=point.recorded_at)
        )
    return [series[key] for key in sorted(series)]
