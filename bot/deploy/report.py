"""A deployment's report: each step, the smoke request, and the prediction diff shown as a PR comment
shows output changes (each changed answer path by path, old → new).

It is kept as a comparison: the new version's run against the live version's, whose result is the
prediction diff (when one was made), with the report as its page. So `tierbot serve` serves it at
`/reports/ID` behind a signed link like every report (the GitHub deployment's `log_url`), and
`tierbot show RUN` finds it, with no route or store of its own.
"""

import time
from dataclasses import dataclass, field

from bot.compare.model import JsonChange
from bot.deploy.checks import PredictionDiff, allowed, answer_file
from bot.pipeline import Pipeline
from bot.render.templates import clip, template
from bot.signed_links import report_url
from bot.spec import DeploySection, Tolerance
from bot.store import ComparisonRecord
from bot.store.models import Deployment, utcnow

SHOWN_CHANGES = 5  # per answer
SHOWN_ANSWERS = 50


class Steps:
    """The lines of one attempt, each with the seconds since it began."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.lines: list[tuple[float, str]] = []

    def __call__(self, line: str) -> None:
        self.lines.append((time.monotonic() - self.started, line))


@dataclass
class Attempt:
    """What one attempt at a deployment found out, for its report."""

    steps: Steps = field(default_factory=Steps)
    diff: PredictionDiff | None = None
    deploy: DeploySection | None = None
    tolerance: Tolerance | None = None
    no_diff: str = "No prediction diff was made: the deployment ended before it."


@dataclass(frozen=True)
class ChangedAnswer:
    number: int
    source: str
    request: str
    changes: list[JsonChange]
    more: int


@dataclass(frozen=True)
class DiffView:
    summary: str
    changed: list[ChangedAnswer]


def diff_summary(attempt: Attempt) -> str:
    """`2 of 12 replayed requests answered differently beyond tolerance abs 0.001 (max_changed 5%: 0)`."""
    diff, deploy = attempt.diff, attempt.deploy
    total, changed = len(diff.samples), len(diff.changed)
    tolerance = attempt.tolerance or Tolerance()
    exact = tolerance.abs == 0 and tolerance.rel == 0
    within = "compared exactly" if exact else f"beyond tolerance abs {tolerance.abs:g}, rel {tolerance.rel:g}"
    limit = allowed(deploy, total) if deploy else None
    gate = f"; deploy.max_changed {deploy.max_changed} allows {limit}" if limit is not None else ""
    plural = "request" if total == 1 else "requests"
    return f"{changed} of {total} replayed {plural} answered differently ({within}){gate}"


def _changed(diff: PredictionDiff) -> list[ChangedAnswer]:
    by_document = {d.path: d for d in diff.comparison.json_diffs}
    shown = []
    for index in diff.changed[:SHOWN_ANSWERS]:
        found = by_document.get(answer_file(index))
        changes = found.changes[:SHOWN_CHANGES] if found else []
        more = (found.total - len(changes)) if found else 0
        item = diff.samples[index]
        shown.append(ChangedAnswer(index + 1, item.source, clip(item.body, 300), changes, more))
    return shown


def render_report(deployment: Deployment, attempt: Attempt, previous: Deployment | None) -> str:
    diff = None
    if attempt.diff is not None:
        diff = DiffView(summary=diff_summary(attempt), changed=_changed(attempt.diff))
    return template("deploy/report.html.j2", "html").render(
        d=deployment,
        previous=f"deployment {previous.id} ({previous.short_sha})" if previous else None,
        lines=attempt.steps.lines,
        diff=diff,
        no_diff=attempt.no_diff,
    )


def write_report(pipeline: Pipeline, deployment: Deployment, attempt: Attempt) -> int | None:
    """Keep the report as a comparison of the deployment's run with the live version's; its id, or
    None when the deployment never had a run (nothing to report beside its reason)."""
    if deployment.run_id is None:
        return None
    diff = attempt.diff
    with pipeline.db.session() as s:
        previous = s.get(Deployment, deployment.previous_id) if deployment.previous_id else None
        comparison = ComparisonRecord(
            head_run_id=deployment.run_id,
            base_run_id=(previous.run_id if previous and previous.run_id else deployment.run_id),
            head_label=f"deployment {deployment.id}: {deployment.short_sha}",
            base_label=f"live: {previous.short_sha}" if previous else "nothing live",
            state="done" if diff is not None else "failed",
            verdict=diff.comparison.verdict if diff is not None else None,
            result=diff.comparison.model_dump(mode="json") if diff is not None else None,
            reason=None if diff is not None else attempt.no_diff,
            finished_at=utcnow(),
        )
        s.add(comparison)
        s.flush()
        comparison_id = comparison.id
    html = render_report(deployment, attempt, previous)
    path = pipeline.artifacts.put_report(comparison_id, pipeline.redactor(html))
    with pipeline.db.session() as s:
        s.get(ComparisonRecord, comparison_id).report_path = path
    return comparison_id


def report_link(pipeline: Pipeline, deployment: Deployment) -> str | None:
    """The signed link to the deployment's report (a file URI without a public URL), or None."""
    if deployment.comparison_id is None:
        return None
    comparison = pipeline.comparison(deployment.comparison_id)
    return report_url(pipeline.settings, comparison.id, deployment.repository, comparison.report_path)
