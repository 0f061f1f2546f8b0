"""Delivers one-off PR messages from the report outbox: a reaction on a comment and a reply to it.

Idempotent: GitHub answers an existing reaction with 200 instead of adding a second, and a reply is
found by its hidden marker among the bot's comments before one is posted.
"""

import re

from github import GithubException

from bot.github.client import GitHubApi
from bot.github.reporter import find_comment
from bot.pipeline import Pipeline
from bot.store import Report


class GitHubReplies:
    def __init__(self, api: GitHubApi):
        self.api = api

    def sync(self, pipeline: Pipeline, report: Report) -> dict:
        target, memo = report.target, dict(report.memo)
        installation = target.get("installation")
        pull = self.api.repo(installation, target["repository"]).get_pull(target["pull_request"])
        if target.get("reaction") and not memo.get("reacted"):
            try:
                pull.get_issue_comment(target["comment_id"]).create_reaction(target["reaction"])
            except GithubException as exc:
                if exc.status != 404:  # a deleted comment needs no reaction
                    raise
            memo["reacted"] = True
        body = target.get("body")
        if body:
            marker = re.match(r"<!--.*?-->", body).group(0)
            if find_comment(pull, marker, self.api.bot_login(installation), memo) is None:
                memo["comment_id"] = pull.create_issue_comment(body).id
        return memo
