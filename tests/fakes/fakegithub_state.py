"""FakeGitHub's world: plain objects that tests seed (`add_*`) and inspect, behind the fake API."""

import itertools
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .fakegithub_json import GitHubJSON

# `permission` (the legacy field) as GitHub maps each role: maintain → write, triage → read.
LEGACY_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
}
ROLE_RANK = ["none", "read", "triage", "write", "maintain", "admin"]
ACTIONS_BOT = "github-actions[bot]"  # who GitHub Actions' GITHUB_TOKEN is
ACTIONS_INSTALLATION = 9_000_001  # its App's installation: never the tierbot App's


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class User:
    login: str
    id: int
    type: str = "User"  # "Bot" for an App's `slug[bot]`, "Organization" for an owner


@dataclass
class Repo:
    full_name: str
    id: int
    owner: User
    default_branch: str
    private: bool
    installation_id: int | None
    roles: dict[str, str] = field(default_factory=dict)  # login → admin|maintain|write|triage|read|none
    branches: dict[str, str] = field(default_factory=dict)  # ref → sha, learnt from pulls

    @property
    def name(self) -> str:
        return self.full_name.split("/", 1)[1]

    def role(self, login: str) -> str:
        return self.roles.get(login, "none" if self.private else "read")


@dataclass
class Pull:
    repo: Repo
    number: int
    id: int
    head_sha: str
    head_ref: str
    base_ref: str
    user: User
    fork: bool
    title: str
    state: str = "open"
    draft: bool = False
    created_at: datetime = field(default_factory=now)


@dataclass
class Reaction:
    id: int
    user: User
    content: str
    created_at: datetime = field(default_factory=now)


@dataclass
class Comment:
    id: int
    repo: Repo
    issue_number: int
    body: str
    user: User
    created_at: datetime = field(default_factory=now)
    updated_at: datetime = field(default_factory=now)
    reactions: list[Reaction] = field(default_factory=list)
    edits: list[str] = field(default_factory=list)  # earlier bodies, oldest first


@dataclass
class CheckRun:
    """A check run; `history` holds a snapshot of its fields after each create and update, oldest first."""

    id: int
    repo: Repo
    name: str
    head_sha: str
    app_id: int | None
    status: str = "queued"
    conclusion: str | None = None
    started_at: datetime = field(default_factory=now)
    completed_at: datetime | None = None
    details_url: str | None = None
    external_id: str | None = None
    output: dict = field(default_factory=dict)
    actions: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)

    def snapshot(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "conclusion": self.conclusion,
            "title": self.output.get("title"),
            "summary": self.output.get("summary"),
            "text": self.output.get("text"),
            "actions": [dict(action) for action in self.actions],
            "details_url": self.details_url,
            "external_id": self.external_id,
            "completed_at": self.completed_at,
        }


@dataclass
class Team:
    org: User
    slug: str
    id: int
    members: dict[str, str]  # login → member|maintainer


@dataclass
class Token:
    value: str
    user: User
    installation_id: int | None = None
    expires_at: datetime | None = None
    # A GitHub Actions job's GITHUB_TOKEN: it sees its workflow's repository only, with the permissions
    # the workflow grants (None: whatever its App may do).
    repository: str | None = None
    permissions: dict[str, str] | None = None

    def valid(self) -> bool:
        return self.expires_at is None or self.expires_at > now()

    def may_write(self, *scopes: str) -> bool:
        """Whether it may write through any of these permissions (`checks`, `pull_requests`, `issues`)."""
        return self.permissions is None or any(self.permissions.get(s) == "write" for s in scopes)


