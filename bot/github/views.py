"""What a pull request shows for a run: the check run's fields and the sticky comment's body. Pure:
a run, its comparison and the time in; text and fields out (templates in `templates/github/`)."""

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot.compare import Comparison as Result
from bot.report import ReportContext, render_markdown
from bot.resources import resource_dir
from bot.runtext import progress, refusal
from bot.store import Comparison, Run, RunState
from bot.store.models import REFUSED, REFUSED_NEEDS_PERSON

COMMENT_LIMIT = 65_536
CHECK_SUMMARY_LIMIT = 65_535
_ROOM = 1_000  # for the comment's header, banner and footer around the comparison
CONCLUSIONS = {"pass": "success", "changed": "neutral", "fail": "failure"}
RERUN = {"label": "Rerun", "description": "Run this experiment again", "identifier": "rerun"}


@dataclass
class CheckView:
    status: str  # queued | in_progress | completed
    title: str
    summary: str
    conclusion: str | None = None
    actions: list[dict] = field(default_factory=list)


def check_name(run: Run) -> str:
    return f"tierbot: {run.experiment} ({run.tier})"


def sticky_marker(run: Run) -> str:
    return f"<!-- tierbot:sticky experiment={run.experiment} tier={run.tier} -->"


def described_sha(body: str) -> str | None:
    """The commit an existing sticky comment describes."""
    found = re.search(r"<!-- tierbot:sha=([0-9a-f]+) -->", body)
    return found.group(1) if found else None


@cache
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(resource_dir("templates") / "github"),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown; user data is escaped where it is inserted
    )


def render(template: str, **variables) -> str:
    return _env().get_template(template).render(**variables)


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _ended_without_comparison(run: Run, comparison: Comparison | None) -> tuple[str, str, str]:
    """(conclusion, title, detail) when there is no comparison to show."""
    if run.phase in (REFUSED, REFUSED_NEEDS_PERSON):
        title, detail = refusal(run)
        fenced = f"{_fence(run.reason or '')}\n{run.reason}\n{_fence(run.reason or '')}"
        conclusion = "action_required" if run.phase == REFUSED_NEEDS_PERSON else "failure"
        return conclusion, title, f"{fenced}\n\n{detail}"
    if run.state != RunState.succeeded:
        conclusion = {"timed_out": "timed_out", "cancelled": "cancelled"}.get(run.state, "failure")
        return conclusion, f"The experiment {run.state}: {run.reason}", ""
    reason = comparison.reason if comparison is not None else "no baseline to compare against"
    return "neutral", "No comparison", reason


def check_view(
    run: Run, comparison: Comparison | None, ctx: ReportContext | None, now: datetime, position: int = 0
) -> CheckView:
    if run.state == RunState.waiting:
        title, detail = progress(run, now, position)
        return CheckView("completed", title, detail, "action_required")
    if not run.run_state.terminal:
        title, detail = progress(run, now, position)
        status = "queued" if run.state == RunState.queued else "in_progress"
        return CheckView(status=status, title=title, summary=detail or title)
    if comparison is not None and comparison.state == "pending":
        title = f"Comparing: waiting for the baseline run {comparison.base_run_id}"
        return CheckView(status="in_progress", title=title, summary=title)
    if comparison is not None and comparison.state == "done":
        result = Result.model_validate(comparison.result)
        summary = _fitting_markdown(result, ctx, CHECK_SUMMARY_LIMIT)
        title = f"{comparison.verdict.upper()}: " + "; ".join(result.reasons)
        return CheckView("completed", title[:200], summary, CONCLUSIONS[comparison.verdict], [RERUN])
    conclusion, title, detail = _ended_without_comparison(run, comparison)
    refused = run.phase in (REFUSED, REFUSED_NEEDS_PERSON)
    actions = [] if refused else [RERUN]  # a refused commit is refused again: the fix is a new push
    summary = (
        _env()
        .get_template("state.md.j2")
        .render(run=run, title=title, detail=detail, log_tail=run.log_tail, fence=_fence(run.log_tail or ""))
    )
    summary = summary.encode()[:CHECK_SUMMARY_LIMIT].decode(errors="ignore")
    return CheckView("completed", title[:200], summary, conclusion, actions)


def sticky_body(
    run: Run,
    comparison: Comparison | None,
    ctx: ReportContext | None,
    now: datetime,
    position: int = 0,
    previous: str | None = None,
) -> str:
    """The whole sticky comment. While a run is going and the comment shows an older commit's result,
    that result stays and a banner on top says a newer run is going."""
    banner = ""
    if not run.run_state.terminal or (comparison is not None and comparison.state == "pending"):
        title, detail = progress(run, now, position) if not run.run_state.terminal else ("Comparing", "")
        how = f" {detail}" if run.state == RunState.waiting else ""  # what the reader must do
        if previous and described_sha(previous) not in (None, run.sha):
            shown = described_sha(previous)[:7]
            banner = f"{title} for {run.sha[:7]}; the comparison below is for {shown}.{how}"
            return _replace_banner(previous, banner)
        body = f"**{title}** for {run.sha[:7]}.{how}"
    elif comparison is not None and comparison.state == "done":
        result = Result.model_validate(comparison.result)
        body = _fitting_markdown(result, ctx, COMMENT_LIMIT - _ROOM)
    else:
        _, title, detail = _ended_without_comparison(run, comparison)
        body = (
            _env()
            .get_template("state.md.j2")
            .render(
                run=run, title=title, detail=detail, log_tail=run.log_tail, fence=_fence(run.log_tail or "")
            )
        )
    return (
        _env()
        .get_template("sticky.md.j2")
        .render(
            marker=sticky_marker(run),
            sha_marker=f"<!-- tierbot:sha={run.sha} -->",
            banner=banner,
            experiment=run.experiment,
            tier=run.tier,
            head_sha=run.sha,
            body=body.strip(),
        )
    )


def _fitting_markdown(result: Result, ctx: ReportContext, limit: int) -> str:
    """GitHub counts check-run summaries in UTF-8 bytes; ▲, ✖ and friends take three each."""
    while True:
        text = render_markdown(result, ctx, limit=limit)
        if len(text.encode()) <= limit:
            return text
        limit = int(limit * 0.9)


def _replace_banner(previous: str, banner: str) -> str:
    start, end = "<!-- tierbot:banner -->", "<!-- /tierbot:banner -->"
    head, _, rest = previous.partition(start)
    _, _, tail = rest.partition(end)
    return f"{head}{start}\n> [!NOTE]\n> {banner}\n\n{end}{tail}"
