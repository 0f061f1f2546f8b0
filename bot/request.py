"""What every door hands to the pipeline: one request to run (and usually compare) an experiment."""

from pydantic import BaseModel, Field

from bot.tiers import Requester


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
    report_to: list[dict] = Field(default_factory=list, description="Where doors want the result posted.")
    subject: str | None = Field(None, description="What the run is for (a PR); newer requests supersede it.")
    trusted: bool = Field(
        True,
        description="False for a fork's code: it waits for an approval of its commit, runs without secrets.",
    )