class World(GitHubJSON):
    """The state behind the fake API. Seed it with `add_*`; read it back from the attributes."""

    def __init__(self, app_id: int, app_slug: str, token_login: str) -> None:
        self.lock = threading.RLock()
        self.url = ""  # set when the server has a port
        self.app_id, self.app_slug = app_id, app_slug
        self._ids = itertools.count(10001)
        self.users: dict[str, User] = {}
        self.repos: dict[str, Repo] = {}
        self.pulls: dict[tuple[str, int], Pull] = {}
        self.comments: dict[int, Comment] = {}
        self.check_runs: dict[int, CheckRun] = {}
        self.deployments: dict = {}  # id → fakegithub_deployments.Deployment
        self.teams: dict[tuple[str, str], Team] = {}
        self.tokens: dict[str, Token] = {}
        self.bot = self.user(f"{app_slug}[bot]", type="Bot")  # who the App's installation tokens are
        self.app_owner = self.user(f"{app_slug}-developers", type="Organization")
        self.token_login = token_login
        self.token = self.add_token(token_login)  # the plain-token mode's token
        self.installation_token_ttl = 3600.0  # seconds; PyGithub refreshes a token 20 s before it expires
        self.checks_require_app = True  # GitHub: "You must authenticate via a GitHub App." (403) otherwise
        self.rate_used = 0
        self.device_interval = 5  # seconds between device-flow polls, as GitHub's default
        self.device_grants: dict = {}  # device code → fakegithub_device.DeviceGrant
        self.oauth_client_ids = {"Iv1.tierbot"}  # OAuth apps with the device flow enabled

    def next_id(self) -> int:
        return next(self._ids)

    # -- seeding -----------------------------------------------------------------------------------

    def user(self, login: str, type: str = "User") -> User:
        with self.lock:
            if login not in self.users:
                self.users[login] = User(login, self.next_id(), type)
            return self.users[login]

    def add_repo(
        self,
        full_name: str,
        default_branch: str = "main",
        private: bool = True,
        installation_id: int | None = 1,
    ) -> Repo:
        """A repository the App is installed on (installation_id=None: it is not); the plain token's
        user has write on it, so that token sees it even when private."""
        with self.lock:
            owner = self.user(full_name.split("/")[0], type="Organization")
            repo = Repo(full_name, self.next_id(), owner, default_branch, private, installation_id)
            repo.roles[self.token_login] = "write"
            self.repos[full_name] = repo
            return repo

    def add_pull(
        self,
        repo: str,
        number: int,
        head_sha: str,
        head_ref: str = "feature",
        base_ref: str | None = None,
        user: str = "octocat",
        fork: bool = False,
        title: str | None = None,
        base_sha: str | None = None,
    ) -> Pull:
        """An open pull request; `fork=True`: its head is `{user}/{repo name}`, a public fork."""
        with self.lock:
            owner = self.repos[repo]
            pull = Pull(
                owner,
                number,
                self.next_id(),
                head_sha,
                head_ref,
                base_ref or owner.default_branch,
                self.user(user),
                fork,
                title or f"Pull request #{number}",
            )
            self.pulls[(repo, number)] = pull
            if not fork:
                owner.branches[head_ref] = head_sha
            if base_sha:
                owner.branches[pull.base_ref] = base_sha
            return pull

    def push(self, repo: str, number: int, head_sha: str) -> Pull:
        """A new head for pull request `number`, as after a push to its branch."""
        with self.lock:
            pull = self.pulls[(repo, number)]
            pull.head_sha = head_sha
            if not pull.fork:
                pull.repo.branches[pull.head_ref] = head_sha
            return pull

    def add_comment(self, repo: str, number: int, body: str, user: str = "octocat") -> Comment:
        """A comment as if `user` had posted it (or the App, with user=fake.bot.login)."""
        with self.lock:
            comment = Comment(self.next_id(), self.repos[repo], number, body, self.user(user))
            self.comments[comment.id] = comment
            return comment

    def set_permission(self, repo: str, login: str, role: str) -> None:
        """admin | maintain | write | triage | read | none."""
        assert role in ROLE_RANK, role
        with self.lock:
            self.user(login)
            self.repos[repo].roles[login] = role

    def add_team(self, org: str, slug: str, members: list[str], maintainers: list[str] | None = None) -> Team:
        with self.lock:
            roles = {login: "member" for login in members} | {
                login: "maintainer" for login in maintainers or []
            }
            for login in roles:
                self.user(login)
            team = Team(self.user(org, type="Organization"), slug, self.next_id(), roles)
            self.teams[(org, slug)] = team
            return team

    def add_token(self, login: str, value: str | None = None) -> str:
        """A plain (personal access) token for `login`; returns it."""
        with self.lock:
            value = value or f"ghp_{login.replace('[', '').replace(']', '')}{self.next_id()}"
            self.tokens[value] = Token(value, self.user(login))
            return value

    def add_actions_token(self, repo: str, permissions: dict[str, str] | None = None) -> str:
        """A GitHub Actions job's GITHUB_TOKEN in `repo`'s workflow: an installation token of Actions' own
        App (`github-actions[bot]`, which may not `GET /user`), seeing that repository alone, with the
        workflow's `permissions` (e.g. {"contents": "read"}: every write refused with 403)."""
        with self.lock:
            value = f"ghs_actions{self.next_id()}"
            actions = self.user(ACTIONS_BOT, type="Bot")
            self.tokens[value] = Token(value, actions, ACTIONS_INSTALLATION, None, repo, permissions)
            return value

    def issue_installation_token(self, installation_id: int) -> Token:
        with self.lock:
            value = f"ghs_{secrets.token_hex(18)}"
            expires_at = now() + timedelta(seconds=self.installation_token_ttl)
            self.tokens[value] = Token(value, self.bot, installation_id, expires_at)
            return self.tokens[value]

    def expire_tokens(self) -> None:
        """Every installation token issued so far expires now (GitHub answers 401 to them)."""
        with self.lock:
            for token in self.tokens.values():
                if token.installation_id is not None:
                    token.expires_at = now()

    # -- reading back --------------------------------------------------------------------------------

    def repo_named(self, full_name: str) -> Repo | None:
        """GitHub matches owner and name case-insensitively."""
        with self.lock:
            return next((r for name, r in self.repos.items() if name.lower() == full_name.lower()), None)

    @property
    def installation_tokens(self) -> list[Token]:
        return [token for token in self.tokens.values() if token.installation_id is not None]

    def comments_on(self, repo: str, number: int) -> list[Comment]:
        with self.lock:
            found = self.comments.values()
            return [c for c in found if c.repo.full_name == repo and c.issue_number == number]

    def checks_for(self, repo: str, head_sha: str) -> list[CheckRun]:
        with self.lock:
            found = self.check_runs.values()
            return [c for c in found if c.repo.full_name == repo and c.head_sha == head_sha]
