"""Where the GitHub door shows a run (a pull request's check run and sticky comment) and delivers a
reply to a PR comment's commands (`bot.targets`)."""

from typing import ClassVar

from bot.targets import PullRequestRef, Target


class PullRequestTarget(Target):
    outbox: ClassVar[str] = "github"

    repository: str
    pull_request: int
    head_sha: str | None = None
    installation: int | None = None
    url: str | None = None
    # False: a run against another base than the PR's own. It only mentions the PR (no sticky comment,
    # a check run name branch protection cannot require), under `versus`.
    gating: bool = True
    versus: str | None = None

    def about(self) -> PullRequestRef:
        return PullRequestRef(repository=self.repository, number=self.pull_request, url=self.url)


class ReplyTarget(Target):
    outbox: ClassVar[str] = "github_reply"

    repository: str
    pull_request: int
    installation: int | None = None
    comment_id: int  # the comment whose commands are answered: it gets the reaction
    reaction: str | None = None
    body: str | None = None  # the reply, when any command says something
