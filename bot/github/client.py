"""GitHub's API for the door: one authenticated PyGithub client per installation, and the reads the
handlers and syncers share (who the bot is, a user's role on a repository, team membership).

Retries: idempotent calls are retried with backoff on 5xx and rate limits (honouring Retry-After);
POSTs never are, since a 502 may hide a success; callers find before they create instead.
"""

from functools import cached_property

from github import Auth, Github, GithubException, GithubIntegration
from github.Repository import Repository

from bot.errors import TierbotError
from bot.github.retry import github_retry
from bot.redact import Redactor
from bot.settings import Settings
from bot.tiers import GITHUB_ROLES

IDEMPOTENT = frozenset({"GET", "HEAD", "PATCH", "PUT", "DELETE", "OPTIONS"})


class GitHubApi:
    def __init__(self, settings: Settings, redact: Redactor):
        self.settings = settings
        self.redact = redact
        self._clients: dict[int | None, Github] = {}
        self._logins: dict[int | None, str] = {}
        self._installations: dict[str, int] = {}  # repository → the App's installation on it

    @property
    def app_mode(self) -> bool:
        return bool(self.settings.github_app_id and self.settings.github_private_key)

    @property
    def writes_checks(self) -> bool:
        """GitHub lets only Apps write check runs: the App's installations here (a plain token has the
        comment alone). `tierbot ci`'s token is an App's too (GitHub Actions')."""
        return self.app_mode

    def client(self, installation: int | None) -> Github:
        """One client per installation; PyGithub refreshes installation tokens before they expire."""
        if installation not in self._clients:
            self._clients[installation] = Github(
                base_url=self.settings.github_api_url,
                auth=self._auth(installation),
                retry=github_retry(self.settings, IDEMPOTENT),
                seconds_between_requests=None,
                seconds_between_writes=None,
            )
            _redact_bodies(self._clients[installation], self.redact)
        return self._clients[installation]

    def repo(self, installation: int | None, full_name: str) -> Repository:
        return self.client(installation).get_repo(full_name)

    def _app_auth(self) -> Auth.AppAuth:
        settings = self.settings
        return Auth.AppAuth(settings.github_app_id, settings.github_private_key.get_secret_value())

    @cached_property
    def _integration(self) -> GithubIntegration:
        return GithubIntegration(
            auth=self._app_auth(),
            base_url=self.settings.github_api_url,
            retry=github_retry(self.settings, IDEMPOTENT),
            seconds_between_requests=None,
            seconds_between_writes=None,
        )

    def _auth(self, installation: int | None) -> Auth.Auth:
        if self.app_mode:
            if installation is None:
                raise TierbotError("GitHub App mode needs the installation id of the event.")
            return self._app_auth().get_installation_auth(installation)
        if self.settings.github_token:
            return Auth.Token(self.settings.github_token.get_secret_value())
        raise TierbotError(
            "No GitHub credentials: set TIERBOT_GITHUB_TOKEN, or TIERBOT_GITHUB_APP_ID and "
            "TIERBOT_GITHUB_PRIVATE_KEY."
        )

    def bot_login(self, installation: int | None) -> str:
        """Whose comments are ours: the App's `slug[bot]`, or the token's user."""
        if installation not in self._logins:
            if self.app_mode:
                self._logins[installation] = f"{self._integration.get_app().slug}[bot]"
            else:
                self._logins[installation] = self.client(installation).get_user().login
        return self._logins[installation]

    @property
    def configured(self) -> bool:
        return self.app_mode or self.settings.github_token is not None

    def git_token(self, full_name: str) -> str:
        """A token that may fetch the repository: its installation's (renewed before it expires)."""
        if not self.app_mode:
            return self.settings.github_token.get_secret_value()
        return self.client(self.installation_for(full_name)).requester.auth.token

    def installation_for(self, full_name: str) -> int | None:
        """The App's installation on a repository (None in token mode)."""
        if not self.app_mode:
            return None
        if full_name not in self._installations:  # asked before every fetch: look it up once
            owner, _, name = full_name.partition("/")
            self._installations[full_name] = self._integration.get_repo_installation(owner, name).id
        return self._installations[full_name]

    def open_pull(self, full_name: str, branch: str):
        """(installation, the open PullRequest whose head is this branch of the repository itself) or None."""
        installation = self.installation_for(full_name)
        owner = full_name.partition("/")[0]
        pulls = self.repo(installation, full_name).get_pulls(state="open", head=f"{owner}:{branch}")
        first = next(iter(pulls), None)
        return (installation, first) if first is not None else None

    @staticmethod
    def role(repo: Repository, login: str) -> str | None:
        """The user's role on the repository (read … admin), None for an outsider. A custom role counts
        as the base permission GitHub maps it to."""
        try:
            role = repo.get_collaborator_role_name(login)
            if role not in GITHUB_ROLES:
                role = repo.get_collaborator_permission(login)
        except GithubException as exc:
            if exc.status == 404:
                return None
            raise
        return role if role in GITHUB_ROLES else None

    def teams_of(self, installation: int | None, login: str, teams: set[str]) -> tuple[str, ...]:
        """Which of these teams ("org/slug") the user is a member of."""
        member = []
        for team in sorted(teams):
            org, _, slug = team.partition("/")
            try:
                found = self.client(installation).get_organization(org).get_team_by_slug(slug)
                if found.has_in_members(self.client(installation).get_user(login)):
                    member.append(team)
            except GithubException as exc:
                if exc.status != 404:  # a team that does not exist has no members
                    raise
        return tuple(member)


def _redact_bodies(client: Github, redact: Redactor) -> None:
    """Every JSON body this client sends (comments, check runs, replies, whatever comes next) passes the
    redactor: PyGithub's requester sends them all through `requestJson`, the one place to hook."""
    requester = client.requester
    send = requester.requestJson

    def request_json(verb: str, url: str, parameters=None, headers=None, input=None, *args, **kwargs):
        return send(verb, url, parameters, headers, redact.data(input), *args, **kwargs)

    requester.requestJson = request_json
