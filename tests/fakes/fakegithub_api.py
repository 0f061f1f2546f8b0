"""FakeGitHub's endpoints (check runs: `fakegithub_checks`) and the routing they share.

Same paths, methods, status codes, validation and error JSON as api.github.com, as far as GitHub's docs
and the errors users have reported show; where GitHub's exact wording is unknown, a comment says so.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .fakegithub_json import REACTIONS
from .fakegithub_state import (
    LEGACY_PERMISSION,
    ROLE_RANK,
    Comment,
    Pull,
    Reaction,
    Repo,
    Team,
    Token,
    User,
    World,
    now,
)

DOCS = "https://docs.github.com/rest"
MAX_COMMENT = 65536  # characters
SHA = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    token: Token | None  # None on App (JWT) endpoints


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class Refusal(Exception):
    """An error answer, rendered as GitHub renders errors: message, errors, documentation_url, status."""

    def __init__(self, status: int, message: str, errors: list | None = None, headers: dict | None = None):
        super().__init__(message)
        body: dict = {"message": message}
        if errors:
            body["errors"] = errors
        self.reply = Reply(status, body | {"documentation_url": DOCS, "status": str(status)}, headers or {})


def invalid(resource: str, field_name: str, message: str, code: str = "custom") -> Refusal:
    error = {"resource": resource, "code": code, "field": field_name, "message": message}
    return Refusal(422, "Validation Failed", [error])


Handler = Callable[[World, Call], Reply]
ROUTES: list[tuple[str, re.Pattern, Handler, str]] = []  # method, path, handler, auth ("token" | "app")


def route(method: str, template: str, auth: str = "token") -> Callable[[Handler], Handler]:
    """Register a handler for `template`, where `{name}` is one path segment and `{name:int}` digits."""
    pattern = re.sub(r"\{(\w+):int\}", r"(?P<\1>\\d+)", template)
    pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def register(handler: Handler) -> Handler:
        ROUTES.append((method, pattern, handler, auth))
        return handler

    return register


def paginate(world: World, call: Call, items: list, wrap: str | None = None) -> Reply:
    """One page, with GitHub's `Link: <…>; rel="next"` (and prev/last/first) built on the fake's URL."""
    try:
        per_page = min(max(int(call.query.get("per_page", 30)), 1), 100)
        page = max(int(call.query.get("page", 1)), 1)
    except ValueError:
        per_page, page = 30, 1
    chunk = items[(page - 1) * per_page : page * per_page]
    last = max(1, math.ceil(len(items) / per_page))

    def link(number: int, rel: str) -> str:
        return f'<{world.url}{call.path}?{urlencode(call.query | {"page": str(number)})}>; rel="{rel}"'

    links = [link(page - 1, "prev")] if page > 1 else []
    links += [link(page + 1, "next"), link(last, "last")] if page < last else []
    links += [link(1, "first")] if page > 1 else []
    body = chunk if wrap is None else {"total_count": len(items), wrap: chunk}
    return Reply(200, body, {"Link": ", ".join(links)} if links else {})


# -- lookups --------------------------------------------------------------------------------------------


def repo_of(world: World, call: Call) -> Repo:
    """The repository, if this token may see it: an installation token only its installation's
    repositories, a user's token those it has a role on (and public ones). Otherwise 404, as GitHub."""
    repo, token = world.repo_named(f"{call.params['owner']}/{call.params['repo']}"), call.token
    if repo is None or token is None:
        raise Refusal(404, "Not Found")
    if token.repository is not None:
        visible = repo.full_name.lower() == token.repository.lower()
    elif token.installation_id is not None:
        visible = repo.installation_id == token.installation_id
    else:
        visible = not repo.private or repo.roles.get(token.user.login, "none") != "none"
    if not visible:
        raise Refusal(404, "Not Found")
    return repo


def pull_of(world: World, call: Call, repo: Repo) -> Pull:
    pull = world.pulls.get((repo.full_name, int(call.params["number"])))
    if pull is None:
        raise Refusal(404, "Not Found")
    return pull


def comment_of(world: World, call: Call) -> Comment:
    repo = repo_of(world, call)
    comment = world.comments.get(int(call.params["id"]))
    if comment is None or comment.repo is not repo:
        raise Refusal(404, "Not Found")
    return comment


def owned(world: World, call: Call, objects: dict):
    """The object of `objects` whose id the path names (`{id}`), if it belongs to the path's repository
    (a `repo` attribute); otherwise 404, as GitHub."""
    repo = repo_of(world, call)
    found = objects.get(int(call.params["id"]))
    if found is None or found.repo is not repo:
        raise Refusal(404, "Not Found")
    return found


def require_write(call: Call, *scopes: str) -> None:
    """A token whose permissions lack every one of these (an Actions job's, as its workflow set them)."""
    if not call.token.may_write(*scopes):
        raise Refusal(403, "Resource not accessible by integration")


def resolve_ref(repo: Repo, ref: str) -> str:
    if ref in repo.branches:
        return repo.branches[ref]
    if not SHA.match(ref):
        raise Refusal(422, f"No commit found for SHA: {ref}")
    return ref


