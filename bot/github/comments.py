"""PR comment commands: acknowledged with 👀, answered with a reply when there is something to say.

Who may do what: anyone may ask for help; the PR's author and collaborators with write access may run
and cancel; only collaborators with write access may approve a fork's commit. Tiers may restrict
themselves further (users, teams, a minimum role). Replies and reactions go through the report outbox,
so a GitHub outage delays them and never loses or doubles them.
"""

from dataclasses import dataclass
from functools import cached_property

from bot.errors import TierbotError
from bot.events import Event
from bot.github import commands
from bot.github.commands import Command
from bot.github.pull_requests import PullInfo, installation_of
from bot.github.router import GitHubDoor, Router
from bot.github.targets import ReplyTarget
from bot.github.views import render
from bot.render.run_states import approval_needed
from bot.store import RunState
from bot.tiers import Requester, role_at_least

router = Router()
REPLY_MARKER = "<!-- tierbot:reply"


@dataclass
class Answer:
    outcome: str  # for the delivery's record
    reply: str | None = None  # for the commenter, in Markdown the bot wrote
    refusal: str | None = None  # why not, in words that may quote the commenter: shown as code

    @property
    def says(self) -> bool:
        return bool(self.reply or self.refusal)


class Commenter:
    """Who commented where; the PR and the commenter's role are fetched once, when first needed."""

    def __init__(self, door: GitHubDoor, event: Event):
        payload = event.payload
        self.door, self.pipeline = door, door.pipeline
        self.repository = payload["repository"]["full_name"]
        self.number = payload["issue"]["number"]
        self.installation = installation_of(event)
        self.login = payload["comment"]["user"]["login"]

    @cached_property
    def repo(self):
        return self.door.api.repo(self.installation, self.repository)

    @cached_property
    def pull(self) -> PullInfo:
        return PullInfo.from_api(self.repository, self.repo.get_pull(self.number))

    @cached_property
    def role(self) -> str | None:
        return self.door.api.role(self.repo, self.login)

    @cached_property
    def requester(self) -> Requester:
        teams = self.pipeline.tiers.github_teams()
        mine = self.door.api.teams_of(self.installation, self.login, teams) if teams else ()
        return Requester(name=self.login, github_login=self.login, github_teams=mine, github_role=self.role)

    def may_write(self) -> bool:
        return role_at_least(self.role, "write")

    def may_run(self) -> bool:
        return self.login == self.pull.author or self.may_write()


@router.register("issue_comment", actions=("created",))
def on_comment(event: Event, door: GitHubDoor) -> str:
    issue, comment = event.payload["issue"], event.payload["comment"]
    body = comment.get("body") or ""
    if not issue.get("pull_request"):
        return "ignored: a comment on an issue, not on a pull request"
    if comment["user"].get("type") == "Bot" or REPLY_MARKER in body:
        return "ignored: a bot's comment"
    found = commands.parse(body)
    if not found:
        return "no command"
    who = Commenter(door, event)
    if any(command.verb not in ("help", "invalid") for command in found):
        # Every read of GitHub before any command acts: should one fail, the delivery is handled again
        # later, and no command has run twice.
        _ = who.pull, who.requester
    answers = [(command, answer(command, who)) for command in found]
    replies = [(command.line, a) for command, a in answers if a.says]
    text = None
    if replies:
        marker = f"{REPLY_MARKER}-to={comment['id']} -->"
        text = render("reply.md.j2", marker=marker, login=who.login, answers=replies)
    door.pipeline.reports.post(
        ReplyTarget(
            repository=who.repository,
            installation=who.installation,
            pull_request=who.number,
            comment_id=comment["id"],
            reaction="eyes",
            body=text,
        )
    )
    return "; ".join(f"{command.line}: {a.outcome}" for command, a in answers)


def answer(command: Command, who: Commenter) -> Answer:
    if command.verb == "invalid":
        return Answer("not understood", f"Commands: `{commands.USAGE}`.", refusal=command.problem)
    if command.verb == "help":
        return Answer("help", help_text(who))
    if not who.pull.open:
        return Answer("refused: closed", "This pull request is closed; nothing runs for it.")
    if command.verb == "approve":
        return approve(who)
    if not who.may_run():
        return Answer(
            "refused: no permission",
            f"Only the pull request's author and collaborators with write access can do that; "
            f"@{who.login}'s role here is {who.role or 'none'}.",
        )
    if command.verb == "cancel":
        cancelled = who.pipeline.queue.cancel_subject(who.pull.subject)
        if not cancelled:
            return Answer("nothing to cancel", "Nothing to cancel: no run of this pull request is going.")
        return Answer(f"cancelled runs {cancelled}")
    return experiment(who, command.tier)


def experiment(who: Commenter, tier: str | None) -> Answer:
    """`/run experiment`: someone asked for a run, so it runs again even where a run of the same tree
    could be reused."""
    try:
        submission = who.pipeline.submit(who.pull.request(who.installation, who.requester, tier, fresh=True))
    except TierbotError as exc:
        return Answer(f"refused: {exc}", refusal=str(exc))
    head = submission.head
    if head.state == RunState.waiting:
        return Answer(f"run {head.id} waits for approval", f"Run {head.id} waits. {approval_needed(head)}")
    return Answer(f"queued run {head.id} on {head.tier}")


def approve(who: Commenter) -> Answer:
    if not who.may_write():
        return Answer(
            "refused: no permission",
            f"Only collaborators with write access can approve; @{who.login}'s role here is "
            f"{who.role or 'none'}.",
        )
    pull = who.pull
    if not pull.fork:
        return Answer(
            "nothing to approve", "Nothing to approve: this pull request's code is not from a fork."
        )
    released = who.pipeline.approvals.approve(pull.subject, pull.head_sha, who.login)
    if released:
        return Answer(f"approved {pull.head_sha[:7]}: queued runs {released}")
    if who.pipeline.approvals.has_run(pull.subject, pull.head_sha):
        return Answer(f"approved {pull.head_sha[:7]}; it has run already")
    return experiment(who, None)  # opened before tierbot saw it: run it now


def help_text(who: Commenter) -> str:
    tiers = who.pipeline.tiers
    return render("help.md.j2", tiers=tiers.usable_by(who.requester), default_tier=tiers.default)
