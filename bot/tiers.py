"""Hardware tiers: what operators offer (cpus, memory, runtime, backend) and who may use each one.

A tiers file (`TIERBOT_TIERS_FILE`) lists them; without one there is a single built-in `local` tier.
Everything here is pure: the rules take a requester and return an answer or a typed error. Whether a
tier's backend can run in this installation is not the tiers file's to say: the composition root asks
the backends and hands the answers in (`TierSet.with_availability`).
"""

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.errors import TierbotError, TierForbidden, TierUnavailable, TierUnknown
from bot.units import parse_size, positive_duration
from bot.yaml_errors import in_words
from bot.yamlmodel import load_model

Options = TypeVar("Options", bound=BaseModel)


class Requester(BaseModel):
    """Who asked, in each door's terms. Empty fields are unknown, not wildcards."""

    model_config = ConfigDict(frozen=True)

    name: str = "local"
    slack_user: str | None = None
    slack_groups: tuple[str, ...] = ()
    github_login: str | None = None
    github_teams: tuple[str, ...] = ()  # "org/slug", those the tiers name that this user is in
    github_role: str | None = None  # on the repository: read | triage | write | maintain | admin


# GitHub's repository roles, weakest first.
GITHUB_ROLES = ("read", "triage", "write", "maintain", "admin")
GitHubRole = Literal["read", "triage", "write", "maintain", "admin"]


def role_at_least(role: str | None, minimum: str) -> bool:
    return role in GITHUB_ROLES and GITHUB_ROLES.index(role) >= GITHUB_ROLES.index(minimum)


class Access(BaseModel):
    """Who may use a tier (or deploy to an environment: `TierSet.deploy_access`). All lists empty means
    everyone may."""

    model_config = ConfigDict(extra="forbid")

    slack_users: list[str] = Field(default_factory=list)
    slack_groups: list[str] = Field(default_factory=list)
    github_users: list[str] = Field(default_factory=list)
    github_teams: list[str] = Field(default_factory=list, description='"org/slug" of GitHub teams.')
    github_role: GitHubRole | None = Field(
        None, description="Collaborators with at least this role on the repository may use it."
    )

    @property
    def restricted(self) -> bool:
        return bool(
            self.slack_users
            or self.slack_groups
            or self.github_users
            or self.github_teams
            or self.github_role
        )

    def allows(self, who: Requester) -> bool:
        if not self.restricted:
            return True
        return bool(
            (who.slack_user and who.slack_user in self.slack_users)
            or set(who.slack_groups) & set(self.slack_groups)
            or (who.github_login and who.github_login in self.github_users)
            or set(who.github_teams) & set(self.github_teams)
            or (self.github_role and role_at_least(who.github_role, self.github_role))
        )

    def describe(self) -> str:
        parts = [f"@{u}" for u in self.slack_users + self.github_users]
        parts += [f"group {g}" for g in self.slack_groups] + [f"team {t}" for t in self.github_teams]
        if self.github_role:
            parts.append(f"collaborators with the {self.github_role} role or above")
        return ", ".join(parts) if parts else "everyone"


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str = ""
    cpus: float = Field(1, gt=0)
    memory: int | str | None = Field(None, description="Memory limit, e.g. 4GiB; unlimited when unset.")
    gpus: int = Field(0, ge=0)
    max_runtime: float | str = Field("1h", validate_default=True, description="Wall-clock limit, e.g. 30m.")
    cost_per_hour: float | dict[str, float] | None = Field(
        None,
        description="What an hour of a run costs, in the tiers file's currency, or a price per instance type "
        "(`{ml.g5.xlarge: 1.41}`) for a tier whose backend_options pick one (instance_type); unset: free.",
    )
    backend: Literal["local", "docker", "sagemaker", "batch"] = "local"
    backend_options: dict = Field(default_factory=dict, description="instance_type, spot, host, ...")
    concurrency: int = Field(1, ge=1, description="Runs at once on this tier.")
    access: Access = Field(default_factory=Access)
    default: bool = False
    # Private, so that a tiers file cannot claim it: set by `TierSet.with_availability`.
    _unavailable: str | None = PrivateAttr(None)

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int | str | None) -> int | None:
        return None if value is None else parse_size(value)

    @field_validator("cost_per_hour")
    @classmethod
    def _price(cls, value: float | dict[str, float] | None) -> float | dict[str, float] | None:
        prices = value if isinstance(value, dict) else {"": value} if value is not None else {}
        for kind, price in prices.items():
            if price <= 0:
                which = f" for {kind}" if kind else ""
                raise ValueError(f"must be more than 0{which}, not {price:g} (leave it out on a free tier)")
        return value

    @model_validator(mode="after")
    def _priced_instance_type(self) -> "Tier":
        """A price per instance type needs the tier's instance type among them: said when the file loads."""
        if isinstance(self.cost_per_hour, dict):
            kind = self.backend_options.get("instance_type")
            priced = ", ".join(sorted(self.cost_per_hour)) or "none"
            if kind is None:
                raise ValueError(
                    f"tier {self.name!r}: cost_per_hour gives prices per instance type ({priced}), but "
                    "backend_options names no instance_type: give one price (cost_per_hour: 1.2)"
                )
            if kind not in self.cost_per_hour:
                raise ValueError(
                    f"tier {self.name!r}: cost_per_hour has no price for its instance type {kind} "
                    f"(backend_options.instance_type); priced: {priced}"
                )
        return self

    @property
    def hourly_cost(self) -> float | None:
        """What an hour on this tier costs: its price, or its instance type's; None on a free tier."""
        if isinstance(self.cost_per_hour, dict):
            return self.cost_per_hour[self.backend_options["instance_type"]]
        return self.cost_per_hour

    @field_validator("max_runtime")
    @classmethod
    def _runtime(cls, value: float | str) -> float:
        return positive_duration(value, "max_runtime")

    def options_as(self, model: type[Options], invalid: type[TierbotError]) -> Options:
        """`backend_options` read by the tier's backend (`model`); `invalid` names each bad option, in
        the operator's words."""
        try:
            return model.model_validate(self.backend_options)
        except ValidationError as exc:
            problems = "; ".join(in_words(model, self.backend_options, exc))
            raise invalid(f"tier {self.name!r} has invalid backend_options: {problems}") from None

    @property
    def memory_bytes(self) -> int | None:
        return self.memory  # normalized to bytes by the validator

    @property
    def runtime_seconds(self) -> float:
        return float(self.max_runtime)

    @property
    def unavailable(self) -> str | None:
        """Why this installation cannot run the tier (its backend is missing), or None when it can."""
        return self._unavailable

    def fingerprint(self) -> str:
        """What makes results comparable: the hardware and backend, not who may use it or its price."""
        shape = self.model_dump(include={"name", "cpus", "memory", "gpus", "backend", "backend_options"})
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


