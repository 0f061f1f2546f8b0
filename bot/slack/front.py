"""Slack's ways in on the HTTP server: the signed HTTP route (slash commands and interactivity, bolt
verifying the signature and its 5-minute window) and, with an app-level token, the Socket Mode websocket
this process opens, which needs no public URL. Without either setting Slack is not mounted."""

from fastapi.concurrency import run_in_threadpool
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk.errors import SlackApiError
from starlette.requests import Request
from starlette.responses import Response

from bot.doors import Front
from bot.errors import TierbotError
from bot.slack.bolt import create_bolt


def mount(front: Front) -> None:
    settings = front.pipeline.settings
    if settings.slack_signing_secret is None and settings.slack_app_token is None:
        return
    bolt = create_bolt(front.pipeline)

    async def slack_events(request: Request) -> Response:
        with front.timed():
            bolt_request = to_bolt_request(request, await request.body())
            return to_starlette_response(await run_in_threadpool(bolt.dispatch, bolt_request))

    if settings.slack_signing_secret is not None:  # Socket Mode alone needs no public route
        front.route("/slack/events", slack_events)
    if settings.slack_app_token is not None:
        front.connect(lambda: _socket_mode(bolt, settings.slack_app_token.get_secret_value()))


def _socket_mode(bolt: App, token: str):
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(bolt, token)
    try:
        handler.connect()
    except SlackApiError as exc:
        raise TierbotError(
            f"Slack refused TIERBOT_SLACK_APP_TOKEN for Socket Mode ({exc.response.get('error')}): it "
            f"must be an app-level token (xapp-…) with the connections:write scope."
        ) from None
    return handler.close
