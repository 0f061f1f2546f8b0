"""In the Slack door's tests, `bot` is the Slack door's bot (`slack_bot`, tests/fakes/slack_bot.py),
unless a module makes its own."""

import pytest


@pytest.fixture
def bot(slack_bot):
    """The Slack door's bot (`slack_bot`)."""
    return slack_bot
