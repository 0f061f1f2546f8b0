"""Keeps each run's Slack message up to date (posted once, then `chat.update`), and delivers private
replies (to the command's `response_url`, else as an ephemeral message). Called by the report outbox:
a failed call is retried later, and an update that failed is retried as an update, never reposted."""

from bot.pipeline import Pipeline
from bot.slack.clients import RedactingWebClient, RedactingWebhookClient
from bot.slack.targets import MessageTarget, Person, ReplyTarget
from bot.slack.views import run_message
from bot.store import Report
from bot.store.models import utcnow


def post_reply(pipeline: Pipeline, to: Person, text: str, public: bool = False) -> str:
    """Queue a reply to the person; returns the text."""
    response_type = "in_channel" if public else "ephemeral"
    pipeline.reports.post(ReplyTarget(**to.model_dump(), text=text, response_type=response_type))
    return text


class SlackReporter:
    def __init__(self, client: RedactingWebClient):
        self.client = client

    def sync(self, pipeline: Pipeline, report: Report) -> dict:
        run = pipeline.run(report.run_id)
        comparison = pipeline.comparison_for(run.id)
        ctx = pipeline.report_context(comparison) if comparison is not None else None
        position = pipeline.queue.position(run.id)
        target = MessageTarget.model_validate(report.target)
        message = run_message(
            run,
            comparison,
            ctx,
            utcnow(),
            position,
            pipeline.tiers,
            target.pull_request,
            target.pull_url,
        )
        memo = dict(report.memo)
        if memo.get("ts"):
            self.client.chat_update(channel=memo["channel"], ts=memo["ts"], **message)
        else:
            posted = self.client.chat_postMessage(channel=target.channel, **message)
            memo |= {"channel": posted["channel"], "ts": posted["ts"]}
        return memo

    def reply(self, pipeline: Pipeline, report: Report) -> dict:
        target = ReplyTarget.model_validate(report.target)
        if target.response_url:
            answer = RedactingWebhookClient(target.response_url, redact=self.client.redact).send(
                text=target.text, response_type=target.response_type, replace_original=False
            )
            if answer.status_code == 200:
                return {"sent": "response_url"}
            # expired (30 minutes) or refused: say it directly instead
        self.client.chat_postEphemeral(channel=target.channel, user=target.user, text=target.text)
        return {"sent": "ephemeral"}
