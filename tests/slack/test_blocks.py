"""The comparison as a Slack message: Block Kit within Slack's limits, mrkdwn escaped, what matters first.

The golden file tests/golden/comparison.slack.json pins what people read; regenerate it with
`UPDATE_GOLDEN=1 python -m pytest tests/slack/test_blocks.py` and review the diff.
"""

import json
import re

import pytest

from bot.compare import Comparison
from bot.compare.model import FileProblem
from bot.render.slack import SLACK_MAX_BLOCKS, SLACK_MAX_HEADER, SLACK_MAX_TEXT, render_slack

from ..golden import check_golden
from ..golden.comparisons import (
    CONTEXT,
    NASTY,
    enormous_comparison,
    nasty_comparison,
    representative_comparison,
)

NO_URL = CONTEXT.model_copy(update={"report_url": None})


def units(text: str) -> int:
    """Characters as Slack may count them: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def texts(message: dict) -> list[str]:
    """Every mrkdwn text of the message: sections and context elements."""
    found = []
    for block in message["blocks"]:
        if block["type"] == "section":
            found.append(block["text"]["text"])
        elif block["type"] == "context":
            found += [element["text"] for element in block["elements"]]
    return found


def assert_within_slack_limits(message: dict, max_blocks: int = SLACK_MAX_BLOCKS) -> None:
    assert message["blocks"], "a message needs at least one block"
    assert len(message["blocks"]) <= max_blocks
    header = message["blocks"][0]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    for text in [header["text"]["text"], message["text"], *texts(message)]:
        assert text, "Slack refuses empty texts"
    assert units(header["text"]["text"]) <= SLACK_MAX_HEADER
    assert all(units(text) <= SLACK_MAX_TEXT for text in texts(message))
    assert units(message["text"]) <= SLACK_MAX_TEXT
    for block in message["blocks"]:
        if block["type"] == "section":
            assert block["text"]["type"] == "mrkdwn"
    json.dumps(message)  # plain data, ready for chat.postMessage


def section(message: dict, heading: str) -> str:
    return next(t for t in texts(message) if t.startswith(heading))


def test_slack_golden():
    message = render_slack(representative_comparison(), CONTEXT)
    check_golden("comparison.slack.json", json.dumps(message, indent=2, ensure_ascii=False) + "\n")


def test_the_message_reads_verdict_first():
    message = render_slack(representative_comparison(), CONTEXT)
    assert_within_slack_limits(message)
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds[:3] == ["header", "section", "context"]
    assert message["blocks"][0]["text"]["text"] == "❌ FAIL · iris"
    assert message["blocks"][1]["text"]["text"].startswith("• metric test.accuracy in metrics.json got worse")
    assert message["text"].startswith(
        "❌ FAIL · iris · feature-x @ 1a2b3c4 vs main @ 9f8e7d6 (merge base): metric"
    )
    metrics = section(message, "*Metrics*")
    assert metrics.splitlines()[1] == (
        "▼ `test.accuracy` 0.912 → 0.894 (-0.018, -1.97%) worse ❌ beyond 0.01"
        " · main's last 4 runs: 0.905–0.915 (⚠️ outside)"
    )
    assert "*Metrics* · 1 unchanged" in metrics and "test.a|b" not in metrics
    files = section(message, "*Files*")
    assert files.splitlines()[1] == "❌ `metrics.json` 6 metrics changed, 1 beyond threshold"  # failing first
    assert files.splitlines()[-1] == "≈ `scores.csv` 3 cells changed, all within tolerance"  # within last
    tables = section(message, "*Tables*")
    assert "`predictions.parquet` 1,000 → 1,002 rows (+3 −1) · 12 changed, 4 beyond tolerance" in tables
    assert "schema: 1 added, 1 removed, 1 retyped · ⚠️ duplicate keys: 2 on main, 2 on the branch" in tables
    assert (
        message["blocks"][-1]["text"]["text"]
        == "📄 <https://tierbot.example/comparisons/5|Open the full report>"
    )


def test_enormous_comparison_stays_within_slack_limits():
    comparison = enormous_comparison(3000, tables=400)
    message = render_slack(comparison, CONTEXT)
    assert_within_slack_limits(message)
    files, tables = section(message, "*Files*"), section(message, "*Tables*")
    shown = len(files.splitlines()) - 2
    assert files.endswith(f"_… {3401 - shown:,} more in the full report_")
    assert re.search(r"_… \d+ more in the full report_$", tables)
    assert section(message, "*Metrics*").count("\n") == 30  # all 30 metrics fit, nothing to say more
    assert "Open the full report" in message["blocks"][-1]["text"]["text"]


def test_many_reasons_problems_and_metrics_are_counted_not_cut():
    comparison = enormous_comparison(10, tables=2)
    comparison.reasons = [f"reason {i} " + "x" * 200 for i in range(60)]
    comparison.problems = [FileProblem(path=f"p{i}.txt", message="m" * 500) for i in range(40)]
    message = render_slack(comparison, CONTEXT)
    assert_within_slack_limits(message)
    reasons = message["blocks"][1]["text"]["text"]
    assert reasons.startswith("• reason 0 ") and re.search(r"_… \d+ more in the full report_$", reasons)
    assert re.search(r"_… \d+ more in the full report_$", section(message, "*Problems*"))


@pytest.mark.parametrize("max_blocks", range(1, 10))
def test_max_blocks_leaves_room_for_buttons(max_blocks):
    message = render_slack(representative_comparison(), CONTEXT, max_blocks=max_blocks)
    assert_within_slack_limits(message, max_blocks)
    if max_blocks >= 3:
        link = message["blocks"][-1]["text"]["text"]
        assert link.startswith("📄 <https://tierbot.example/comparisons/5|Open the full report>")
        left_out = 10 - len(message["blocks"])
        if left_out:
            assert f"_… {left_out} more section{'s' if left_out > 1 else ''} there: " in link


def test_least_important_sections_are_dropped_first():
    message = render_slack(representative_comparison(), CONTEXT, max_blocks=6)
    assert [b["type"] for b in message["blocks"]] == [
        "header",
        "section",
        "context",
        "section",
        "section",
        "section",
    ]
    assert texts(message)[2].startswith("*Params*") and texts(message)[3].startswith("*Metrics*")
    assert texts(message)[-1].endswith("_… 4 more sections there: plots, files, tables, problems_")
    without_url = render_slack(representative_comparison(), NO_URL, max_blocks=6)
    assert texts(without_url)[-1] == "_… 4 more sections not shown here: plots, files, tables, problems_"
    assert len(without_url["blocks"]) == 6


def test_without_a_report_url_nothing_links_nowhere():
    message = render_slack(enormous_comparison(3000, tables=5), NO_URL)
    assert_within_slack_limits(message)
    assert "<http" not in json.dumps(message)
    assert section(message, "*Files*").endswith("more not shown here_")


def test_a_long_experiment_name_is_clipped_in_the_header():
    ctx = CONTEXT.model_copy(update={"experiment": "e" * 400, "head_label": "h" * 5000})
    message = render_slack(representative_comparison(), ctx)
    assert_within_slack_limits(message)
    assert message["blocks"][0]["text"]["text"].endswith("e…")


def test_an_empty_comparison_has_no_empty_text():
    message = render_slack(Comparison(verdict="pass", reasons=[]), NO_URL)
    assert_within_slack_limits(message)
    assert [b["type"] for b in message["blocks"]] == ["header", "context"]


def test_max_blocks_must_leave_room_for_the_verdict():
    with pytest.raises(ValueError):
        render_slack(representative_comparison(), CONTEXT, max_blocks=0)


# -- escaping -------------------------------------------------------------------------------------------


def outside_code(text: str) -> str:
    return re.sub(r"`[^`\n]*`", "", text)


def test_user_data_is_escaped_in_mrkdwn():
    ctx = CONTEXT.model_copy(update={"experiment": NASTY, "head_label": NASTY})
    message = render_slack(nasty_comparison(), ctx)
    assert_within_slack_limits(message)
    assert message["blocks"][0]["text"]["text"] == "🟡 CHANGED · a<b>&c|d`e*f↵g"  # plain_text: shown as is
    for text in texts(message) + [message["text"]]:
        bare = text.replace("<https://tierbot.example/comparisons/5|Open the full report>", "")
        assert "<" not in bare and ">" not in bare  # only entities: no link, mention or command from data
        assert not re.search(r"&(?!amp;|lt;|gt;)", bare)
        for line in text.splitlines():
            assert line.count("`") % 2 == 0  # code spans open and close on their line
            headings = ("*Params*", "*Metrics*", "*Files*", "*Tables*", "*Problems*")
            assert "*" not in re.sub("|".join(map(re.escape, headings)), "", outside_code(line))  # no bold
    files = section(message, "*Files*")
    assert "✏️ `out/a&lt;b&gt;&amp;c|dˋe*f↵g.csv`" in files  # data in a code span, one line
    assert "summary a&lt;b&gt;&amp;c|dˋe∗f g" in files  # free text: look-alikes for ` and *
    assert (
        message["blocks"][1]["text"]["text"]
        == "• table out/a&lt;b&gt;&amp;c|dˋe∗f g.csv: 1 row beyond tolerance"
    )
    context = texts(message)[1]
    assert context.startswith("`a&lt;b&gt;&amp;c|dˋe*f↵g` vs ")


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("_init_", "ˍinitˍ"),  # underscores that could open or close italics
        ("snake_case_name", "snake_case_name"),  # inside a word they cannot
        ("~gone~", "∼gone∼"),
        ("<!channel> & <@U123>", "&lt;!channel&gt; &amp; &lt;@U123&gt;"),
    ],
)
def test_free_text_cannot_format_or_mention(text, escaped):
    comparison = Comparison(verdict="pass", reasons=[text])
    message = render_slack(comparison, NO_URL)
    assert message["blocks"][1]["text"]["text"] == f"• {escaped}"
