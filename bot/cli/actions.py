"""What GitHub Actions hands `tierbot ci`: the job's variables, the event that started it, the checkout
`actions/checkout` left, and the files a step writes back (the job summary, the step's outputs).

Everything is read once, here, and checked: a missing or broken variable is an `ActionsMisconfigured`
(exit 2) that names it and says what to put in the workflow. Any CI that sets the same variables works.
"""

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.errors import TierbotError
from bot.github.pull_requests import PullInfo
from bot.request import is_owner_name

DEFAULT_API_URL = "https://api.github.com"
TOKEN_STEP = "env:\n    GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}"
FULL_HISTORY = "- uses: actions/checkout@v4\n    with:\n      fetch-depth: 0"


class ActionsMisconfigured(TierbotError):
    """The job's variables or checkout are not what `tierbot ci` needs; the message says what to change."""


@dataclass(frozen=True)
class PushEvent:
    sha: str  # the commit pushed
    branch: str | None  # what was pushed to, when it is a branch


@dataclass(frozen=True)
class Actions:
    event: PullInfo | PushEvent  # a pull request to compare, or a commit to run alone
    repository: str  # owner/name
    workspace: str  # the checkout, absolute
    api_url: str
    token: str | None
    summary: Path | None  # GITHUB_STEP_SUMMARY
    outputs: Path | None  # GITHUB_OUTPUT
    run_page: str | None  # the workflow run's page, where the report is an artifact


def read_actions(env: Mapping[str, str]) -> Actions:
    """The job as its variables describe it. Raises ActionsMisconfigured."""
    repository = _required(env, "GITHUB_REPOSITORY", "the repository as owner/name")
    if not is_owner_name(repository):
        raise ActionsMisconfigured(f"GITHUB_REPOSITORY is {repository!r}, not the repository's owner/name.")
    event = _event(env, repository)
    token = env.get("GITHUB_TOKEN") or None
    if token is None and isinstance(event, PullInfo):
        raise ActionsMisconfigured(
            "GITHUB_TOKEN is not set, and tierbot ci posts the check run and the pull request's comment "
            f"with it. Add it to the step that runs tierbot ci:\n\n    {TOKEN_STEP}"
        )
    server, run_id = env.get("GITHUB_SERVER_URL") or "https://github.com", env.get("GITHUB_RUN_ID")
    return Actions(
        event=event,
        repository=repository,
        workspace=_workspace(env),
        api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
        token=token,
        summary=_file(env, "GITHUB_STEP_SUMMARY"),
        outputs=_file(env, "GITHUB_OUTPUT"),
        run_page=f"{server.rstrip('/')}/{repository}/actions/runs/{run_id}" if run_id else None,
    )


def _required(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ActionsMisconfigured(
            f"{name} is not set: tierbot ci reads {what} from it. GitHub Actions sets it in every job; "
            f"elsewhere, set it as Actions does."
        )
    return value


def _event(env: Mapping[str, str], repository: str) -> PullInfo | PushEvent:
    path = _required(env, "GITHUB_EVENT_PATH", "the event that started the workflow (its JSON file)")
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        message = f"GITHUB_EVENT_PATH names {path}, which cannot be read: {exc.strerror}."
        raise ActionsMisconfigured(message) from None
    except ValueError as exc:
        raise ActionsMisconfigured(f"GITHUB_EVENT_PATH names {path}, which is not JSON: {exc}.") from None
    if not isinstance(payload, dict):
        raise ActionsMisconfigured(f"GITHUB_EVENT_PATH names {path}, which holds no event object.")
    try:
        if "pull_request" in payload:
            return PullInfo.from_payload(repository, payload["pull_request"])
        sha = payload.get("after") or env.get("GITHUB_SHA")
        if sha and "ref" in payload:
            ref = payload["ref"] or ""
            return PushEvent(sha, ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None)
    except (KeyError, TypeError) as exc:
        raise ActionsMisconfigured(f"GITHUB_EVENT_PATH's pull_request has no {exc}.") from None
    name = env.get("GITHUB_EVENT_NAME") or "this"
    raise ActionsMisconfigured(
        f"tierbot ci compares pull requests and runs pushed commits; the {name} event in GITHUB_EVENT_PATH "
        "is neither. Run it `on: [pull_request, push]`."
    )


def _workspace(env: Mapping[str, str]) -> str:
    workspace = Path(env.get("GITHUB_WORKSPACE") or ".").resolve()
    if _git(workspace, "rev-parse", "--git-dir") is None:
        raise ActionsMisconfigured(
            f"GITHUB_WORKSPACE ({workspace}) is not a git repository. Check the repository out before "
            f"tierbot ci runs:\n\n    {FULL_HISTORY}"
        )
    return str(workspace)


def _file(env: Mapping[str, str], name: str) -> Path | None:
    return Path(env[name]) if env.get(name) else None


# -- the checkout ----------------------------------------------------------------------------------------


def require_history(workspace: str) -> None:
    """actions/checkout fetches one commit unless told otherwise; the merge base (and a mirror of the
    checkout) needs the history, which a shallow clone cannot give."""
    if _git(Path(workspace), "rev-parse", "--is-shallow-repository") == "true":
        raise ActionsMisconfigured(
            f"{workspace} is a shallow clone (actions/checkout fetches one commit unless told otherwise), so "
            "the merge base with the base branch cannot be found. Fetch the whole history:\n\n"
            f"    {FULL_HISTORY}"
        )


def local_branch(workspace: str, branch: str) -> None:
    """A pull request's checkout is detached, its branches only `origin/…`: the base branch is made a
    local branch (where the remote one is), so the head is compared against it by name, as the bot does."""
    path = Path(workspace)
    if _git(path, "rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}") is not None:
        return
    remote = _git(path, "rev-parse", "--verify", "-q", f"refs/remotes/origin/{branch}^{{commit}}")
    if remote is None:
        raise ActionsMisconfigured(
            f"The checkout in {workspace} has no branch {branch} (nor origin/{branch}), the pull request's "
            f"base, so there is nothing to compare against. Fetch every branch:\n\n    {FULL_HISTORY}"
        )
    if _git(path, "update-ref", f"refs/heads/{branch}", remote, "") is None:
        raise ActionsMisconfigured(f"Could not make branch {branch} from origin/{branch} in {workspace}.")


def pushed_ref(workspace: str, push: PushEvent) -> str:
    """What a push runs: its branch by name where the checkout has it at the pushed commit (so the run
    is the branch's, as `tierbot run main` makes it), else the commit."""
    if push.branch is None:
        return push.sha
    at = _git(Path(workspace), "rev-parse", "--verify", "-q", f"refs/heads/{push.branch}^{{commit}}")
    return push.branch if at == push.sha else push.sha


def _git(path: Path, *args: str) -> str | None:
    done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


# -- what a step writes back -------------------------------------------------------------------------------


def append_summary(actions: Actions, markdown: str) -> None:
    """The job summary: appended, as every step of the job adds its own."""
    if actions.summary is not None:
        with actions.summary.open("a", encoding="utf-8") as summary:
            summary.write(markdown.rstrip("\n") + "\n\n")


def set_outputs(actions: Actions, **values: str | None) -> None:
    """The step's outputs (`steps.ID.outputs.NAME`), for the steps after it: the report to upload."""
    if actions.outputs is not None:
        with actions.outputs.open("a", encoding="utf-8") as outputs:
            for name, value in values.items():
                if value is not None:
                    outputs.write(f"{name}={value}\n")
