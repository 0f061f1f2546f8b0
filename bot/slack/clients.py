"""slack_sdk's clients with the redactor at the one place every call leaves: `api_call` for the Web API
(messages, updates, ephemeral replies, App Home) and `send_dict` for `response_url` replies."""

from typing import Any

from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient, WebhookResponse

from bot.redact import Redactor


class RedactingWebClient(WebClient):
    def __init__(self, *args: Any, redact: Redactor, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.redact = redact

    def api_call(self, api_method: str, *, json=None, data=None, params=None, **kwargs: Any):
        json, data, params = self._text(json), self._text(data), self._text(params)
        return super().api_call(api_method, json=json, data=data, params=params, **kwargs)

    def _text(self, arguments: dict | None) -> dict | None:
        """The arguments redacted, but for a `token` one: that is a credential slack_sdk moves into the
        Authorization header (`apps.connections.open` passes the app token so), not text for people."""
        if not arguments:
            return arguments
        return {k: v if k == "token" else self.redact.data(v) for k, v in arguments.items()}


class RedactingWebhookClient(WebhookClient):
    def __init__(self, url: str, *, redact: Redactor, **kwargs: Any):
        super().__init__(url, **kwargs)
        self.redact = redact

    def send_dict(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> WebhookResponse:
        return super().send_dict(self.redact.data(body), headers)
