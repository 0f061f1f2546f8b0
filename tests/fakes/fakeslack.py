"""A fake Slack Web API: a real HTTP server on 127.0.0.1 that the real slack_sdk and slack_bolt talk to.

    with FakeSlack() as fake:
        fake.add_usergroup("S123", ["U1", "U2"])
        client = WebClient(token=fake.token, base_url=fake.url + "/api/")
        posted = client.chat_postMessage(channel="C1", text="queued")
        client.chat_update(channel="C1", ts=posted["ts"], text="running")
        assert fake.message("C1", posted["ts"])["text"] == "running"
        assert [c.status for c in fake.calls("chat.update")] == [200]
        App(client=client, signing_secret=...)  # slack_bolt: calls auth.test once, here

It is stateful (messages per channel with their edits, ephemerals, Home views, users, user groups; see
`fakeslack_api.Workspace`), authenticates like Slack (the bot token `token` as `Authorization: Bearer` or
a `token` field; none → `not_authed`, wrong → `invalid_auth`, both with HTTP 200; `apps.connections.open`
wants the app-level `app_token` instead, and a token of the wrong kind is `not_allowed_token_type`; that
method answers a URL of a running `fakeslack_socket.FakeSocketMode`), reads JSON and
form-encoded bodies (a form's `blocks`/`attachments`/`view`/`metadata` are JSON strings), enforces Block
Kit limits as Slack does (`invalid_blocks` with the details in `errors` and `response_metadata.messages`),
records every request in `requests`, serves `response_url(name)` for slash commands and interactions,
and can inject failures (`fail_next`) and rate limits (`rate_limit_next`). Methods: `fakeslack_api`.

What slack_sdk (3.48) does that tests meet:
- Every call is a POST, whatever `http_verb` the method wrapper names. `chat.postMessage`, `chat.update`,
  `chat.postEphemeral` and `views.publish` always send `application/json;charset=utf-8` (with or without
  blocks); `auth.test`, `users.info`, `usergroups.users.list`, `conversations.info` and other `params=`
  methods send `application/x-www-form-urlencoded` (auth.test with no body at all), booleans as "1"/"0".
  `client.api_call(name, params=...)` / `data=` is form-encoded too: a `blocks` list there is sent as its
  Python repr unless the caller json.dumps it (the fake answers `invalid_blocks_format`, like Slack).
  Multipart is only for file uploads. The token always travels in `Authorization: Bearer`: a `token=`
  argument is moved from the body into that header.
- Retries: `WebClient()`'s default `retry_handlers` is `[ConnectionErrorRetryHandler()]` only: one
  retry on a connection error (URLError without a response, ConnectionResetError, RemoteDisconnected),
  so a POST whose connection dropped after Slack acted is sent twice. HTTP errors are never retried by
  default: a 429 surfaces at once. `RateLimitErrorRetryHandler` (429 only; sleeps int(`Retry-After`) +
  0–1 s random; `max_retry_count=1`) and `ServerErrorRetryHandler` (500/503) are opt-in, via
  `retry_handlers=[...]` or `slack_sdk.http_retry.all_builtin_retry_handlers()` (both connection + 429).
- Errors: `SlackResponse.validate()` raises `SlackApiError` unless the status is 200 **and** the body
  has `ok: true`; so `ok: false` with 200, a 429 and a 500 all raise it. `err.response["error"]` is the
  code, `err.response.status_code` the HTTP status, `err.response.headers["Retry-After"]` survives on a
  429; a body that is not JSON becomes `{"ok": false, "error": "Received a response in a non-JSON
  format: …"}`.
- `WebhookClient` (what bolt's `respond()` uses for a `response_url`) POSTs JSON and never raises on an
  HTTP error: it returns `WebhookResponse(status_code, body)`. bolt's `App(client=...)` calls
  `auth.test` once when constructed (`token_verification_enabled=True`), and fails if it is not ok.

Where this fake is simpler or stricter than Slack: any channel id can be posted to (no membership, no
DM opening from a user id; `conversations.info` knows only `add_channel`'s); a `response_url` takes any
number of posts (Slack: 5 in 30 minutes) and answers errors as Incoming Webhooks do (HTTP 400, the code
as text); multipart bodies get `invalid_post_type`; a `token` inside a JSON body is accepted (Slack
documents the header for JSON); Block Kit checks cover the common blocks only (see `block_problems`).
"""