# What a budget may name, and how people call it.
BUDGET_KINDS = {"repository": "repository", "github_team": "team", "slack_group": "group"}


class Budget(BaseModel):
    """What the runs of one repository, GitHub team or Slack user group may cost in a calendar month
    (UTC), in the tiers file's currency; `bot.costs` adds up the spend and refuses what would exceed it."""

    model_config = ConfigDict(extra="forbid")

    repository: str | None = Field(None, min_length=1, description="owner/name (or a local path).")
    github_team: str | None = Field(None, description='"org/slug" of a GitHub team.')
    slack_group: str | None = Field(None, min_length=1, description="A Slack user group's id, e.g. S0ML.")
    monthly: float = Field(gt=0, description="The most the month's runs may cost.")
    contact: str | None = Field(None, description="Who to ask for more, e.g. @alice or #ml-platform.")

    @field_validator("github_team")
    @classmethod
    def _team(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[^/\s]+/[^/\s]+", value):
            raise ValueError(f"name the team as org/slug, e.g. acme/ml-platform, not {value!r}")
        return value

    @model_validator(mode="after")
    def _one_scope(self) -> "Budget":
        named = [kind for kind in BUDGET_KINDS if getattr(self, kind) is not None]
        if len(named) != 1:
            raise ValueError(
                "a budget names exactly one of repository, github_team or slack_group "
                f"({'found ' + ' and '.join(named) if named else 'found none'})"
            )
        return self

    @property
    def kind(self) -> str:
        """repository, github_team or slack_group: which one the budget names."""
        return next(kind for kind in BUDGET_KINDS if getattr(self, kind) is not None)

    @property
    def name(self) -> str:
        return getattr(self, self.kind)

    @property
    def scope(self) -> str:
        """What the budget is for, in people's words and as its key: `repository acme/models`."""
        return f"{BUDGET_KINDS[self.kind]} {self.name}"

    def applies(self, repository: str, who: Requester) -> bool:
        """Whether a run of `repository` that `who` asked for counts toward this budget."""
        if self.repository is not None:
            return repository.casefold() == self.repository.casefold()  # GitHub ignores the case
        if self.github_team is not None:
            return self.github_team.casefold() in {team.casefold() for team in who.github_teams}
        return self.slack_group in who.slack_groups


class TierSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tiers: list[Tier] = Field(min_length=1)
    currency: str = Field("USD", description="The ISO 4217 code of every price and budget here.")
    budgets: list[Budget] = Field(default_factory=list)
    deploy_access: dict[str, Access] = Field(
        default_factory=dict,
        description="Who may deploy to and roll back each environment (`deploy.environment`, e.g. "
        "production), from Slack: those it names, who must also have write access to the repository. An "
        "environment not listed here: anyone with write access to the repository (who may run its "
        "experiments) may.",
    )
    deploy_targets: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict,
        description="Where each environment's deployments run, by target: `production: {sagemaker: "
        "{region, role_arn, image, instance_type, ...}}` (bot.deploy.sagemaker_options; checked when a "
        "deployment needs them). Deploy roles stay here, never in a repository or a run.",
    )

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", value):
            raise ValueError(f"write a currency as its three capital letters, e.g. USD or EUR, not {value!r}")
        return value

    @field_validator("budgets")
    @classmethod
    def _distinct_budgets(cls, budgets: list[Budget]) -> list[Budget]:
        scopes = [b.scope.casefold() for b in budgets]
        repeated = sorted({b.scope for b in budgets if scopes.count(b.scope.casefold()) > 1})
        if repeated:
            raise ValueError(f"one budget per repository, team or group; repeated: {', '.join(repeated)}")
        return budgets

    @model_validator(mode="after")
    def _one_default(self) -> "TierSet":
        names = [t.name for t in self.tiers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"tier names must be unique; repeated: {', '.join(duplicates)}")
        defaults = [t.name for t in self.tiers if t.default]
        if len(self.tiers) == 1 and not defaults:
            self.tiers[0].default = True
        elif len(defaults) != 1:
            raise ValueError(f"exactly one tier must have `default: true` (found {len(defaults)})")
        return self

    @property
    def default(self) -> Tier:
        return next(t for t in self.tiers if t.default)

    def names(self) -> list[str]:
        return [t.name for t in self.tiers]

    def github_teams(self) -> set[str]:
        """Every team a tier, budget or `deploy_access` names: whose membership a GitHub requester is
        checked for."""
        budgets = {b.github_team for b in self.budgets if b.github_team is not None}
        deployers = {team for access in self.deploy_access.values() for team in access.github_teams}
        return {team for tier in self.tiers for team in tier.access.github_teams} | budgets | deployers

    def slack_groups(self) -> set[str]:
        """Every Slack user group a tier, budget or `deploy_access` names: whose membership a Slack
        requester is checked for."""
        budgets = {b.slack_group for b in self.budgets if b.slack_group is not None}
        deployers = {group for access in self.deploy_access.values() for group in access.slack_groups}
        return {group for tier in self.tiers for group in tier.access.slack_groups} | budgets | deployers

    def deployers(self, environment: str) -> Access:
        """Who may deploy to the environment, beside write access to the repository (everyone with it,
        when `deploy_access` does not name the environment)."""
        return self.deploy_access.get(environment, Access())

    def with_availability(self, reasons: Mapping[str, str | None]) -> "TierSet":
        """A copy whose tiers carry why they cannot run here: reasons by tier name, None or absent when
        they can. A copy, because the built-in tier set is shared."""
        marked = self.model_copy(deep=True)
        for tier in marked.tiers:
            tier._unavailable = reasons.get(tier.name)
        return marked

    def usable_by(self, who: Requester) -> list[Tier]:
        """The tiers this requester may use, available here or not (views mark the unavailable ones)."""
        return [t for t in self.tiers if t.access.allows(who)]

    def get(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise TierUnknown(
            f"There is no tier {name!r}.{self.did_you_mean(name)} Tiers: {', '.join(self.names())}."
        )

    def did_you_mean(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
        return f" Did you mean {' or '.join(close)}?" if close else ""

    def choose(self, name: str | None, who: Requester, allowed: list[str] | None = None) -> Tier:
        """The tier to run on: the one asked for (or the default), checked against access, the spec and
        this installation's backends, so that nothing is queued that could never run."""
        usable = ", ".join(t.name for t in self.usable_by(who) if not t.unavailable) or "none"
        if name and name not in self.names():
            raise TierUnknown(
                f"There is no tier {name!r}.{self.did_you_mean(name)} Tiers you may use: {usable}."
            )
        tier = self.get(name) if name else self.default
        if not tier.access.allows(who):
            raise TierForbidden(
                f"Tier {tier.name!r} is restricted to {tier.access.describe()}. Tiers you may use: {usable}."
            )
        if allowed is not None and tier.name not in allowed:
            raise TierForbidden(
                f"This experiment's tierbot.yaml allows only the tiers {', '.join(allowed)}; "
                f"not {tier.name!r}."
            )
        if tier.unavailable:
            which = f"Tier {tier.name!r}" if name else f"The default tier {tier.name!r}"
            raise TierUnavailable(f"{which} is unavailable: {tier.unavailable}. Tiers you may use: {usable}.")
        return tier


BUILTIN = TierSet(
    tiers=[
        Tier(
            name="local",
            description="This machine, no container (the built-in default).",
            cpus=1,
            max_runtime="1h",
            concurrency=1,
            default=True,
        )
    ]
)


def load_tiers(path: Path | None) -> TierSet:
    if path is None:
        return BUILTIN
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or exc
        raise TierbotError(f"Cannot read the tiers file {path} (TIERBOT_TIERS_FILE): {reason}.") from None
    return load_model(TierSet, text, str(path))
