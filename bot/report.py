"""The renderers the doors call, in one place: `from bot.report import ReportContext, render_markdown`.

The implementation lives in `bot.render` (one module per format); this module keeps the import path the
pipeline, the CLI and the demo have always used.
"""

from bot.render.html import render_html
from bot.render.markdown import (
    GITHUB_CHECK_SUMMARY_LIMIT,
    GITHUB_COMMENT_LIMIT,
    GITHUB_LIMIT,
    render_markdown,
)
from bot.render.slack import SLACK_MAX_BLOCKS, SLACK_MAX_HEADER, SLACK_MAX_TEXT, render_slack
from bot.render.terminal import render_terminal
from bot.render.view import ReportContext

__all__ = [
    "GITHUB_CHECK_SUMMARY_LIMIT",
    "GITHUB_COMMENT_LIMIT",
    "GITHUB_LIMIT",
    "SLACK_MAX_BLOCKS",
    "SLACK_MAX_HEADER",
    "SLACK_MAX_TEXT",
    "ReportContext",
    "render_html",
    "render_markdown",
    "render_slack",
    "render_terminal",
]
