"""The `/run` grammar, pure: text in, a command (or a helpful error) out.

experiment [BRANCH] [on TIER] [vs REF] [in OWNER/REPO]
status [RUN] · cancel RUN · tiers · costs [YYYY-MM] · use OWNER/REPO · link · help
"""

import difflib
import re
from dataclasses import dataclass

from bot.errors import TierbotError
from bot.request import is_owner_name

USAGE = (
    "`/run experiment [BRANCH] [on TIER] [vs REF] [in OWNER/REPO]` · `/run status [RUN]` · "
    "`/run cancel RUN` · `/run tiers` · `/run costs [YYYY-MM]` · `/run use OWNER/REPO` · `/run link` · "
    "`/run help`"
)
VERBS = ("experiment", "status", "cancel", "tiers", "costs", "use", "link", "help")
_KEYWORDS = {"on": "tier", "vs": "base", "in": "repository"}


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


def parse(text: str) -> SlackCommand:
    words = text.split()
    if not words:
        return SlackCommand("help")
    verb, rest = words[0].lower(), words[1:]
    if verb not in VERBS:
        close = difflib.get_close_matches(verb, VERBS, n=1, cutoff=0.6)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise GrammarError(f"`{words[0]}` is not a command.{hint} Usage: {USAGE}")
    if verb == "experiment":
        return _experiment(rest)
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


def _experiment(words: list[str]) -> SlackCommand:
    fields: dict[str, str] = {}
    if words and words[0].lower() not in _KEYWORDS:
        fields["branch"], words = words[0], words[1:]
    while words:
        keyword = words[0].lower()
        if keyword not in _KEYWORDS or len(words) < 2:
            raise GrammarError(
                f"I did not understand `{' '.join(words)}`. Write "
                f"`/run experiment [BRANCH] [on TIER] [vs REF] [in OWNER/REPO]`."
            )
        field = _KEYWORDS[keyword]
        if field in fields:
            raise GrammarError(f"`{keyword}` is given twice.")
        fields[field], words = words[1], words[2:]
    if "repository" in fields and not is_owner_name(fields["repository"]):
        raise GrammarError(f"`in {fields['repository']}`: name the repository as OWNER/REPO.")
    return SlackCommand("experiment", **fields)
