"""Where a fork's code may run (`bot.forks`): never on a local tier unless the operator opts in, else in
the sandbox tier, whatever tier was asked; and `tierbot serve` says which at start."""

import pytest

from bot.errors import TierUnavailable
from bot.forks import fork_tier, forks_summary
from bot.tiers import Tier, TierSet

TIERS = TierSet(
    tiers=[
        Tier(name="cpu", default=True),
        Tier(name="gpu", backend="docker", gpus=1),
        Tier(name="sandbox", backend="docker"),
    ]
)
LABEL = "fork-branch @ abc1234"


def test_a_fork_asking_for_a_local_tier_runs_in_the_sandbox_tier(settings):
    settings = settings.model_copy(update={"sandbox_tier": "sandbox"})
    assert fork_tier(TIERS.get("cpu"), TIERS, settings, LABEL).name == "sandbox"
    assert forks_summary(TIERS, settings) == "run in the sandbox tier `sandbox` (backend docker)"


def test_a_container_tier_asked_for_is_kept(settings):
    assert fork_tier(TIERS.get("gpu"), TIERS, settings, LABEL).name == "gpu"


def test_without_a_sandbox_tier_a_fork_is_refused_a_local_tier_and_told_why(settings):
    with pytest.raises(TierUnavailable) as refused:
        fork_tier(TIERS.get("cpu"), TIERS, settings, LABEL)
    assert str(refused.value) == (
        "fork-branch @ abc1234 is a fork's code, and a fork's code runs only in the sandbox: this "
        "installation has no sandbox tier. An operator can name one (TIERBOT_SANDBOX_TIER, a docker "
        "tier without network)."
    )
    assert forks_summary(TIERS, settings).startswith("refused on local tiers: no sandbox tier is set")


@pytest.mark.parametrize(
    ("name", "problem"),
    [("nowhere", "is not in the tiers file"), ("cpu", "is a local tier, not a container")],
)
def test_a_sandbox_tier_that_is_no_sandbox_is_refused_with_the_operators_fix(settings, name, problem):
    settings = settings.model_copy(update={"sandbox_tier": name})
    with pytest.raises(TierUnavailable, match=f"sandbox tier '{name}' \\(TIERBOT_SANDBOX_TIER\\) {problem}"):
        fork_tier(TIERS.get("cpu"), TIERS, settings, LABEL)
    assert forks_summary(TIERS, settings).startswith("refused on local tiers: the sandbox tier")


def test_an_operator_may_opt_in_to_local_fork_runs_and_is_told_it_is_unsafe(settings):
    settings = settings.model_copy(update={"local_forks": True, "sandbox_tier": "sandbox"})
    assert fork_tier(TIERS.get("cpu"), TIERS, settings, LABEL).name == "cpu"
    assert forks_summary(TIERS, settings).startswith("UNSAFE: a fork's approved commit may run on local")
