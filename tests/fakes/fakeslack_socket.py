"""A fake Slack Socket Mode endpoint: a real websocket server on 127.0.0.1 that the real slack_sdk
`SocketModeClient` (what slack_bolt's `SocketModeHandler` runs) connects to, beside a `FakeSlack`.

    with FakeSlack() as slack, FakeSocketMode(slack) as socket_mode:
        SocketModeHandler(App(client=WebClient(base_url=slack.url + "/api/"), ...), slack.app_token).connect()
        link = socket_mode.link()                          # the connection the client opened
        envelope_id = socket_mode.slash_command({"command": "/run", "text": "help", ...})
        assert socket_mode.ack(envelope_id)["payload"]["text"] == "…"

The protocol (docs.slack.dev/apis/events-api/using-socket-mode), as the fake speaks it:
- The client calls `apps.connections.open` on the Web API with the app-level token (`slack.app_token`) and
  gets a one-time URL, `ws://127.0.0.1:PORT/link/?ticket=…&app_id=A0FAKE` (Slack's is wss://); a ticket
  that was not issued, or was used already, is refused with HTTP 401 (Slack's exact answer is a guess).
- On connecting the client gets `{"type": "hello", …}`; then envelopes: `{"envelope_id", "type":
  "slash_commands" | "interactive" | "events_api", "payload", "accepts_response_payload"}` (events also
  carry `retry_attempt` and `retry_reason`). The client acks each with `{"envelope_id"}` plus, where
  `accepts_response_payload`, a `payload` (a slash command's ack body: `{"text": …}` and the like).
- `refresh()` sends `{"type": "disconnect", "reason": "refresh_requested"}`, as Slack does every few
  hours: the client then opens a new link (a new `apps.connections.open`) and the old one goes.

What slack_sdk's builtin client (3.48) does that tests meet: it takes TLS or not from the port, not the
scheme (443: TLS, any other port: a plain socket, "only for library testing"), so a ws:// URL with a port
works; it pings every `ping_interval` seconds and answers pings; its `close()` shuts the TCP socket
without a WebSocket close frame, so a link it closes ends as 1006 (abnormal closure) here, as at Slack.
"""

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from .fakeslack import FakeSlack

WAIT = 10.0  # seconds a test waits for the client before failing


@dataclass
class Link:
    """One websocket connection a client opened, and what crossed it."""

    ticket: str
    connection: ServerConnection
    sent: list[dict] = field(default_factory=list)  # hello, envelopes, disconnects; oldest first
    received: list[dict] = field(default_factory=list)  # acks (any JSON text frame the client sent)
    close_code: int | None = None  # set when the link is gone: 1006 when the client just dropped it

    @property
    def open(self) -> bool:
        return self.close_code is None


