"""The operator's options of a deploy target, from the tiers file: `deploy_targets.<environment>.<target>`.

Every target reads its options the same way: the environment's entry for that target, checked with the
target's pydantic model when a deployment needs it (as a tier's backend_options are), a mistake failing
that deployment with each bad option named in the operator's words, the old version serving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from bot.deploy import DeployFailed
from bot.yaml_errors import in_words

if TYPE_CHECKING:
    from bot.tiers import TierSet

Options = TypeVar("Options", bound=BaseModel)


def target_options(
    tiers: TierSet, environment: str, target: str, model: type[Options], missing: str | None = None
) -> Options:
    """`deploy_targets.<environment>.<target>` checked with `model`. When the tiers file does not name it:
    the model's defaults, or, when the target cannot do without it, DeployFailed with `missing` (what to
    write there)."""
    raw: Any = tiers.deploy_targets.get(environment, {}).get(target)
    where = f"deploy_targets.{environment}.{target}"
    if raw is None:
        if missing is not None:
            raise DeployFailed(
                f"deploy.target: {target} needs {where} in the tiers file (TIERBOT_TIERS_FILE): {missing}"
            )
        raw = {}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(in_words(model, raw, exc))
        raise DeployFailed(f"{where} in the tiers file is invalid: {problems}") from None