# -- repositories, pulls, issues -------------------------------------------------------------------------


@route("GET", "/repos/{owner}/{repo}")
def get_repo(world: World, call: Call) -> Reply:
    return Reply(200, world.repo_json(repo_of(world, call)))


@route("GET", "/repos/{owner}/{repo}/pulls")
def list_pulls(world: World, call: Call) -> Reply:
    """`state` (open, closed, all; default open) and `head` (`owner:branch`) filters, oldest first."""
    repo, query = repo_of(world, call), call.query
    pulls = [p for (name, _), p in sorted(world.pulls.items()) if name == repo.full_name]
    state = query.get("state", "open")
    pulls = [p for p in pulls if state == "all" or p.state == state]
    if "head" in query:
        owner, _, branch = query["head"].partition(":")
        pulls = [
            p
            for p in pulls
            if p.head_ref == branch and (p.user.login if p.fork else repo.owner.login) == owner
        ]
    return paginate(world, call, [world.pull_json(p) for p in pulls])


@route("GET", "/repos/{owner}/{repo}/pulls/{number:int}")
def get_pull(world: World, call: Call) -> Reply:
    return Reply(200, world.pull_json(pull_of(world, call, repo_of(world, call))))


@route("GET", "/repos/{owner}/{repo}/issues/{number:int}")
def get_issue(world: World, call: Call) -> Reply:
    return Reply(200, world.issue_json(pull_of(world, call, repo_of(world, call))))


@route("GET", "/repos/{owner}/{repo}/commits/{ref}")
def get_commit(world: World, call: Call) -> Reply:
    repo = repo_of(world, call)
    sha = resolve_ref(repo, call.params["ref"])
    url = f"{world.url}/repos/{repo.full_name}/commits/{sha}"
    person = {"name": "test", "email": "test@example.invalid", "date": "2024-01-01T00:00:00Z"}
    commit = {"message": "", "author": person, "committer": person, "url": url, "comment_count": 0}
    html_url = f"{world.url}/{repo.full_name}/commit/{sha}"
    data = {"sha": sha, "node_id": f"C_{sha}", "url": url, "html_url": html_url, "commit": commit}
    return Reply(200, data | {"parents": [], "files": []})


@route("GET", "/repos/{owner}/{repo}/collaborators/{user}/permission")
def get_permission(world: World, call: Call) -> Reply:
    repo, login = repo_of(world, call), call.params["user"]
    role = repo.role(login)
    rank = ROLE_RANK.index(role)
    levels = {"admin": "admin", "maintain": "maintain", "push": "write", "triage": "triage", "pull": "read"}
    flags = {name: rank >= ROLE_RANK.index(level) for name, level in levels.items()}
    user = world.user_json(world.user(login)) | {"permissions": flags, "role_name": role}
    return Reply(200, {"permission": LEGACY_PERMISSION.get(role, "none"), "role_name": role, "user": user})


# -- comments and reactions ------------------------------------------------------------------------------