class FakeSocketMode:
    """The websocket side of Socket Mode; see the module docstring. Tests read `links` and `url`."""

    def __init__(self, slack: FakeSlack, app_id: str = "A0FAKE"):
        self.slack = slack
        self.app_id = app_id
        self.url = ""
        self.links: list[Link] = []
        self.errors: list[str] = []  # frames the client sent that are not JSON objects
        self._changed = threading.Condition()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> "FakeSocketMode":
        self._server = serve(
            self._serve_link,
            "127.0.0.1",
            0,
            process_request=self._admit,
            compression=None,  # Slack's client asks for no extension
            ping_interval=None,  # the client pings; the fake only answers
        )
        port = self._server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/link/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        with self.slack.lock:
            self.slack.socket_url = self.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            with self.slack.lock:
                self.slack.socket_url = None
            self._server.shutdown()  # closes open links with 1001 and waits for their threads
            self._thread.join(timeout=WAIT)
            self._server = None

    def __enter__(self) -> "FakeSocketMode":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests push ---------------------------------------------------------------------------------

    def slash_command(self, form: dict[str, str]) -> str:
        """A slash command: `form` holds the fields Slack would POST (command, text, trigger_id, …)."""
        return self.push("slash_commands", form, accepts_response_payload=True)

    def interactive(self, payload: dict) -> str:
        """A block action, view submission, …: `payload` is what Slack would POST as `payload=`."""
        answers = payload.get("type") in ("view_submission", "block_suggestion")
        return self.push("interactive", payload, accepts_response_payload=answers)

    def event(self, event: dict, retry_attempt: int = 0, retry_reason: str = "") -> str:
        """An Events API callback around `event` (e.g. `{"type": "app_home_opened", …}`)."""
        payload = {
            "token": "deprecated-verification-token",
            "team_id": self.slack.team_id,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
        }
        extra = {"retry_attempt": retry_attempt, "retry_reason": retry_reason}
        return self.push("events_api", payload, accepts_response_payload=False, **extra)

    def push(self, kind: str, payload: dict, accepts_response_payload: bool, **extra: Any) -> str:
        """Send an envelope over the newest open link; its envelope_id, to wait for the ack with."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            **extra,
        }
        self._send(self.link(), envelope)
        return envelope_id

    def refresh(self) -> Link:
        """Ask the client to move to a new link, as Slack does; the link asked to move."""
        link = self.link()
        self._send(link, {"type": "disconnect", "reason": "refresh_requested", "debug_info": self._debug()})
        return link

    # -- what tests wait for -----------------------------------------------------------------------------

    def link(self, after: Link | None = None, timeout: float = WAIT) -> Link:
        """The newest open link (one newer than `after`, if given), once the client has opened it."""

        def found() -> Link | None:
            newer = self.links[self.links.index(after) + 1 :] if after is not None else self.links
            return next((link for link in reversed(newer) if link.open), None)

        return self._wait(found, timeout, "no open Socket Mode link")

    def ack(self, envelope_id: str, timeout: float = WAIT) -> dict:
        """The client's ack of `envelope_id`: `{"envelope_id": …}` and, if it answered, `"payload"`."""

        def found() -> dict | None:
            acks = (m for link in self.links for m in link.received if m.get("envelope_id") == envelope_id)
            return next(acks, None)

        return self._wait(found, timeout, f"no ack of envelope {envelope_id}")

    def closed(self, link: Link, timeout: float = WAIT) -> int:
        """Wait until `link` is gone; its close code."""
        return self._wait(lambda: link.close_code, timeout, "the link is still open")

    def _wait(self, found: Any, timeout: float, failure: str) -> Any:
        with self._changed:
            if not self._changed.wait_for(lambda: found() is not None, timeout):
                raise AssertionError(f"{failure} after {timeout} s")
            return found()

    # -- the server ------------------------------------------------------------------------------------

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        """The opening handshake: only a ticket that apps.connections.open issued, and only once."""
        ticket = _ticket(request.path)
        with self.slack.lock:
            issued = urlsplit(request.path).path == "/link/" and ticket in self.slack.socket_tickets
            self.slack.socket_tickets.discard(ticket)
        return None if issued else connection.respond(HTTPStatus.UNAUTHORIZED, "invalid ticket\n")

    def _serve_link(self, connection: ServerConnection) -> None:
        """One link, in its own thread: hello, then record every frame until the client goes."""
        link = Link(_ticket(connection.request.path), connection)
        with self._changed:
            self.links.append(link)
            hello = {
                "type": "hello",
                "num_connections": len([x for x in self.links if x.open]),
                "debug_info": self._debug(),
                "connection_info": {"app_id": self.app_id},
            }
        try:
            self._send(link, hello)
            for frame in connection:
                try:
                    message = json.loads(frame)
                except ValueError:
                    message = None
                with self._changed:
                    if isinstance(message, dict):
                        link.received.append(message)
                    else:
                        self.errors.append(f"not a JSON object: {frame!r}")
                    self._changed.notify_all()
        except ConnectionClosed:
            pass  # the client dropped the TCP connection without a close frame: slack_sdk's close()
        finally:
            with self._changed:
                link.close_code = connection.close_code
                self._changed.notify_all()

    def _send(self, link: Link, message: dict) -> None:
        with self._changed:
            link.sent.append(message)
        link.connection.send(json.dumps(message))

    def _debug(self) -> dict:
        return {"host": "fakeslack-socket", "build_number": 1, "approximate_connection_time": 18060}


def _ticket(path: str) -> str:
    return (parse_qs(urlsplit(path).query).get("ticket") or [""])[0]