import asyncio
import fnmatch
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .fakeslack_api import APP_TOKEN_METHODS, METHODS, Reply, SlackError, Workspace, check_message
from .loopback import ServedFake, read_request

RESPONSE_URL = "response_url"  # the `method` recorded for posts to a response_url
JSON_FIELDS = {  # form fields that carry JSON, and Slack's error when they don't parse
    "blocks": "invalid_blocks_format",
    "attachments": "invalid_attachments",
    "view": "invalid_arguments",
    "metadata": "invalid_metadata_format",
}


@dataclass(frozen=True)
class Recorded:
    """One request as it crossed the wire, and what the fake answered."""

    method: str  # the Web API method ("chat.update"), or "response_url"
    path: str
    headers: dict[str, str]  # lower-cased names
    content_type: str  # "application/json", "application/x-www-form-urlencoded" or ""
    args: dict[str, Any]  # the decoded body (and query), `token` included if it was sent there
    status: int
    response: Any
    injected: bool  # the answer came from fail_next / rate_limit_next
    response_headers: dict[str, str]
    at: float  # time.time() when the fake answered: a retry's wait is measured from here


@dataclass
class Fault:
    method: str  # glob over Web API method names
    times: int
    reply: Callable[[], Reply]
    applied: bool  # carry the request out, then answer with the fault (a 500 that hides a success)


