"""FakeGitHub's check runs: create, update (each write kept in `CheckRun.history`), get, list for a ref.

Validated as GitHub does: `conclusion` required once completed (and giving one completes the run), a
completed run never goes back to queued or in_progress (the wording of that refusal is a guess), output
summary and text at most 65,535 bytes, at most 3 actions (label ≤ 20, identifier ≤ 20, description ≤ 40
characters); only a GitHub App may write them ("You must authenticate via a GitHub App.", 403).
"""

from datetime import datetime
from typing import Any

from .fakegithub_api import (
    Call,
    Refusal,
    Reply,
    invalid,
    paginate,
    repo_of,
    require_write,
    resolve_ref,
    route,
)
from .fakegithub_state import CheckRun, World, now

MAX_CHECK_TEXT = 65535  # bytes (UTF-8): GitHub says "summary exceeds a maximum bytesize of 65535"
STATUSES = frozenset({"queued", "in_progress", "completed"})
CONCLUSIONS = frozenset(
    {"action_required", "cancelled", "failure", "neutral", "success", "skipped", "timed_out"}
)


def check_changes(call: Call, check: CheckRun | None) -> dict:
    """The fields a create (check=None) or update sets, validated all-or-nothing as GitHub does."""
    body = call.body if isinstance(call.body, dict) else {}
    if check is None:
        for required in ("name", "head_sha"):
            if not isinstance(body.get(required), str) or not body[required]:
                raise Refusal(422, f'Invalid request.\n\n"{required}" wasn\'t supplied.')
    fields = ("name", "details_url", "external_id", "status", "conclusion")
    changes = {key: body[key] for key in fields if key in body}
    for key, allowed in (("status", STATUSES), ("conclusion", CONCLUSIONS)):
        if changes.get(key) is not None and changes[key] not in allowed:
            raise Refusal(
                422,
                f"Invalid request.\n\nFor 'properties/{key}', {changes[key]!r} is not a valid enum value.",
            )
    if (
        check is not None
        and check.status == "completed"
        and changes.get("status") in ("queued", "in_progress")
    ):
        # GitHub keeps the conclusion of a completed check run; apps create a new run instead.
        raise Refusal(
            422, "Invalid request.\n\nA completed check run cannot go back to queued or in_progress."
        )
    if changes.get("conclusion") is not None:
        changes["status"] = "completed"  # GitHub: "Providing conclusion will automatically set the status…"
    status = changes.get("status") or (check.status if check else "queued")
    if status == "completed" and not (changes.get("conclusion") or (check and check.conclusion)):
        raise Refusal(422, 'Invalid request.\n\n"conclusion" wasn\'t supplied.')
    if "output" in body:
        output = body["output"]
        if not isinstance(output, dict) or not isinstance(output.get("summary"), str):
            raise Refusal(422, 'Invalid request.\n\n"summary" wasn\'t supplied.')
        if check is None and not isinstance(output.get("title"), str):
            raise Refusal(422, 'Invalid request.\n\n"title" wasn\'t supplied.')
        for key in ("summary", "text"):
            if len((output.get(key) or "").encode()) > MAX_CHECK_TEXT:
                raise invalid("CheckRun", key, f"{key} exceeds a maximum bytesize of {MAX_CHECK_TEXT}")
        title = output.get("title", check.output.get("title") if check else None)
        changes["output"] = {"title": title, "summary": output["summary"], "text": output.get("text")}
    if "actions" in body:
        changes["actions"] = check_actions(body["actions"])
    for moment in ("started_at", "completed_at"):
        if body.get(moment):
            try:
                changes[moment] = datetime.fromisoformat(body[moment].replace("Z", "+00:00"))
            except (TypeError, ValueError):
                raise Refusal(422, f'Invalid request.\n\n"{moment}" is not a timestamp.') from None
    return changes


def check_actions(actions: Any) -> list[dict]:
    # GitHub documents these limits; its exact wording for breaking them is not documented.
    if not isinstance(actions, list) or len(actions) > 3:
        raise Refusal(422, "Invalid request.\n\nOnly 3 actions are allowed.")
    for action in actions:
        for key, limit in (("label", 20), ("description", 40), ("identifier", 20)):
            value = action.get(key) if isinstance(action, dict) else None
            if not isinstance(value, str):
                raise Refusal(422, f'Invalid request.\n\n"{key}" wasn\'t supplied.')
            if len(value) > limit:
                raise Refusal(
                    422,
                    f'Invalid request.\n\nOnly {limit} characters are allowed in "{key}"; '
                    f"{len(value)} were supplied.",
                )
    return actions


def apply_check(check: CheckRun, changes: dict) -> None:
    for key, value in changes.items():
        setattr(check, key, value)
    if check.status == "completed" and check.completed_at is None:
        check.completed_at = now()
    check.history.append(check.snapshot())


def require_app(world: World, call: Call) -> None:
    if world.checks_require_app and call.token.installation_id is None:
        raise Refusal(403, "You must authenticate via a GitHub App.")
    require_write(call, "checks")


@route("POST", "/repos/{owner}/{repo}/check-runs")
def create_check_run(world: World, call: Call) -> Reply:
    repo = repo_of(world, call)
    require_app(world, call)
    changes = check_changes(call, None)
    sha = resolve_ref(repo, call.body["head_sha"])
    check = CheckRun(world.next_id(), repo, changes.pop("name"), sha, world.app_id)
    apply_check(check, changes)
    world.check_runs[check.id] = check
    return Reply(201, world.check_run_json(check))


def check_of(world: World, call: Call) -> CheckRun:
    repo = repo_of(world, call)
    check = world.check_runs.get(int(call.params["id"]))
    if check is None or check.repo is not repo:
        raise Refusal(404, "Not Found")
    return check


@route("GET", "/repos/{owner}/{repo}/check-runs/{id:int}")
def get_check_run(world: World, call: Call) -> Reply:
    return Reply(200, world.check_run_json(check_of(world, call)))


@route("PATCH", "/repos/{owner}/{repo}/check-runs/{id:int}")
def update_check_run(world: World, call: Call) -> Reply:
    check = check_of(world, call)
    require_app(world, call)
    apply_check(check, check_changes(call, check))
    return Reply(200, world.check_run_json(check))


@route("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs")
def list_check_runs(world: World, call: Call) -> Reply:
    """`filter=latest` (GitHub's default) keeps only the most recent check run of each name; newest first."""
    repo, query = repo_of(world, call), call.query
    sha = resolve_ref(repo, call.params["ref"])
    checks = sorted(world.checks_for(repo.full_name, sha), key=lambda check: -check.id)
    if query.get("filter", "latest") == "latest":
        checks = [c for c in checks if c is next(x for x in checks if x.name == c.name)]
    checks = [c for c in checks if query.get("check_name") in (None, c.name)]
    checks = [c for c in checks if query.get("status") in (None, c.status)]
    return paginate(world, call, [world.check_run_json(c) for c in checks], wrap="check_runs")
