"""Who a Slack user is on GitHub, and what they may do to a repository from Slack.

A Slack account proves nothing about GitHub. A Slack user acts on a repository only as a GitHub login
that was verified (`/run link`, GitHub's device flow) or that the operator vouches for
(`slack_github_logins`), with the role GitHub gives that login there, asked through the App's
installation as PR commands are: read to see status, logs and reports; write to run, cancel, rerun
and set a channel's repository. Operators may open chosen repositories to the whole workspace
(`slack_open_repositories`). Only GitHub repositories are reachable from Slack: local paths and URLs
belong to the CLI on the bot's machine.
"""

from sqlalchemy import select

from bot.doors import CodeHost
from bot.errors import TierbotError
from bot.pipeline import Pipeline
from bot.request import is_owner_name
from bot.store.models import SlackLink
from bot.tiers import GITHUB_ROLES, role_at_least

READ, WRITE = "read", "write"


class AccessDenied(TierbotError):
    """The Slack user may not do this to the repository; the message says what would let them."""


class SlackAccess:
    """One Slack user's rights, for one delivery: each repository's role is asked of GitHub once."""

    def __init__(self, pipeline: Pipeline, github: CodeHost | None, slack_user: str):
        self.pipeline, self.github, self.user = pipeline, github, slack_user
        self.settings = pipeline.settings
        self._roles: dict[str, str | None] = {}

    @property
    def login(self) -> str | None:
        """The user's GitHub login: linked with `/run link`, else as the operator maps it."""
        with self.pipeline.db.session() as s:
            linked = s.scalars(
                select(SlackLink.github_login).where(SlackLink.slack_user == self.user)
            ).first()
        return linked or self.settings.slack_github_logins.get(self.user)

    def role(self, repository: str) -> str | None:
        """The user's role on the repository from Slack: GitHub's, or the workspace's if that is more."""
        if repository not in self._roles:
            roles = [self.settings.slack_open_repositories.get(repository), self._github_role(repository)]
            known = [r for r in roles if r in GITHUB_ROLES]
            self._roles[repository] = max(known, key=GITHUB_ROLES.index, default=None)
        return self._roles[repository]

    def require(self, repository: str, need: str, doing: str) -> None:
        """Raise AccessDenied unless the user has at least `need` on the repository; `doing` names what
        they asked for, in the message."""
        if not is_owner_name(repository):
            raise AccessDenied(
                f"Slack can only {doing} for GitHub repositories (OWNER/REPO); this one is local to the "
                "bot's machine, where the CLI reaches it."
            )
        role = self.role(repository)
        if role_at_least(role, need):
            return
        login = self.login
        if login is None:
            raise AccessDenied(
                f"To {doing} in `{repository}`, tierbot must know who you are on GitHub. {self.how_to_link()}"
            )
        if not self._github_ready():
            raise AccessDenied(
                f"tierbot cannot check `@{login}`'s access to `{repository}`: it has no GitHub credentials. "
                "An operator can open the repository to this workspace (TIERBOT_SLACK_OPEN_REPOSITORIES)."
            )
        has = f"the {role} role" if role else "no access"
        raise AccessDenied(f"`@{login}` has {has} on `{repository}`; to {doing} takes {need} access.")

    def how_to_link(self) -> str:
        if self.settings.github_oauth_client_id:
            return "Link your GitHub account with `/run link`."
        return "Ask an operator to add your Slack id to TIERBOT_SLACK_GITHUB_LOGINS."

    def _github_ready(self) -> bool:
        return self.github is not None and self.github.configured

    def _github_role(self, repository: str) -> str | None:
        login = self.login
        if login is None or not self._github_ready():
            return None
        return self.github.role(repository, login)
