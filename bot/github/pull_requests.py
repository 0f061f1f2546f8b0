"""Pull requests: every update runs the head commit against main's merge base; closing cancels.

Handlers run in a worker with a recorded delivery, never in the webhook's HTTP request.
"""

from bot.errors import TierbotError
from bot.github.router import Event, Router
from bot.pipeline import Pipeline
from bot.request import RunRequest
from bot.tiers import Requester

router = Router()
UPDATES = ("opened", "reopened", "synchronize", "ready_for_review")


def subject_of(event: Event) -> str:
    """The PR a run is for; a newer run for the same PR supersedes older ones."""
    return f"github:{event.payload['repository']['full_name']}#{event.payload['pull_request']['number']}"


@router.register("pull_request", actions=UPDATES)
def on_pull_request_update(event: Event, pipeline: Pipeline) -> str:
    pr = event.payload["pull_request"]
    repository = event.payload["repository"]["full_name"]
    head_sha = pr["head"]["sha"]
    if pr.get("draft") and not pipeline.settings.github_run_drafts:
        return f"skipped: #{pr['number']} is a draft (TIERBOT_GITHUB_RUN_DRAFTS runs drafts too)"
    if (pr["head"].get("repo") or {}).get("full_name") != repository:
        # Untrusted code: nothing runs until a maintainer approves this exact commit (next slice).
        return f"waiting for approval: #{pr['number']} comes from a fork"
    subject = subject_of(event)
    superseded = pipeline.queue.cancel_subject(subject, keep_sha=head_sha)
    login = pr["user"]["login"]
    request = RunRequest(
        repository=repository,
        ref=head_sha,
        base=pr["base"]["ref"],
        requester=Requester(name=login, github_login=login),
        report_to=[
            {
                "github": {
                    "repository": repository,
                    "pull_request": pr["number"],
                    "head_sha": head_sha,
                    "installation": (event.payload.get("installation") or {}).get("id"),
                }
            }
        ],
        subject=subject,
    )
    try:
        submission = pipeline.submit(request)
    except TierbotError as exc:
        return f"not run: {exc}"
    cancelled = f"; cancelled superseded runs {superseded}" if superseded else ""
    return f"queued run {submission.head.id} for #{pr['number']} @ {head_sha[:7]}{cancelled}"


@router.register("pull_request", actions=("closed",))
def on_pull_request_closed(event: Event, pipeline: Pipeline) -> str:
    cancelled = pipeline.queue.cancel_subject(subject_of(event))
    return f"cancelled runs {cancelled}" if cancelled else "nothing to cancel"
