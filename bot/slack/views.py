"""What Slack shows of a run: one message, updated in place, ending as the comparison with buttons.
Pure: a run, its comparison and the time in; `{"text", "blocks"}` out, within Slack's limits. Every
mrkdwn text comes from `templates/slack/run.slack.j2`, which escapes what it prints."""

from datetime import datetime
from functools import partial

from bot.compare import Comparison
from bot.costs import MonthCosts, money, run_cost
from bot.render.run_states import ended_without_outputs, progress, ref_label, waiting_for_baseline
from bot.render.slack import SLACK_MAX_BLOCKS, render_slack
from bot.render.templates import template
from bot.render.view import ReportContext
from bot.slack.grammar import USAGE
from bot.store import ComparisonRecord, Run, RunState
from bot.tiers import TierSet

MAX_OPTIONS = 100  # a static_select's options
LOG_CHARACTERS = 2_800  # a section's text is at most 3,000
TAIL_LINES = 15  # of a failed run's log, in its message


def _texts():
    return template("slack/run.slack.j2", "slack").module


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def run_message(
    run: Run,
    comparison: ComparisonRecord | None,
    ctx: ReportContext | None,
    now: datetime,
    position: int,
    tiers: TierSet,
    about: str | None = None,
    about_url: str | None = None,
) -> dict:
    """`about`: what the run is for, e.g. the pull request `acme/models#7` (at `about_url`)."""
    texts = _texts()
    buttons = actions(run, tiers)
    if comparison is not None and comparison.state == "done" and run.run_state.terminal:
        pull = [context(str(texts.pull_line(about, about_url)))] if about else []
        room = SLACK_MAX_BLOCKS - len(buttons) - len(pull)
        message = render_slack(Comparison.model_validate(comparison.result), ctx, max_blocks=room)
        return {"text": message["text"], "blocks": message["blocks"] + pull + buttons}
    title, detail = state_text(run, comparison, now, position)
    line = (run.last_log_line or "").strip() if run.state == RunState.running else ""
    label = texts.label(run, ref_label(run.ref, run.sha), about, about_url)
    spent = run_cost(run, tiers.currency)  # estimated until it ends, then what it cost
    blocks = [section(str(label)), section(str(texts.status(run, title, detail, line, spent)))]
    if run.run_state.terminal and run.state != RunState.succeeded and run.log_tail:
        blocks.append(section(log_text(run, "\n".join(run.log_tail.splitlines()[-TAIL_LINES:]))))
    return {"text": str(texts.fallback(run, title)), "blocks": blocks + buttons}


def state_text(
    run: Run, comparison: ComparisonRecord | None, now: datetime, position: int
) -> tuple[str, str]:
    """(title, detail); the running run's last log line is shown apart, as code."""
    if not run.run_state.terminal:
        return progress(run, now, position)
    if comparison is not None and comparison.state == "pending":
        return waiting_for_baseline(comparison), ""
    if run.state != RunState.succeeded:
        return ended_without_outputs(run), ""
    if comparison is not None and comparison.state == "failed":
        return "No comparison", comparison.reason or ""
    return f"Succeeded: {run.reason}", ""


def actions(run: Run, tiers: TierSet) -> list[dict]:
    """Cancel while the run goes; Rerun on a tier that can run here (a select) once it has ended; Logs
    once it started: one actions block, or none when there is nothing to offer (Slack refuses an empty
    one)."""
    elements: list[dict] = []
    if not run.run_state.terminal:
        elements.append(
            {
                "type": "button",
                "action_id": "tierbot_cancel",
                "text": {"type": "plain_text", "text": "Cancel"},
                "style": "danger",
                "value": str(run.id),
            }
        )
    else:
        # Only tiers that can run here: a rerun on an unavailable one would only be refused.
        available = [tier for tier in tiers.tiers if not tier.unavailable][:MAX_OPTIONS]
        options = [
            {"text": {"type": "plain_text", "text": tier.name[:75]}, "value": f"{run.id}:{tier.name}"}
            for tier in available
        ]
        if options:  # Slack refuses a select without options
            elements.append(
                {
                    "type": "static_select",
                    "action_id": "tierbot_rerun",
                    "placeholder": {"type": "plain_text", "text": "Rerun on…"},
                    "options": options,
                }
            )
    if run.started_at is not None:
        elements.append(
            {
                "type": "button",
                "action_id": "tierbot_logs",
                "text": {"type": "plain_text", "text": "Logs"},
                "value": str(run.id),
            }
        )
    return [{"type": "actions", "block_id": f"run-{run.id}", "elements": elements}] if elements else []


def log_text(run: Run, tail: str) -> str:
    return str(_texts().log(run, tail or "(no output yet)", LOG_CHARACTERS))


def run_line(run: Run, verdict: str | None = None, report_url: str | None = None) -> str:
    """One line per run; with its comparison's verdict, and a link to its report when it has a web one."""
    link = report_url if report_url and report_url.startswith(("https://", "http://")) else None
    return str(_texts().run_line(run, ref_label(run.ref, run.sha), verdict, link))


def costs_text(costs: MonthCosts, hidden: int) -> str:
    """`/run costs`: a month's spend; `hidden` repositories were left out (the asker may not read them)."""
    page = template("slack/costs.slack.j2", "slack")
    return page.render(c=costs, money=partial(money, currency=costs.currency), hidden=hidden).strip()


def no_runs_text() -> str:
    return str(_texts().no_runs())


def help_text(tiers: TierSet) -> str:
    """The commands, and the tiers (each marked when it cannot run here)."""
    return str(_texts().help(USAGE, tiers.tiers))


def tiers_text(tiers: TierSet) -> str:
    return str(_texts().tiers(tiers.tiers))


def home_view(lines: list[str], now: datetime) -> dict:
    """The App Home tab: `run_line`s, newest first."""
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": "Your recent runs"}}]
    blocks += [section(line) for line in lines] or [section(no_runs_text())]
    blocks.append(context(str(_texts().updated(now.strftime("%Y-%m-%d %H:%M UTC")))))
    return {"type": "home", "blocks": blocks}
