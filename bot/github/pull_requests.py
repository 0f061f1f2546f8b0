"""Pull requests: every update runs the head commit against its base's merge base; closing cancels.

A fork's code is untrusted: its run waits until someone with write access approves that commit
(`/run approve`), and it runs without the worker's secrets. Handlers run in a worker with a recorded
delivery, never in the webhook's HTTP request.
"""

from dataclasses import dataclass

from bot.errors import TierbotError
from bot.events import Event
from bot.github.router import GitHubDoor, Router
from bot.github.targets import PullRequestTarget
from bot.pipeline import AlreadyRequested
from bot.request import RunRequest
from bot.store import RunState
from bot.tiers import Requester

router = Router()
UPDATES = ("opened", "reopened", "synchronize", "ready_for_review")


@dataclass(frozen=True)
class PullInfo:
    """What tierbot needs of a pull request, from a webhook payload or from the API."""

    repository: str
    number: int
    head_sha: str
    base_ref: str
    author: str
    fork: bool
    open: bool
    draft: bool
    url: str | None = None  # the PR's page

    @classmethod
    def from_payload(cls, repository: str, pr: dict) -> "PullInfo":
        head_repo = (pr["head"].get("repo") or {}).get("full_name")  # None: the fork was deleted
        return cls(
            repository=repository,
            number=pr["number"],
            head_sha=pr["head"]["sha"],
            base_ref=pr["base"]["ref"],
            author=pr["user"]["login"],
            fork=head_repo != repository,
            open=pr.get("state", "open") == "open",
            draft=bool(pr.get("draft")),
            url=pr.get("html_url"),
        )

    @classmethod
    def from_api(cls, repository: str, pull) -> "PullInfo":
        """From a PyGithub PullRequest."""
        return cls.from_payload(repository, pull.raw_data)

    @property
    def subject(self) -> str:
        """What a run is for; a newer run for the same PR supersedes older ones."""
        return f"github:{self.repository}#{self.number}"

    def request(
        self,
        installation: int | None,
        requester: Requester,
        tier: str | None = None,
        base: str | None = None,
        fresh: bool = False,
    ) -> RunRequest:
        """Run the head against the base's merge base, reporting to this PR (other doors subscribe to it:
        `bot.doors`). A push reuses an earlier run of the same tree; `fresh` (someone asked for this
        run) runs it again.
        Against another base it is not the PR's own run: it only mentions the PR (`gating: False`), under
        a check run name branch protection cannot require, never in the sticky comment, and it neither
        supersedes the PR's runs nor is superseded by them."""
        own = base in (None, self.base_ref)
        target = PullRequestTarget(
            repository=self.repository,
            pull_request=self.number,
            head_sha=self.head_sha,
            installation=installation,
            url=self.url,
            gating=own,
            versus=None if own else base,
        )
        return RunRequest(
            repository=self.repository,
            ref=self.head_sha,
            base=base or self.base_ref,
            tier=tier,
            requester=requester,
            report_to=[target],
            subject=self.subject if own else None,
            trusted=not self.fork,
            fresh=fresh,
            # The PR's own automatic run of this commit happens once, whichever delivery brings it.
            once=f"{self.subject}@{self.head_sha}" if own and not fresh else None,
        )


def installation_of(event: Event) -> int | None:
    return (event.payload.get("installation") or {}).get("id")


@router.register("pull_request", actions=UPDATES)
def on_pull_request_update(event: Event, door: GitHubDoor) -> str:
    pull = PullInfo.from_payload(event.payload["repository"]["full_name"], event.payload["pull_request"])
    if pull.draft and not door.pipeline.settings.github_run_drafts:
        return f"skipped: #{pull.number} is a draft (TIERBOT_GITHUB_RUN_DRAFTS runs drafts too)"
    superseded = door.pipeline.queue.cancel_subject(pull.subject, keep_sha=pull.head_sha)
    requester = Requester(name=pull.author, github_login=pull.author)
    request = pull.request(installation_of(event), requester)
    try:
        submission = door.pipeline.submit(request)
    except AlreadyRequested as earlier:
        return f"nothing new: #{pull.number} @ {pull.head_sha[:7]} already has run {earlier.run.id}"
    except TierbotError as exc:  # the PR says why (check run, sticky comment): nothing is silent
        refused = door.pipeline.refuse(request, pull.head_sha, exc)
        return f"refused as run {refused.id}: {exc}"
    cancelled = f"; cancelled superseded runs {superseded}" if superseded else ""
    waiting = " (a fork: waiting for approval)" if submission.head.state == RunState.waiting else ""
    return f"queued run {submission.head.id} for #{pull.number} @ {pull.head_sha[:7]}{waiting}{cancelled}"


@router.register("pull_request", actions=("closed",))
def on_pull_request_closed(event: Event, door: GitHubDoor) -> str:
    pull = PullInfo.from_payload(event.payload["repository"]["full_name"], event.payload["pull_request"])
    cancelled = door.pipeline.queue.cancel_subject(pull.subject)
    return f"cancelled runs {cancelled}" if cancelled else "nothing to cancel"
