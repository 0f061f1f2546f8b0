"""`/run link`: a Slack user proves which GitHub login is theirs, through GitHub's OAuth device flow.

The bot asks GitHub for a device code and tells the user, privately, where to enter the code it shows.
The report outbox then polls GitHub at the interval GitHub asks (the `slack_link` door, `NotYet`) until
the user authorizes, denies, or the code expires. The access token is used once, to ask GitHub whose it
is, and dropped: tierbot keeps the login, never the token. The OAuth app needs no scopes.
"""

import time

import requests

from bot.errors import TierbotError
from bot.pipeline import Pipeline
from bot.render.templates import slack_code, slack_escaped
from bot.settings import Settings
from bot.slack.reporter import post_reply
from bot.slack.targets import LinkTarget, Person
from bot.store import Report
from bot.store.models import SlackLink
from bot.store.reports import NotYet

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TIMEOUT = 10.0  # seconds for one call to GitHub; a failed call is retried by the outbox


def start_link(pipeline: Pipeline, to: Person) -> str:
    """Ask GitHub for a code, tell the user where to enter it, and queue the polling. Returns what the
    user was told."""
    settings = pipeline.settings
    if not settings.github_oauth_client_id:
        raise TierbotError(
            "Linking a GitHub account is not set up here (TIERBOT_GITHUB_OAUTH_CLIENT_ID). Ask an operator "
            "to map your Slack id to your GitHub login (TIERBOT_SLACK_GITHUB_LOGINS)."
        )
    grant = _github_form(settings, "/login/device/code", {"scope": ""})
    if "device_code" not in grant:
        raise TierbotError(f"GitHub did not start linking: {_problem(grant)}.")
    minutes = max(1, int(grant.get("expires_in", 900)) // 60)
    polling = LinkTarget(
        **to.model_dump(),
        device_code=grant["device_code"],
        interval=int(grant.get("interval", 5)),
        expires_at=time.time() + int(grant.get("expires_in", 900)),
    )
    pipeline.reports.post(polling)
    return post_reply(
        pipeline,
        to,
        f"To link your GitHub account, open {slack_escaped(grant['verification_uri'])} and enter the code "
        f"{slack_code(grant['user_code'])} within {minutes} minutes. I will tell you here once GitHub "
        "confirms it.",
    )


def poll_link(pipeline: Pipeline, report: Report) -> dict:
    """The outbox's sync of a pending link: ask GitHub once; NotYet while the user has not answered."""
    settings, target, memo = pipeline.settings, LinkTarget.model_validate(report.target), dict(report.memo)
    to = target.person()
    if time.time() > target.expires_at:
        post_reply(pipeline, to, "Your link code expired before GitHub confirmed it. Type `/run link` again.")
        return memo | {"state": "expired"}
    fields = {"device_code": target.device_code, "grant_type": DEVICE_GRANT}
    answer = _github_form(settings, "/login/oauth/access_token", fields)
    interval = memo.get("interval", target.interval)
    if answer.get("error") == "authorization_pending":
        raise NotYet(interval, memo | {"interval": interval})
    if answer.get("error") == "slow_down":  # GitHub's rule: add 5 s to every later poll
        interval = int(answer.get("interval", interval + 5))
        raise NotYet(interval, memo | {"interval": interval})
    if not answer.get("access_token"):
        post_reply(
            pipeline,
            to,
            f"GitHub did not link your account: {_problem(answer)}. Type `/run link` to try again.",
        )
        return memo | {"state": answer.get("error", "refused")}
    login = _login_of(settings, answer["access_token"])
    with pipeline.db.session() as s:
        s.merge(SlackLink(slack_user=target.user, github_login=login))
    post_reply(
        pipeline,
        to,
        f"Linked: you are `@{login}` on GitHub. From Slack you may now do what `@{login}` may do on each "
        "repository: read to see runs and reports, write to run and cancel.",
    )
    return memo | {"state": "linked", "login": login}


def _github_form(settings: Settings, path: str, fields: dict) -> dict:
    """POST to GitHub's web host (the OAuth endpoints live there, not on the API), JSON back."""
    answer = requests.post(
        settings.github_web_url + path,
        data={"client_id": settings.github_oauth_client_id, **fields},
        headers={"Accept": "application/json"},
        timeout=TIMEOUT,
    )
    answer.raise_for_status()
    return answer.json()


def _login_of(settings: Settings, token: str) -> str:
    answer = requests.get(
        settings.github_api_url.rstrip("/") + "/user",
        headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"},
        timeout=TIMEOUT,
    )
    answer.raise_for_status()
    return answer.json()["login"]


def _problem(answer: dict) -> str:
    """GitHub's reason, as text (it goes to Slack)."""
    return slack_escaped(str(answer.get("error_description") or answer.get("error") or "no reason given"))
