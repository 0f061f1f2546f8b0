"""What a client may make `tierbot serve` hold before anything knows who it is.

Every webhook is verified by its signature, but a signature covers the body, so the body must arrive
first: without limits, an unsigned client makes the bot read any amount into memory and keep a socket
for as long as it likes to send it. `RequestLimits` bounds both before the application reads a byte:
a declared `Content-Length` above the cap is answered 413 at once; a body that grows past the cap while
it streams (chunked: no length is declared) is cut off with 413; a body that has not fully arrived
`read_seconds` after the request's head did is answered 408. Each refusal closes the connection, which
frees the socket of a client that never meant to finish.

`server_options` sets what only the server can bound: connections served at once, idle keep-alive,
the listen backlog and the size of a request's head; `raise_open_files_limit` gives those connections
file descriptors to use (a default soft limit of 1024 is about 1000 sockets).
"""

import asyncio
import json
import resource

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.settings import Settings
from bot.units import format_size

MAX_HEAD_BYTES = 16 * 1024  # request line and headers; GitHub's and Slack's are about 2 KiB
KEEP_ALIVE_SECONDS = 5  # an idle connection between requests; GitHub and Slack rarely reuse one
RESERVED_FILES = 256  # descriptors kept for the database, git, logs and outputs beside client sockets


class BodyRefused(Exception):
    """A request body that is too large or too slow; `status` is the answer."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status


class RequestLimits:
    """ASGI middleware bounding the size of every request body and the time it takes to arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int, read_seconds: float):
        self.app = app
        self.max_bytes = max_bytes
        self.read_seconds = read_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > self.max_bytes:
            await _refuse(send, 413, _too_large(self.max_bytes))
            return
        body = _BoundedBody(receive, self.max_bytes, self.read_seconds)
        answered = False

        async def tracked(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body.receive, tracked)
        except BodyRefused as exc:
            if answered:  # too late to say why; the server drops the connection
                raise
            await _refuse(send, exc.status, str(exc))


class _BoundedBody:
    """A request's `receive`, counting its body against the cap and its time against the deadline."""

    def __init__(self, receive: Receive, max_bytes: int, read_seconds: float):
        self.upstream = receive
        self.max_bytes = max_bytes
        self.read_seconds = read_seconds
        self.deadline = asyncio.get_running_loop().time() + read_seconds
        self.received = 0
        self.complete = False

    async def receive(self) -> Message:
        if self.complete:  # after the body only a disconnect can come, whenever it likes
            return await self.upstream()
        try:
            async with asyncio.timeout_at(self.deadline):
                message = await self.upstream()
        except TimeoutError:
            late = f"the request body did not arrive within {self.read_seconds:g} s"
            raise BodyRefused(408, late) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.max_bytes:
                raise BodyRefused(413, _too_large(self.max_bytes))
            self.complete = not message.get("more_body", False)
        return message


def _too_large(max_bytes: int) -> str:
    return f"the request body is larger than {format_size(max_bytes)}, the most this server reads"


def _declared_length(scope: Scope) -> int:
    """The request's `Content-Length`, 0 when it has none (the server refuses malformed ones itself)."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return 0


async def _refuse(send: Send, status: int, detail: str) -> None:
    """Answer and close: the rest of the body is never read, so the connection cannot carry a next request."""
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= soft:  # unlimited cannot be a soft limit everywhere (macOS)
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def server_options(settings: Settings, open_files: int) -> dict[str, int]:
    """uvicorn's options for `tierbot serve`: at most `max_connections` at once (fewer when file descriptors
    are short), beyond which the server answers 503, rather than running out of descriptors, when
    `accept()` fails for everyone, `/healthz` included."""
    connections = max(1, min(settings.max_connections, open_files - RESERVED_FILES))
    return {
        "limit_concurrency": connections,
        "backlog": connections,  # a deeper queue only holds clients that would be answered 503
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