def comment_body(call: Call) -> str:
    body = (call.body or {}).get("body")
    if not isinstance(body, str):
        raise Refusal(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
    if len(body) > MAX_COMMENT:
        raise invalid(
            "IssueComment",
            "data",
            f"Body is too long (maximum is {MAX_COMMENT} characters)",
            code="unprocessable",
        )
    return body


@route("GET", "/repos/{owner}/{repo}/issues/{number:int}/comments")
def list_comments(world: World, call: Call) -> Reply:
    pull = pull_of(world, call, repo_of(world, call))
    comments = world.comments_on(pull.repo.full_name, pull.number)
    return paginate(world, call, [world.comment_json(c) for c in comments])


@route("POST", "/repos/{owner}/{repo}/issues/{number:int}/comments")
def create_comment(world: World, call: Call) -> Reply:
    pull = pull_of(world, call, repo_of(world, call))
    require_write(call, "pull_requests", "issues")
    comment = Comment(world.next_id(), pull.repo, pull.number, comment_body(call), call.token.user)
    world.comments[comment.id] = comment
    data = world.comment_json(comment)
    return Reply(201, data, {"Location": data["url"]})


@route("GET", "/repos/{owner}/{repo}/issues/comments/{id:int}")
def get_comment(world: World, call: Call) -> Reply:
    return Reply(200, world.comment_json(comment_of(world, call)))


@route("PATCH", "/repos/{owner}/{repo}/issues/comments/{id:int}")
def edit_comment(world: World, call: Call) -> Reply:
    comment = comment_of(world, call)
    require_write(call, "pull_requests", "issues")
    body = comment_body(call)
    comment.edits.append(comment.body)
    comment.body, comment.updated_at = body, now()
    return Reply(200, world.comment_json(comment))


@route("DELETE", "/repos/{owner}/{repo}/issues/comments/{id:int}")
def delete_comment(world: World, call: Call) -> Reply:
    del world.comments[comment_of(world, call).id]
    return Reply(204)


@route("GET", "/repos/{owner}/{repo}/issues/comments/{id:int}/reactions")
def list_reactions(world: World, call: Call) -> Reply:
    return paginate(world, call, [world.reaction_json(r) for r in comment_of(world, call).reactions])


@route("POST", "/repos/{owner}/{repo}/issues/comments/{id:int}/reactions")
def create_reaction(world: World, call: Call) -> Reply:
    comment, content = comment_of(world, call), (call.body or {}).get("content")
    if content not in REACTIONS:
        raise invalid("Reaction", "content", "content is not included in the list")
    for reaction in comment.reactions:
        if reaction.user is call.token.user and reaction.content == content:
            return Reply(200, world.reaction_json(reaction))
    reaction = Reaction(world.next_id(), call.token.user, content)
    comment.reactions.append(reaction)
    return Reply(201, world.reaction_json(reaction))


# -- users, teams, rate limit --------------------------------------------------------------------------


@route("GET", "/user")
def get_authenticated_user(world: World, call: Call) -> Reply:
    if call.token.installation_id is not None:
        raise Refusal(403, "Resource not accessible by integration")
    return Reply(200, world.user_json(call.token.user))


@route("GET", "/users/{login}")
def get_user(world: World, call: Call) -> Reply:
    return Reply(200, world.user_json(world.user(call.params["login"])))


@route("GET", "/orgs/{org}")
def get_org(world: World, call: Call) -> Reply:
    org = world.user_json(world.user(call.params["org"], type="Organization"))
    url = f"{world.url}/orgs/{call.params['org']}"  # an organization's own URL, not its /users/ one
    return Reply(
        200, org | {"url": url, "repos_url": f"{url}/repos", "members_url": f"{url}/members{{/member}}"}
    )


def team_of(world: World, call: Call) -> Team:
    by_slug = (call.params.get("org"), call.params.get("slug"))
    by_id = (call.params.get("org_id"), call.params.get("team_id"))
    for team in world.teams.values():
        if (team.org.login, team.slug) == by_slug or (str(team.org.id), str(team.id)) == by_id:
            return team
    raise Refusal(404, "Not Found")


@route("GET", "/orgs/{org}/teams/{slug}")
def get_team(world: World, call: Call) -> Reply:
    return Reply(200, world.team_json(team_of(world, call)))


def team_membership(world: World, call: Call) -> Reply:
    team = team_of(world, call)
    role = team.members.get(call.params["user"])
    if role is None:
        raise Refusal(404, "Not Found")
    url = f"{world.team_json(team)['url']}/memberships/{call.params['user']}"
    return Reply(200, {"url": url, "role": role, "state": "active"})


def team_member(world: World, call: Call) -> Reply:
    team_membership(world, call)
    return Reply(204)


route("GET", "/orgs/{org}/teams/{slug}/memberships/{user}")(team_membership)
route("GET", "/organizations/{org_id}/team/{team_id}/memberships/{user}")(team_membership)
route("GET", "/organizations/{org_id}/team/{team_id}/members/{user}")(team_member)


@route("GET", "/rate_limit")
def get_rate_limit(world: World, call: Call) -> Reply:
    core = {
        "limit": 5000,
        "used": world.rate_used,
        "remaining": 5000 - world.rate_used,
        "reset": int(now().timestamp()) + 3600,
        "resource": "core",
    }
    search = {"limit": 30, "used": 0, "remaining": 30, "reset": core["reset"], "resource": "search"}
    graphql = core | {"used": 0, "remaining": 5000, "resource": "graphql"}
    return Reply(200, {"resources": {"core": core, "search": search, "graphql": graphql}, "rate": core})


# -- the App (JWT) and its installations -----------------------------------------------------------------


def installation_account(world: World, installation_id: int) -> User:
    for repo in world.repos.values():
        if repo.installation_id == installation_id:
            return repo.owner
    raise Refusal(404, "Not Found")


@route("GET", "/app", auth="app")
def get_app(world: World, call: Call) -> Reply:
    installations = {repo.installation_id for repo in world.repos.values()} - {None}
    return Reply(200, world.app_json() | {"installations_count": len(installations)})


@route("GET", "/app/installations/{id:int}", auth="app")
def get_installation(world: World, call: Call) -> Reply:
    installation_id = int(call.params["id"])
    return Reply(200, world.installation_json(installation_id, installation_account(world, installation_id)))


@route("GET", "/repos/{owner}/{repo}/installation", auth="app")
def get_repo_installation(world: World, call: Call) -> Reply:
    repo = world.repo_named(f"{call.params['owner']}/{call.params['repo']}")
    if repo is None or repo.installation_id is None:
        raise Refusal(404, "Not Found")
    return Reply(200, world.installation_json(repo.installation_id, repo.owner))


@route("POST", "/app/installations/{id:int}/access_tokens", auth="app")
def create_access_token(world: World, call: Call) -> Reply:
    installation_id = int(call.params["id"])
    installation_account(world, installation_id)
    token = world.issue_installation_token(installation_id)
    expires_at = token.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    data = {"token": token.value, "expires_at": expires_at, "repository_selection": "selected"}
    return Reply(201, data | {"permissions": world.app_json()["permissions"]})
