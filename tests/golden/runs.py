"""Runs in every state at a fixed time, and the comparison of a finished one, that the views' golden
files (tests/golden/github-*.md, slack-*) are rendered from."""

from datetime import UTC, datetime, timedelta

from bot.store import ComparisonRecord, Run, RunState

from .comparisons import representative_comparison

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
OLD_SHA = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"


def run(state: RunState, **fields) -> Run:
    defaults = dict(
        id=12,
        sha=SHA,
        experiment="iris",
        tier="gpu-small",
        state=state,
        phase=state.value,
        reason=None,
        log_tail=None,
        last_log_line=None,
        started_at=NOW - timedelta(seconds=95),
    )
    return Run(**(defaults | fields))


def done() -> ComparisonRecord:
    result = representative_comparison()
    return ComparisonRecord(id=5, state="done", verdict=result.verdict, result=result.model_dump(mode="json"))