class FakeSlack(ServedFake, Workspace):
    """The server around a `Workspace`; see the module docstring. Attributes tests use besides
    Workspace's: `url`, `token`, `requests`, `errors`."""

    def __init__(self, team_id: str = "T0FAKE", team: str = "acme", bot_user_id: str = "U0BOT"):
        super().__init__(team_id, team, bot_user_id)
        self.url = ""
        self.requests: list[Recorded] = []
        self.errors: list[str] = []  # tracebacks of the fake's own bugs (answered with 500)
        self._faults: list[Fault] = []

    # -- what crossed the wire ------------------------------------------------------------------------

    def response_url(self, name: str) -> str:
        """A response_url to hand the bot (as a slash command or interaction would); see responses(name)."""
        return f"{self.url}/response/{name}"

    def calls(self, method: str = "*") -> list[Recorded]:
        """Recorded requests whose Web API method matches this glob ("chat.*"), oldest first."""
        with self.lock:
            return [r for r in self.requests if fnmatch.fnmatchcase(r.method, method)]

    # -- fault injection ---------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error: str = "internal_error",
        status: int = 200,
        times: int = 1,
        applied: bool = False,
    ) -> None:
        """The next `times` calls of `method` (a glob) answer `{"ok": false, "error": error}` with `status`.
        With applied=True the call is carried out first and only its answer is lost."""
        self._add_fault(Fault(method, times, lambda: Reply(status, {"ok": False, "error": error}), applied))

    def rate_limit_next(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        """The next `times` calls of `method` get HTTP 429, `Retry-After: retry_after` and `ratelimited`."""

        def reply() -> Reply:
            return Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})

        self._add_fault(Fault(method, times, reply, applied=False))

    def _add_fault(self, fault: Fault) -> None:
        with self.lock:
            self._faults.append(fault)

    def _take_fault(self, method: str) -> Fault | None:
        for fault in self._faults:
            if fnmatch.fnmatchcase(method, fault.method):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # -- the server ------------------------------------------------------------------------------------

    async def _asgi(self, scope: dict, receive: Any, send: Any) -> None:
        raw, headers = await read_request(scope, receive)
        query = scope["query_string"].decode("latin-1")
        reply = await asyncio.to_thread(self.handle, scope["path"], query, headers, raw)
        if isinstance(reply.body, dict):
            content, kind = json.dumps(reply.body).encode(), b"application/json; charset=utf-8"
        else:
            content, kind = reply.body.encode(), b"text/plain; charset=utf-8"
        response_headers = [(b"content-type", kind)]
        response_headers += [(k.lower().encode(), str(v).encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": response_headers})
        await send({"type": "http.response.body", "body": content})

    def handle(self, path: str, query: str, headers: dict, raw: bytes) -> Reply:
        """Answer one request (any thread) and record it."""
        prefix, _, name = path.lstrip("/").partition("/")
        method = {"api": name, "response": RESPONSE_URL}.get(prefix, "")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        with self.lock:
            try:
                args = self._decode(content_type, raw, query)
                problem = None
            except SlackError as error:
                args, problem = {}, error
            fault = self._take_fault(method) if method else None
            if fault is not None and not fault.applied:
                reply = fault.reply()
            else:
                reply = self._dispatch(method, name, headers, args, problem)
                reply = fault.reply() if fault is not None else reply
            if method == RESPONSE_URL and isinstance(reply.body, dict):  # webhooks answer in plain text
                reply.body = "ok" if reply.body.get("ok") else reply.body["error"]
            answered = {k.lower(): str(v) for k, v in reply.headers.items()}
            self.requests.append(
                Recorded(
                    method,
                    path,
                    headers,
                    content_type,
                    args,
                    reply.status,
                    reply.body,
                    fault is not None,
                    answered,
                    time.time(),
                )
            )
            return reply

    def _decode(self, content_type: str, raw: bytes, query: str) -> dict[str, Any]:
        args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        text = raw.decode("utf-8", "replace")
        if content_type == "application/json":
            try:
                body = json.loads(text) if text.strip() else {}
            except ValueError:
                raise SlackError("invalid_json") from None
            if not isinstance(body, dict):
                raise SlackError("invalid_json")
            args |= body
        elif content_type in ("application/x-www-form-urlencoded", "") or not text:
            args |= dict(parse_qsl(text, keep_blank_values=True))
        else:
            raise SlackError("invalid_post_type")
        for key, error in JSON_FIELDS.items():
            if isinstance(args.get(key), str):
                try:
                    args[key] = json.loads(args[key])
                except ValueError:
                    raise SlackError(error) from None
        return args

    def _dispatch(
        self, method: str, name: str, headers: dict, args: dict, problem: SlackError | None
    ) -> Reply:
        try:
            if method == RESPONSE_URL:
                return self._respond(name, args, problem)
            if not method:
                return Reply(404, "Not Found")
            if problem is not None:
                raise problem
            self._authenticate(method, headers, args)
            handler = METHODS.get(method)
            if handler is None:
                raise SlackError("unknown_method", req_method=method)
            arguments = {k: v for k, v in args.items() if k != "token"}
            return Reply(200, {"ok": True} | handler(self, arguments))
        except SlackError as error:
            return error.reply
        except Exception as exc:  # a bug in the fake, not an answer Slack would give
            self.errors.append(traceback.format_exc())
            return Reply(500, {"ok": False, "error": f"FakeSlack bug: {exc!r}"})

    def _respond(self, name: str, payload: dict, problem: SlackError | None) -> Reply:
        """A post to a response_url: checked like a message, then stored as given."""
        if problem is not None:
            return Reply(400, "invalid_payload")
        try:
            check_message(payload, require_content=not payload.get("delete_original"))
        except SlackError as error:
            return Reply(400, error.reply.body["error"])
        self._responses.setdefault(name, []).append(payload)
        return Reply(200, "ok")

    def _authenticate(self, method: str, headers: dict, args: dict) -> None:
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        token = credential.strip() if scheme.lower() == "bearer" else ""
        token = token or str(args.get("token", "")).strip()
        if not token:
            raise SlackError("not_authed")
        if token == (self.app_token if method in APP_TOKEN_METHODS else self.token):
            return
        if token in (self.token, self.app_token):  # a good token, of the wrong kind for this method
            raise SlackError("not_allowed_token_type")
        raise SlackError("invalid_auth")
