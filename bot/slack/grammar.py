"""The `/run` grammar, pure: text in, a command (or a helpful error) out.

experiment [BRANCH] [on TIER] [vs REF] [in OWNER/REPO]
deployments [ENV] [in OWNER/REPO] · rollback [ENV] [to COMMIT] [in OWNER/REPO]
status [RUN] · cancel RUN · tiers · costs [YYYY-MM] · use OWNER/REPO · link · help
"""

import difflib
import re
from dataclasses import dataclass

from bot.errors import TierbotError
from bot.request import is_owner_name

EXPERIMENT = "/run experiment [BRANCH] [on TIER] [vs REF] [in OWNER/REPO]"
DEPLOYMENTS = "/run deployments [ENV] [in OWNER/REPO]"
ROLLBACK = "/run rollback [ENV] [to COMMIT] [in OWNER/REPO]"
USAGE = (
    f"`{EXPERIMENT}` · `/run status [RUN]` · `/run cancel RUN` · `/run tiers` · `/run costs [YYYY-MM]` · "
    f"`{DEPLOYMENTS}` · `{ROLLBACK}` · `/run use OWNER/REPO` · `/run link` · `/run help`"
)
VERBS = ("experiment", "status", "cancel", "tiers", "costs", "deployments", "rollback", "use", "link", "help")
_KEYWORDS = {
    "experiment": {"on": "tier", "vs": "base", "in": "repository"},
    "deployments": {"in": "repository"},
    "rollback": {"to": "to", "in": "repository"},
}
_FORMS = {"experiment": EXPERIMENT, "deployments": DEPLOYMENTS, "rollback": ROLLBACK}
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # as tierbot.yaml's deploy.environment
_COMMIT = re.compile(r"^[0-9a-fA-F]{4,40}$")


class GrammarError(TierbotError):
    """The text is not a command; the message says what would be."""


@dataclass(frozen=True)
class SlackCommand:
    verb: str
    branch: str | None = None
    tier: str | None = None
    base: str | None = None
    repository: str | None = None
    run_id: int | None = None
    month: str | None = None  # `costs`: YYYY-MM; None for this month
    environment: str | None = None  # `deployments`, `rollback`: None for every one, or the only one
    to: str | None = None  # `rollback`: a commit (a prefix of 4 or more hex digits); None for the last


def parse(text: str) -> SlackCommand:
    words = text.split()
    if not words:
        return SlackCommand("help")
    verb, rest = words[0].lower(), words[1:]
    if verb not in VERBS:
        close = difflib.get_close_matches(verb, VERBS, n=1, cutoff=0.6)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise GrammarError(f"`{words[0]}` is not a command.{hint} Usage: {USAGE}")
    if verb in _FORMS:
        return _with_keywords(verb, rest)
    if verb in ("tiers", "link", "help"):
        _nothing_after(verb, rest)
        return SlackCommand(verb)
    if verb == "use":
        if len(rest) != 1 or not is_owner_name(rest[0]):
            raise GrammarError("Write `/run use OWNER/REPO`, e.g. `/run use acme/models`.")
        return SlackCommand("use", repository=rest[0])
    if verb == "costs":
        if len(rest) > 1 or (rest and not re.fullmatch(r"\d{4}-\d{2}", rest[0])):
            raise GrammarError(
                "Write `/run costs` for this month, or `/run costs YYYY-MM`, e.g. `/run costs 2026-05`."
            )
        return SlackCommand("costs", month=rest[0] if rest else None)
    if verb == "status" and not rest:
        return SlackCommand("status")
    if len(rest) != 1 or not rest[0].lstrip("#").isdigit():
        raise GrammarError(f"Write `/run {verb} RUN` with the run's number, e.g. `/run {verb} 42`.")
    return SlackCommand(verb, run_id=int(rest[0].lstrip("#")))


def _nothing_after(verb: str, rest: list[str]) -> None:
    if rest:
        raise GrammarError(f"`/run {verb}` takes nothing after it. Usage: {USAGE}")


def _with_keywords(verb: str, words: list[str]) -> SlackCommand:
    """`experiment`, `deployments` and `rollback`: a leading word (a branch, an environment), then
    `KEYWORD VALUE` pairs in any order."""
    keywords, form = _KEYWORDS[verb], _FORMS[verb]
    leading = "branch" if verb == "experiment" else "environment"
    fields: dict[str, str] = {}
    if words and words[0].lower() not in keywords:
        fields[leading], words = words[0], words[1:]
    while words:
        keyword = words[0].lower()
        if keyword not in keywords or len(words) < 2:
            raise GrammarError(f"I did not understand `{' '.join(words)}`. Write `{form}`.")
        field = keywords[keyword]
        if field in fields:
            raise GrammarError(f"`{keyword}` is given twice.")
        fields[field], words = words[1], words[2:]
    if "repository" in fields and not is_owner_name(fields["repository"]):
        raise GrammarError(f"`in {fields['repository']}`: name the repository as OWNER/REPO.")
    if "environment" in fields and not _ENVIRONMENT.match(fields["environment"]):
        raise GrammarError(f"`{fields['environment']}` is not an environment's name. Write `{form}`.")
    if "to" in fields and not _COMMIT.match(fields["to"]):
        raise GrammarError(
            f"`to {fields['to']}`: name the commit by its SHA (4 to 40 hex digits), e.g. `to 1a2b3c4`."
        )
    return SlackCommand(verb, **fields)
