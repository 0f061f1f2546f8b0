"""Check-run buttons: GitHub's "Re-run" (`rerequested`) and tierbot's own "Rerun" action run the same
request again. GitHub offers both only to users with write access."""

import re

from bot.errors import TierbotError
from bot.events import Event
from bot.github.router import GitHubDoor, Router
from bot.tiers import Requester

router = Router()


@router.register("check_run", actions=("rerequested", "requested_action"))
def on_rerun(event: Event, door: GitHubDoor) -> str:
    payload = event.payload
    if event.action == "requested_action" and payload["requested_action"].get("identifier") != "rerun":
        return f"ignored: unknown action {payload['requested_action'].get('identifier')!r}"
    ours = re.fullmatch(r"run-(\d+)", payload["check_run"].get("external_id") or "")
    if ours is None:
        return "ignored: not a tierbot check run"
    login = payload["sender"]["login"]
    try:
        submission = door.pipeline.rerun(int(ours.group(1)), Requester(name=login, github_login=login))
    except TierbotError as exc:
        return f"not rerun: {exc}"
    return f"rerun of run {ours.group(1)}: run {submission.head.id} ({submission.head.state})"
