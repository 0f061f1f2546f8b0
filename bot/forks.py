"""Where a fork's code may run. Pure: the tiers and the settings in, a tier or a refusal out.

A fork's approved commit never runs on a `local` tier: there it would share the bot's machine with only
a user switch between them. It runs on the operators' sandbox tier (TIERBOT_SANDBOX_TIER: a container
tier without network), whatever tier was asked for, and so does its baseline, so that both sides of the
comparison ran alike. Operators who accept the risk opt in with TIERBOT_LOCAL_FORKS, which `tierbot
serve` says at start is unsafe.
"""

from bot.errors import TierbotError, TierUnavailable
from bot.settings import Settings
from bot.tiers import Tier, TierSet


def fork_tier(asked: Tier, tiers: TierSet, settings: Settings, label: str) -> Tier:
    """The tier a fork's commit (`label`) runs on instead of `asked`; raises when there is none."""
    if asked.backend != "local":
        return asked
    if settings.local_forks:
        return asked
    if settings.sandbox_tier is None:
        raise TierUnavailable(
            f"{label} is a fork's code, and a fork's code runs only in the sandbox: this installation has "
            "no sandbox tier. An operator can name one (TIERBOT_SANDBOX_TIER, a docker tier without "
            "network)."
        )
    try:
        sandbox = tiers.get(settings.sandbox_tier)
    except TierbotError:
        sandbox = None
    if sandbox is None or sandbox.backend == "local":
        problem = "is not in the tiers file" if sandbox is None else "is a local tier, not a container"
        raise TierUnavailable(
            f"{label} is a fork's code, which runs only in the sandbox tier, and the sandbox tier "
            f"{settings.sandbox_tier!r} (TIERBOT_SANDBOX_TIER) {problem}. An operator can fix it."
        )
    return sandbox


def forks_summary(tiers: TierSet, settings: Settings) -> str:
    """What `tierbot serve` says at start about forks' code."""
    if settings.local_forks:
        return (
            "UNSAFE: a fork's approved commit may run on local tiers, on this machine, as "
            f"{settings.sandbox_user} (TIERBOT_LOCAL_FORKS)"
        )
    name = settings.sandbox_tier
    if name is None:
        return "refused on local tiers: no sandbox tier is set (TIERBOT_SANDBOX_TIER, a docker tier)"
    if name not in tiers.names():
        return f"refused on local tiers: the sandbox tier {name!r} (TIERBOT_SANDBOX_TIER) is not a tier"
    tier = tiers.get(name)
    if tier.backend == "local":
        return f"refused on local tiers: the sandbox tier {name!r} (TIERBOT_SANDBOX_TIER) is a local tier"
    where = f"unavailable here: {tier.unavailable}" if tier.unavailable else f"backend {tier.backend}"
    return f"run in the sandbox tier `{name}` ({where})"
