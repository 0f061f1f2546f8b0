"""What every door hands to the pipeline: one request to run (and usually compare) an experiment."""

import re

from pydantic import BaseModel, Field, SerializeAsAny

from bot.targets import Target
from bot.tiers import Requester

# GitHub's `owner/name`: an owner of letters, digits, `-` (and `_`, GitHub Enterprise's managed users),
# a name of letters, digits, `.`, `_`, `-` but not `.` or `..`. Never a path: `../x` is not one.
_OWNER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,38}/(?!\.\.?$)[A-Za-z0-9_.-]{1,100}$")


def is_owner_name(repository: str) -> bool:
    return bool(_OWNER_NAME.match(repository))


class RunRequest(BaseModel):
    repository: str = Field(
        description="Local path, clone URL, or owner/name (see TIERBOT_GIT_URL_TEMPLATE)."
    )
    ref: str = Field("HEAD", description="Branch, tag or commit to run.")
    tier: str | None = Field(
        None, description="Tier name; the experiment's or the operators' default if unset."
    )
    base: str | None = Field(None, description="Compare against this ref's merge base; None runs only.")
    requester: Requester = Field(default_factory=Requester)
    report_to: list[SerializeAsAny[Target]] = Field(
        default_factory=list, description="Where doors show the run (`bot.targets`)."
    )
    subject: str | None = Field(None, description="What the run is for (a PR); newer requests supersede it.")
    trusted: bool = Field(
        True,
        description="False for a fork's code: it waits for an approval of its commit, runs without secrets.",
    )
    once: str | None = Field(
        None,
        description="What makes an automatic request the same one again (a pull request at a commit): a "
        "request with the `once` of a live run starts nothing (`bot.pipeline.AlreadyRequested`).",
    )
    fresh: bool = Field(
        False,
        description="Run again even when a run of the same tree, spec, environment and tier succeeded "
        "before (`bot.reuse`): what explicit requests ask for (`/run experiment`, Rerun, `--fresh`).",
    )
