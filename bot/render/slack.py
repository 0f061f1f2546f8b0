"""The comparison as a Slack message (Block Kit) that Slack accepts whatever the comparison's size.

Slack takes at most 50 blocks a message, 3,000 characters a section's text and 150 a header's. The
message is a header (the verdict), the reasons, a context line (what was compared), then sections for
params (the inputs), metrics, files, tables and problems, and a link to the full report. Each section
lists its most important rows first and ends with "… N more" when the rest would not fit its text; when
the blocks do not all fit (`max_blocks` is lower when the Slack door reserves blocks for its buttons),
whole sections are left out, the least important first, and the link says which. Texts come from
`templates/comparison.slack.j2`; this module only builds the blocks around them and measures.
"""

from collections.abc import Callable
from typing import Any

from bot.compare import Comparison
from bot.render.templates import slack_length, template
from bot.render.view import QUIET, ReportContext, full_view, table_beyond, variables

SLACK_MAX_BLOCKS = 50  # blocks in one message
SLACK_MAX_TEXT = 3_000  # characters of a section's (or a context element's) text
SLACK_MAX_HEADER = 150  # characters of a header block's text

DISPLAY = (
    "header", "reasons", "context", "params", "metrics", "plots", "files", "tables", "problems", "link"
)  # fmt: skip
# When blocks run short, sections are kept in this order. The link to the full report comes right after
# the verdict: with at least 3 blocks it is always there, and it names the sections left out.
IMPORTANCE = ("header", "reasons", "context", "metrics", "params", "tables", "files", "problems", "plots")
MIN_BLOCKS_FOR_LINK = 3


def _clip(text: str, limit: int) -> str:
    """At most `limit` UTF-16 units, ending with `…` when shortened (for plain text only)."""
    if slack_length(text) <= limit:
        return text
    text = text[: limit - 1]  # a character is at least one unit; emoji may take two
    while slack_length(text) > limit - 1:
        text = text[:-1]
    return text + "…"


def _cap(text: str) -> str:
    """A guard, never expected to act: every line is clipped in the template, so texts fit by design."""
    if slack_length(text) <= SLACK_MAX_TEXT:
        return text
    text = _clip(text, SLACK_MAX_TEXT - 1)
    cut = text.rfind("\n")
    return (text[:cut] if cut > 0 else text[:-1]) + "\n…"


def _fit_lines(heading: str, lines: list[str], more: Callable[[int], str]) -> str:
    """The heading and as many lines as fit one text, then a note counting the lines left out."""
    note = 1 + slack_length(more(len(lines)))  # the longest note there can be: the most digits
    used = slack_length(heading)
    kept = 0
    for line in lines:
        after = used + 1 + slack_length(line)
        if after + (0 if kept + 1 == len(lines) else note) > SLACK_MAX_TEXT:
            break
        used, kept = after, kept + 1
    text = "\n".join(([heading] if heading else []) + lines[:kept])
    if kept < len(lines):
        text += ("\n" if text else "") + more(len(lines) - kept)
    return _cap(text)


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _blocks(comparison: Comparison, ctx: ReportContext, texts: Any) -> dict[str, dict]:
    """Every block the message could have but the link, by name; each section lists what matters first."""
    values = variables(comparison, ctx, full_view(comparison))
    failing, within, url = values["failing"], values["within"], ctx.report_url

    def lines_section(heading: str, lines: list[str]) -> dict:
        more = lambda n: str(texts.more(n, ctx.report_url))  # noqa: E731
        return _section(_fit_lines(heading, [line.strip() for line in lines], more))

    header = _clip(str(texts.header(comparison, ctx)).strip(), SLACK_MAX_HEADER)
    context = _cap(str(texts.context(ctx)))
    blocks = {
        "header": {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        "context": {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
    }
    if comparison.reasons:
        blocks["reasons"] = lines_section("", [texts.reason(r) for r in comparison.reasons])
    if comparison.params:
        lines = [line for p in comparison.params for line in str(texts.params_lines(p, url)).splitlines()]
        blocks["params"] = lines_section(texts.params_heading(), lines)
    if comparison.metrics:
        moved = [m for m in comparison.metrics if m.change != "same"]
        moved.sort(key=lambda m: (not m.failed, m.assessment != "worse", m.assessment != "better"))
        show_file = len({m.file for m in comparison.metrics}) > 1
        heading = texts.metrics_heading(len(comparison.metrics) - len(moved))
        lines = [texts.metric(m, show_file, ctx.range_of(m)) for m in moved]
        blocks["metrics"] = lines_section(heading, lines)
    if comparison.series:
        lines = [texts.series(s) for s in comparison.series]
        blocks["plots"] = lines_section(texts.plots_heading(len(lines)), lines)
    if comparison.files:
        order = {f.path: i for i, f in enumerate(comparison.files)}
        news = [f for f in comparison.files if f.status not in QUIET]
        news.sort(key=lambda f: (f.path not in failing, f.path in within, order[f.path]))
        heading = texts.files_heading(values["counts"])
        lines = [texts.file(f, failing, within, values["anchors"], url) for f in news]
        blocks["files"] = lines_section(heading, lines)
    if comparison.tables:
        ranked = sorted(
            range(len(comparison.tables)),
            key=lambda i: (
                comparison.tables[i].path not in failing,
                not table_beyond(comparison.tables[i]),
                i,
            ),
        )
        lines = [texts.table(comparison.tables[i], failing) for i in ranked]
        blocks["tables"] = lines_section(texts.tables_heading(len(lines)), lines)
    if comparison.problems:
        problems = sorted(comparison.problems, key=lambda p: not p.blocking)
        lines = [texts.problem(p) for p in problems]
        blocks["problems"] = lines_section(texts.problems_heading(len(lines)), lines)
    return blocks


def render_slack(comparison: Comparison, ctx: ReportContext, max_blocks: int = SLACK_MAX_BLOCKS) -> dict:
    """`{"text": fallback, "blocks": [...]}` for chat.postMessage / chat.update; at most `max_blocks`.

    A caller that adds blocks of its own (buttons) passes `max_blocks=SLACK_MAX_BLOCKS - its_blocks`.
    """
    if max_blocks < 1:
        raise ValueError("a Slack message needs at least one block (the verdict)")
    texts = template("comparison.slack.j2", "slack").module
    blocks = _blocks(comparison, ctx, texts)
    ranked = sorted(blocks, key=IMPORTANCE.index)
    room_for_link = max_blocks >= MIN_BLOCKS_FOR_LINK
    linked = bool(ctx.report_url) and room_for_link
    kept, left_out = ranked[: max_blocks - linked], ranked[max_blocks - linked :]
    if left_out and room_for_link and not linked:  # the note that says so needs a block
        left_out.insert(0, kept.pop())
    if linked or (left_out and room_for_link):
        names = sorted(left_out, key=DISPLAY.index)
        blocks["link"] = _section(_cap(str(texts.link(ctx.report_url, names)).strip()))
        kept.append("link")
    message = [blocks[name] for name in sorted(kept, key=DISPLAY.index)]
    return {"text": _fallback(texts, comparison, ctx), "blocks": message}


def _fallback(texts: Any, comparison: Comparison, ctx: ReportContext) -> str:
    """The notification text: the verdict and as many reasons as fit one text."""
    reasons = list(comparison.reasons)
    while True:
        text = str(texts.fallback(comparison, ctx, reasons)).strip()
        if slack_length(text) <= SLACK_MAX_TEXT or not reasons:
            return _cap(text)
        reasons.pop()
