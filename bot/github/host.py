"""The GitHub door's answer to `bot.doors.CodeHost`: roles, teams and a branch's pull request, asked
through the App's installation on the repository (or the token), as PR commands ask them."""

from github import GithubException

from bot.github.client import GitHubApi
from bot.github.pull_requests import PullInfo
from bot.pipeline import Pipeline
from bot.request import RunRequest, is_owner_name
from bot.tiers import Requester


class GitHubHost:
    def __init__(self, pipeline: Pipeline):
        self.api = GitHubApi(pipeline.settings, pipeline.redactor)

    @property
    def configured(self) -> bool:
        return self.api.configured

    def role(self, repository: str, login: str) -> str | None:
        if not is_owner_name(repository):
            return None
        try:
            repo = self.api.repo(self.api.installation_for(repository), repository)
        except GithubException as exc:
            if exc.status == 404:  # not installed there, or no such repository: nobody's role
                return None
            raise
        return self.api.role(repo, login)

    def teams(self, repository: str, login: str, teams: set[str]) -> tuple[str, ...]:
        return self.api.teams_of(self.api.installation_for(repository), login, teams)

    def pull_request_run(
        self, repository: str, branch: str, requester: Requester, tier: str | None, base: str | None
    ) -> RunRequest | None:
        found = self.api.open_pull(repository, branch)
        if found is None:
            return None
        installation, pull = found
        return PullInfo.from_api(repository, pull).request(installation, requester, tier, base=base)
