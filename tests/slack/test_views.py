"""What Slack shows of a run, pinned by golden files (tests/golden/slack-*.json); pure views."""

import json

from bot.render.slack import SLACK_MAX_BLOCKS
from bot.slack.views import help_text, log_text, run_message, tiers_text
from bot.store import RunState
from bot.tiers import TierSet

from ..golden import check_golden
from ..golden.comparisons import CONTEXT
from ..golden.runs import NOW, done, run

TIERS = TierSet.model_validate(
    {
        "tiers": [
            {"name": "local", "default": True, "description": "this machine"},
            {"name": "gpu-small", "description": "one T4", "access": {"slack_groups": ["S0ML"]}},
        ]
    }
)


def pinned(name: str, message: dict) -> None:
    check_golden(name, json.dumps(message, indent=2, ensure_ascii=False) + "\n")


def test_running_message_has_progress_and_cancel():
    running = run(RunState.running, phase="running", last_log_line="epoch 3/10 loss=0.41", ref="feature-x")
    message = run_message(running, None, None, NOW, 0, TIERS)
    pinned("slack-running.json", message)
    assert [e["action_id"] for e in message["blocks"][-1]["elements"]] == ["tierbot_cancel", "tierbot_logs"]


def test_final_message_is_the_comparison_with_buttons_within_slacks_limits():
    message = run_message(run(RunState.succeeded, ref="feature-x"), done(), CONTEXT, NOW, 0, TIERS)
    pinned("slack-final.json", message)
    assert len(message["blocks"]) <= SLACK_MAX_BLOCKS
    assert message["blocks"][-1]["elements"][0]["action_id"] == "tierbot_rerun"


def test_rerun_offers_only_the_tiers_that_can_run_here():
    ended = run(RunState.succeeded, ref="feature-x")
    marked = TIERS.with_availability({"local": None, "gpu-small": "no NVIDIA runtime on the engine"})
    select, logs = run_message(ended, None, None, NOW, 0, marked)["blocks"][-1]["elements"]
    assert [o["value"] for o in select["options"]] == [f"{ended.id}:local"] and logs["text"]["text"] == "Logs"
    none_here = TIERS.with_availability({"local": "gone", "gpu-small": "gone"})
    queued = run(RunState.cancelled, ref="feature-x", started_at=None)  # ended before it started: no Logs
    assert all(b["type"] != "actions" for b in run_message(queued, None, None, NOW, 0, none_here)["blocks"])


def test_crashed_message_and_texts():
    crashed = run(
        RunState.failed, ref="feature-x", reason="exit code 3", log_tail="Traceback…\nValueError: boom"
    )
    pinned("slack-failed.json", run_message(crashed, None, None, NOW, 0, TIERS))
    log = log_text(crashed, crashed.log_tail + "\n```")
    texts = "\n---\n".join([help_text(TIERS), tiers_text(TIERS), log])
    check_golden("slack-texts.md", texts + "\n")
