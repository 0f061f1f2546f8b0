"""In the GitHub door's tests, `bot` is the GitHub door's bot (`github_bot`, tests/fakes/github_bot.py),
unless a module makes its own."""

import pytest

from ..fakes.github_bot import make_bot


@pytest.fixture
def bot(github_bot):
    """The GitHub door's bot (`github_bot`)."""
    return github_bot


@pytest.fixture
def forks_bot(settings, hosted, tmp_path, fake):
    """The GitHub door's bot where the operator lets forks run on local tiers, as the sandbox user
    (TIERBOT_LOCAL_FORKS): the approval flow without a Docker Engine. Without it, and without a sandbox
    tier, a fork is refused (tests/hardening/test_isolation.py)."""
    running = make_bot(settings.model_copy(update={"local_forks": True}), tmp_path, fake)
    yield running
    running.stop()
