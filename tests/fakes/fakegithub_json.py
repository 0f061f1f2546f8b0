"""api.github.com's JSON shapes for FakeGitHub's objects (a mixin of `World`).

Every URL-like field is built on the fake's own base URL, so PyGithub follows links back to the fake:
it refuses to follow a URL whose host or port differs from its `base_url`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from .fakegithub_state import CheckRun, Comment, Pull, Reaction, Repo, Team, User

REACTIONS = frozenset({"+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"})
APP_PERMISSIONS = {
    "checks": "write",
    "contents": "read",
    "issues": "write",
    "metadata": "read",
    "members": "read",
    "pull_requests": "write",
}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GitHubJSON:
    """Reads from `World`: `url`, `app_id`, `app_slug`, `app_owner`, `bot`, `pulls`, `comments_on()`."""

    def user_json(self, user: User) -> dict:
        base, login = self.url, quote(user.login)
        html = f"{base}/apps/{self.app_slug}" if user is self.bot else f"{base}/{login}"
        return {
            "login": user.login,
            "id": user.id,
            "node_id": f"U_{user.id}",
            "type": user.type,
            "avatar_url": f"{base}/avatars/u/{user.id}",
            "gravatar_id": "",
            "url": f"{base}/users/{login}",
            "html_url": html,
            "repos_url": f"{base}/users/{login}/repos",
            "site_admin": False,
        }

    def repo_json(self, repo: Repo, fork_owner: User | None = None) -> dict:
        """The repository, or with `fork_owner` that user's fork of it (the head repo of a fork PR)."""
        owner = fork_owner or repo.owner
        base, full = self.url, f"{owner.login}/{repo.name}"
        api, repo_id = f"{base}/repos/{full}", repo.id if fork_owner is None else owner.id * 1000 + repo.id
        return {
            "id": repo_id,
            "node_id": f"R_{repo_id}",
            "name": repo.name,
            "full_name": full,
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "owner": self.user_json(owner),
            "html_url": f"{base}/{full}",
            "description": None,
            "fork": fork_owner is not None,
            "url": api,
            "clone_url": f"{base}/{full}.git",
            "pulls_url": f"{api}/pulls{{/number}}",
            "issues_url": f"{api}/issues{{/number}}",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "commits_url": f"{api}/commits{{/sha}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "default_branch": repo.default_branch,
            "archived": False,
            "disabled": False,
        }

    def pull_json(self, pull: Pull) -> dict:
        base, full, n = self.url, pull.repo.full_name, pull.number
        api, html = f"{base}/repos/{full}", f"{base}/{full}/pull/{n}"

        def part(ref: str, sha: str, fork_owner: User | None) -> dict:
            owner = fork_owner or pull.repo.owner
            return {
                "label": f"{owner.login}:{ref}",
                "ref": ref,
                "sha": sha,
                "user": self.user_json(owner),
                "repo": self.repo_json(pull.repo, fork_owner),
            }

        base_sha = pull.repo.branches.get(pull.base_ref, "0" * 40)
        return {
            "url": f"{api}/pulls/{n}",
            "id": pull.id,
            "node_id": f"PR_{pull.id}",
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": f"{api}/issues/{n}",
            "commits_url": f"{api}/pulls/{n}/commits",
            "comments_url": f"{api}/issues/{n}/comments",
            "review_comments_url": f"{api}/pulls/{n}/comments",
            "statuses_url": f"{api}/statuses/{pull.head_sha}",
            "number": n,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "body": None,
            "user": self.user_json(pull.user),
            "labels": [],
            "draft": pull.draft,
            "merged": False,
            "created_at": iso(pull.created_at),
            "updated_at": iso(pull.created_at),
            "closed_at": None,
            "merged_at": None,
            "author_association": "CONTRIBUTOR" if pull.fork else "MEMBER",
            "head": part(pull.head_ref, pull.head_sha, pull.user if pull.fork else None),
            "base": part(pull.base_ref, base_sha, None),
        }

    def issue_json(self, pull: Pull) -> dict:
        data = self.pull_json(pull)
        api = f"{self.url}/repos/{pull.repo.full_name}/issues/{pull.number}"
        keep = (
            "id",
            "node_id",
            "number",
            "title",
            "user",
            "labels",
            "state",
            "locked",
            "body",
            "created_at",
            "updated_at",
            "closed_at",
            "author_association",
            "html_url",
            "draft",
        )
        return {key: data[key] for key in keep} | {
            "url": api,
            "repository_url": f"{self.url}/repos/{pull.repo.full_name}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "labels_url": f"{api}/labels{{/name}}",
            "comments": len(self.comments_on(pull.repo.full_name, pull.number)),
            "pull_request": {
                "url": data["url"],
                "html_url": data["html_url"],
                "diff_url": data["diff_url"],
                "patch_url": data["patch_url"],
                "merged_at": None,
            },
        }

    def comment_json(self, comment: Comment) -> dict:
        base, full = self.url, comment.repo.full_name
        url = f"{base}/repos/{full}/issues/comments/{comment.id}"
        counts = {content: 0 for content in sorted(REACTIONS)}
        for reaction in comment.reactions:
            counts[reaction.content] += 1
        role = comment.repo.roles.get(comment.user.login, "none")
        return {
            "id": comment.id,
            "node_id": f"IC_{comment.id}",
            "url": url,
            "body": comment.body,
            "html_url": f"{base}/{full}/pull/{comment.issue_number}#issuecomment-{comment.id}",
            "issue_url": f"{base}/repos/{full}/issues/{comment.issue_number}",
            "user": self.user_json(comment.user),
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at),
            "author_association": "NONE" if role in ("none", "read") else "COLLABORATOR",
            "performed_via_github_app": self.app_json() if comment.user is self.bot else None,
            "reactions": {"url": f"{url}/reactions", "total_count": len(comment.reactions)} | counts,
        }

    def reaction_json(self, reaction: Reaction) -> dict:
        return {
            "id": reaction.id,
            "node_id": f"REA_{reaction.id}",
            "user": self.user_json(reaction.user),
            "content": reaction.content,
            "created_at": iso(reaction.created_at),
        }

    def check_run_json(self, check: CheckRun) -> dict:
        base, full = self.url, check.repo.full_name
        url = f"{base}/repos/{full}/check-runs/{check.id}"
        pulls = [p for p in self.pulls.values() if p.repo is check.repo and p.head_sha == check.head_sha]
        return {
            "id": check.id,
            "node_id": f"CR_{check.id}",
            "name": check.name,
            "head_sha": check.head_sha,
            "external_id": check.external_id or "",
            "url": url,
            "html_url": f"{base}/{full}/runs/{check.id}",
            "details_url": check.details_url or f"{base}/apps/{self.app_slug}",
            "status": check.status,
            "conclusion": check.conclusion,
            "started_at": iso(check.started_at),
            "completed_at": iso(check.completed_at) if check.completed_at else None,
            "output": {"title": None, "summary": None, "text": None}
            | check.output
            | {"annotations_count": 0, "annotations_url": f"{url}/annotations"},
            "check_suite": {"id": check.id + 500000},
            "app": self.app_json(),
            "pull_requests": [
                {
                    "url": f"{base}/repos/{full}/pulls/{p.number}",
                    "id": p.id,
                    "number": p.number,
                    "head": {"ref": p.head_ref, "sha": p.head_sha},
                    "base": {"ref": p.base_ref, "sha": p.repo.branches.get(p.base_ref, "")},
                }
                for p in pulls
                if not p.fork
            ],
        }

    def app_json(self) -> dict:
        return {
            "id": self.app_id,
            "slug": self.app_slug,
            "node_id": f"A_{self.app_id}",
            "name": self.app_slug,
            "owner": self.user_json(self.app_owner),
            "description": "",
            "external_url": f"{self.url}/apps/{self.app_slug}",
            "html_url": f"{self.url}/apps/{self.app_slug}",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "permissions": APP_PERMISSIONS,
            "events": ["check_run", "issue_comment", "pull_request"],
        }

    def installation_json(self, installation_id: int, account: User) -> dict:
        base = self.url
        return {
            "id": installation_id,
            "account": self.user_json(account),
            "app_id": self.app_id,
            "app_slug": self.app_slug,
            "target_id": account.id,
            "target_type": account.type,
            "access_tokens_url": f"{base}/app/installations/{installation_id}/access_tokens",
            "repositories_url": f"{base}/installation/repositories",
            "repository_selection": "selected",
            "html_url": f"{base}/organizations/{account.login}/settings/installations/{installation_id}",
            "permissions": APP_PERMISSIONS,
            "events": ["check_run", "issue_comment", "pull_request"],
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "single_file_name": None,
            "suspended_at": None,
        }

    def team_json(self, team: Team) -> dict:
        url = f"{self.url}/organizations/{team.org.id}/team/{team.id}"
        return {
            "id": team.id,
            "node_id": f"T_{team.id}",
            "url": url,
            "name": team.slug,
            "slug": team.slug,
            "html_url": f"{self.url}/orgs/{team.org.login}/teams/{team.slug}",
            "description": None,
            "privacy": "closed",
            "permission": "pull",
            "members_url": f"{url}/members{{/member}}",
            "repositories_url": f"{url}/repos",
            "parent": None,
        }
