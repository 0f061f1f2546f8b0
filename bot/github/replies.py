"""Delivers one-off PR messages from the report outbox: a reaction on a comment and a reply to it.

Idempotent: GitHub answers an existing reaction with 200 instead of adding a second, and a reply is
found (by `PullComments`, from the hidden marker its body starts with) before one is posted.
"""

from github import GithubException

from bot.github.client import GitHubApi
from bot.github.reporter import PullComments
from bot.github.targets import ReplyTarget
from bot.pipeline import Pipeline
from bot.store import Report


class GitHubReplies:
    def __init__(self, api: GitHubApi):
        self.api = api

    def sync(self, pipeline: Pipeline, report: Report) -> dict:
        target, memo = ReplyTarget.model_validate(report.target), dict(report.memo)
        installation = target.installation
        pull = self.api.repo(installation, target.repository).get_pull(target.pull_request)
        if target.reaction and not memo.get("reacted"):
            try:
                pull.get_issue_comment(target.comment_id).create_reaction(target.reaction)
            except GithubException as exc:
                if exc.status != 404:  # a deleted comment needs no reaction
                    raise
            memo["reacted"] = True
        body = target.body
        if body:
            login = self.api.bot_login(installation)
            comments = PullComments(pipeline.db, target.repository, pull, login)
            marker = body.partition("\n")[0]
            if comments.find(marker) is None:
                comments.post(marker, body)
        return memo
