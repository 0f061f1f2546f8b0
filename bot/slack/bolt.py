"""The Slack app's front: slack-bolt verifies each request (signature, 5-minute window), and every
listener answers within Slack's 3 seconds by parsing and recording only; workers do the rest.

A slash command is recorded once per `trigger_id` and a button once per (action, choice, user), so
Slack's retries and double clicks never start a second run.
"""

import re

from slack_bolt import App

from bot.pipeline import Pipeline
from bot.redact import Redactor
from bot.render.templates import slack_code, slack_escaped
from bot.settings import Settings
from bot.slack import grammar
from bot.slack.clients import RedactingWebClient
from bot.slack.retry import WaitAsAsked
from bot.slack.views import help_text, tiers_text


def web_client(settings: Settings, redact: Redactor) -> RedactingWebClient:
    """slack_sdk retries only dropped connections by default; rate limits and 5xx are retried here."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    retries = settings.slack_retries
    return RedactingWebClient(
        redact=redact,
        token=token,
        base_url=settings.slack_api_url,
        retry_handlers=[WaitAsAsked(max_retry_count=retries)],
    )


def create_bolt(pipeline: Pipeline) -> App:
    settings = pipeline.settings
    secret = settings.slack_signing_secret
    app = App(
        client=web_client(settings, pipeline.redactor),
        signing_secret=secret.get_secret_value() if secret else None,
        # Without a signing secret there is no HTTP route, only Socket Mode's authenticated websocket.
        request_verification_enabled=secret is not None,
        process_before_response=True,  # listeners only record; the answer carries their ack
        token_verification_enabled=False,  # no call to Slack while the server starts
    )
    record = pipeline.deliveries.record

    @app.command("/run")
    def run_command(ack, body: dict) -> None:
        # The answer is the ack itself: it leaves for Slack here, so it passes the redactor here.
        ack(response_type="ephemeral", text=pipeline.redactor(command_answer(body)))

    def command_answer(body: dict) -> str:
        try:
            command = grammar.parse(body.get("text", ""))
        except grammar.GrammarError as exc:  # it quotes what was typed
            return slack_escaped(str(exc))
        if command.verb == "help":
            return help_text(pipeline.tiers)
        if command.verb == "tiers":
            return tiers_text(pipeline.tiers)
        new = record(f"slack:{body['trigger_id']}", "slack", "command", command.verb, body)
        said = slack_code(f"/run {body.get('text', '').strip()}")
        if not new:
            return f"Already on it: {said}."
        if command.verb == "link":
            return "Asking GitHub for a code to link your account; it follows here, privately."
        ahead = ""
        tier = command.tier or pipeline.tiers.default.name
        if command.verb == "experiment" and tier in pipeline.tiers.names():  # unknown: answered later
            ahead = f" {pipeline.queue.waiting_on(tier)} runs are ahead on tier `{tier}`."
        return f"On it: {said}.{ahead} Its message follows here."

    @app.action(re.compile(r"^tierbot_(cancel|rerun|logs|rollback)$"))
    def button(ack, body: dict, action: dict) -> None:
        ack()
        choice = (action.get("selected_option") or {}).get("value") or action.get("value", "")
        key = f"{action['action_id']}:{choice}:{body['user']['id']}"  # a double click is one click
        if action["action_id"] == "tierbot_logs":  # every click shows the log as it is now
            key += f":{action.get('action_ts')}"
        record(f"slack:{key}", "slack", "action", action["action_id"], body)

    @app.event("app_home_opened")
    def home_opened(ack, body: dict) -> None:
        ack()
        if body["event"].get("tab", "home") == "home":
            record(f"slack:{body['event_id']}", "slack", "event", "app_home_opened", body)

    return app
