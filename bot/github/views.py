"""What a pull request shows for a run: the check run's fields and the sticky comment's body. Pure:
a run, its comparison, its cost and the time in; text and fields out (templates in `templates/github/`,
rendered by the Markdown flavour of `bot.render.templates`, whose filters escape what they print).

Money is on every state: the estimate while the run is queued or running, what it cost once it ended
(`bot.costs.run_cost`, which the caller passes); a comparison says both runs' in its header."""

import re
from dataclasses import dataclass, field
from datetime import datetime

from bot.compare import Comparison
from bot.costs import RunCost
from bot.render.markdown import GITHUB_CHECK_SUMMARY_LIMIT, GITHUB_COMMENT_LIMIT, render_markdown
from bot.render.run_states import ended_without_outputs, progress, refusal, waiting_for_baseline
from bot.render.templates import md_code, template
from bot.render.view import ReportContext
from bot.store import ComparisonRecord, Run, RunState
from bot.store.models import REFUSALS, REFUSED

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


def check_name(run: Run, versus: str | None = None) -> str:
    """The PR's own run's name is the one branch protection may require; a run against another base
    (`versus`) carries that base in its name, so it can never satisfy the requirement."""
    own = f"tierbot: {run.experiment} ({run.tier})"
    return f"{own} vs {versus}" if versus else own


def sticky_marker(run: Run) -> str:
    return f"<!-- tierbot:sticky experiment={run.experiment} tier={run.tier} -->"


def described_sha(body: str) -> str | None:
    """The commit an existing sticky comment describes."""
    found = re.search(r"<!-- tierbot:sha=([0-9a-f]+) -->", body)
    return found.group(1) if found else None


def render(name: str, **variables) -> str:
    return template(f"github/{name}", "md").render(**variables)


def _ended_without_comparison(run: Run, comparison: ComparisonRecord | None) -> tuple[str, dict]:
    """(conclusion, the variables of state.md.j2 but the log) when there is no comparison to show."""
    if run.phase in REFUSALS:
        title, advice = refusal(run)
        conclusion = "failure" if run.phase == REFUSED else "action_required"  # someone else must act
        return conclusion, {"title": title, "reason": run.reason, "advice": advice}
    if run.state != RunState.succeeded:
        conclusion = {"timed_out": "timed_out", "cancelled": "cancelled"}.get(run.state, "failure")
        return conclusion, {"title": ended_without_outputs(run)}
    reason = comparison.reason if comparison is not None else "no baseline to compare against"
    return "neutral", {"title": "No comparison", "detail": reason}


def _state(run: Run, shown: dict, cost: RunCost | None) -> str:
    """state.md.j2 with the run's log tail and cost; every variable it does not show is None."""
    values = {"reason": None, "detail": None, "advice": None, "log_tail": run.log_tail, "cost": cost}
    return render("state.md.j2", **(values | shown))


def _progress(macro: str, *args) -> str:
    """A macro of progress.md.j2: a going run's line, with its estimate."""
    return str(getattr(template("github/progress.md.j2", "md").module, macro)(*args))


def _last_line(run: Run) -> str:
    """A going run's last log line as code, "" before it has one: the experiment wrote it, and may have
    written a mention, an image or a backtick that would end a hand-made code span."""
    line = (run.last_log_line or "").strip()
    return md_code(line[:200]) if line else ""


def check_view(
    run: Run,
    comparison: ComparisonRecord | None,
    ctx: ReportContext | None,
    now: datetime,
    position: int = 0,
    cost: RunCost | None = None,
) -> CheckView:
    if run.state == RunState.waiting:
        title, detail = progress(run, now, position)
        return CheckView("completed", title, detail, "action_required")
    if not run.run_state.terminal:
        title, _ = progress(run, now, position)
        status = "queued" if run.state == RunState.queued else "in_progress"
        summary = _progress("summary", _last_line(run) or title, cost)
        return CheckView(status=status, title=title, summary=summary)
    if comparison is not None and comparison.state == "pending":
        title = waiting_for_baseline(comparison)
        return CheckView(status="in_progress", title=title, summary=title)
    if comparison is not None and comparison.state == "done":
        result = Comparison.model_validate(comparison.result)
        summary = _fitting_markdown(result, ctx, GITHUB_CHECK_SUMMARY_LIMIT)
        title = f"{comparison.verdict.upper()}: " + "; ".join(result.reasons)
        return CheckView("completed", title[:200], summary, CONCLUSIONS[comparison.verdict], [RERUN])
    conclusion, shown = _ended_without_comparison(run, comparison)
    refused = run.phase in REFUSALS
    actions = [] if refused else [RERUN]  # a refused commit is refused again: the fix is a new push
    summary = _state(run, shown, cost).encode()[:GITHUB_CHECK_SUMMARY_LIMIT].decode(errors="ignore")
    return CheckView("completed", shown["title"][:200], summary, conclusion, actions)


def sticky_body(
    run: Run,
    comparison: ComparisonRecord | None,
    ctx: ReportContext | None,
    now: datetime,
    position: int = 0,
    previous: str | None = None,
    cost: RunCost | None = None,
) -> str:
    """The whole sticky comment. While a run is going and the comment shows an older commit's result,
    that result stays and a banner on top says a newer run is going."""
    banner = ""
    if not run.run_state.terminal or (comparison is not None and comparison.state == "pending"):
        title, detail = progress(run, now, position) if not run.run_state.terminal else ("Comparing", "")
        how = f" {detail}" if detail else ""  # what the reader must do
        if previous and described_sha(previous) not in (None, run.sha):
            shown = described_sha(previous)[:7]
            spent = f" · {_progress('spent', cost)}" if cost else ""
            banner = f"{title} for {run.sha[:7]}{spent}; the comparison below is for {shown}.{how}"
            return _replace_banner(previous, banner)
        body = _progress("sticky", title, run.sha[:7], detail, cost)
    elif comparison is not None and comparison.state == "done":
        result = Comparison.model_validate(comparison.result)
        body = _fitting_markdown(result, ctx, GITHUB_COMMENT_LIMIT - _ROOM)
    else:
        body = _state(run, _ended_without_comparison(run, comparison)[1], cost)
    return render(
        "sticky.md.j2",
        marker=sticky_marker(run),
        sha_marker=f"<!-- tierbot:sha={run.sha} -->",
        banner=banner,
        experiment=run.experiment,
        tier=run.tier,
        head_sha=run.sha,
        body=body.strip(),
    )


def _fitting_markdown(result: Comparison, ctx: ReportContext, limit: int) -> str:
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
