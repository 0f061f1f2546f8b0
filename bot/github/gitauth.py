"""Credentials for fetching repositories from GitHub itself: the installation's token in App mode, the
token in token mode, sent as git's `http.extraHeader` (`Authorization: Basic`, user `x-access-token`).

Only for `owner/name` repositories fetched from GitHub's own host (TIERBOT_GIT_URL_TEMPLATE unset): a
token is never sent to a mirror or anywhere else. Installation tokens last an hour; PyGithub renews
them before they expire, so each fetch gets a valid one.
"""

import base64
from collections.abc import Callable

from bot.redact import Redactor
from bot.request import is_owner_name
from bot.settings import Settings


def git_credentials(settings: Settings, redact: Redactor) -> Callable[[str], str | None] | None:
    if settings.git_url_template is not None:
        return None
    if not (settings.github_token or (settings.github_app_id and settings.github_private_key)):
        return None
    api = None

    def header(repository: str) -> str | None:
        nonlocal api
        if not is_owner_name(repository):
            return None  # a URL or a path: not a repository on GitHub
        if api is None:
            from bot.github.client import GitHubApi  # PyGithub only where GitHub is fetched from

            api = GitHubApi(settings, redact)
        token = api.git_token(repository)
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        return f"Authorization: Basic {basic}"

    return header
