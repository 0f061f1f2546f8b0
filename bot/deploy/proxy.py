"""The local target's stable URL: a small reverse proxy in front of an environment's model servers.

    python -m bot.deploy.proxy STATE_DIR [--port N]

Its own process, started (and restarted when found dead) by the local target, not a part of `tierbot
serve`: the URL has to outlive the bot (a restart, a crash, a deploy by `tierbot worker` or the demo
with no server at all), and a bot killed mid-deploy must not take the API down with it.

It forwards every request to the model server `STATE_DIR/route.json` names. The switch is a rename of
that file (`os.replace`, atomic): each request stats it (a microsecond) and reads it again when it
changed, so the next request goes to the new version while those in flight finish on the old one. A
request whose connection the old version closed before answering (it drains: idle keep-alive
connections are dropped) is sent again once, to whatever the route names then; `predict` is a pure
function, so a second send is harmless, and no request fails across a switch.

It keeps the last POST /predict bodies that were answered 2xx (at most CAPTURE_COUNT, each at most
CAPTURE_BODY_BYTES, CAPTURE_BYTES in all; bodies only, never headers): the deployer replays them against
the old and the new version (the prediction diff). `/_tierbot/status` and `/_tierbot/captured` answer
only a request carrying the token in `STATE_DIR/token` (0600): captured requests are users' data.
"""

import argparse
import hmac
import http.client
import json
import os
import socket
import sys
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CAPTURE_COUNT = 200
CAPTURE_BODY_BYTES = 16 * 1024
CAPTURE_BYTES = 1024 * 1024
MAX_BODY_BYTES = 10 * 1024 * 1024
UPSTREAM_SECONDS = 60.0
TOKEN_HEADER = "X-Tierbot-Proxy-Token"
ADMIN = "/_tierbot/"
PORT_TAKEN = 4  # the exit code when the port asked for is in use
# Hop-by-hop headers (RFC 9110 7.6.1) and those http.client sets itself.
_NOT_FORWARDED = {
    *("connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"),
    *("server", "date"),  # the proxy sends its own
}


class Route:
    """The upstream `route.json` names, read again whenever the file changes."""

    def __init__(self, path: Path):
        self.path = path
        self._stamp: tuple | None = None
        self.upstream: tuple[str, int] | None = None
        self.deployment: int | None = None
        self._lock = threading.Lock()

    def current(self) -> tuple[str, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
        if stamp != self._stamp:
            with self._lock:
                data = json.loads(self.path.read_text())
                self.upstream = (data["host"], int(data["port"]))
                self.deployment = data.get("deployment")
                self._stamp = stamp
        return self.upstream


class Captured:
    """The recent distinct answered predict bodies, bounded in count and bytes. A body seen again moves to
    the newest end rather than being kept twice: a flood of one request (a health probe, a retry loop)
    must not push out the variety the prediction diff replays."""

    def __init__(self) -> None:
        self._bodies: OrderedDict[str, None] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, body: bytes) -> None:
        if len(body) > CAPTURE_BODY_BYTES:
            return
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return
        with self._lock:
            if text in self._bodies:
                self._bodies.move_to_end(text)
                return
            self._bodies[text] = None
            self._bytes += len(body)
            while len(self._bodies) > CAPTURE_COUNT or self._bytes > CAPTURE_BYTES:
                self._bytes -= len(self._bodies.popitem(last=False)[0].encode())

    def recent(self) -> list[str]:
        with self._lock:
            return list(self._bodies)


class Proxy:
    def __init__(self, state: Path):
        self.route = Route(state / "route.json")
        self.captured = Captured()
        self.token = (state / "token").read_text().strip()
        self._connections = threading.local()  # each handler thread keeps its own upstream connections

    def connection(self, upstream: tuple[str, int]) -> http.client.HTTPConnection:
        pool = self._connections.__dict__.setdefault("pool", {})
        if upstream not in pool:
            pool[upstream] = http.client.HTTPConnection(*upstream, timeout=UPSTREAM_SECONDS)
        return pool[upstream]

    def drop(self, upstream: tuple[str, int]) -> None:
        connection = self._connections.__dict__.get("pool", {}).pop(upstream, None)
        if connection is not None:
            connection.close()

    def forward(self, method: str, path: str, headers: dict, body: bytes | None) -> tuple[int, dict, bytes]:
        """The upstream's answer; sent a second time (to the route of that moment) when the connection
        failed before any answer came."""
        for attempt in (1, 2):
            upstream = self.route.current()
            if upstream is None:
                return _error(HTTPStatus.SERVICE_UNAVAILABLE, "nothing is deployed here yet")
            connection = self.connection(upstream)
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.drop(upstream)
                if attempt == 2:
                    return _error(HTTPStatus.BAD_GATEWAY, f"the model server did not answer: {exc}")
                continue
            if response.will_close:
                self.drop(upstream)
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _NOT_FORWARDED}
            return response.status, kept, data
        raise AssertionError("unreachable")


def _error(status: int, message: str) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps({"error": message}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tierbot-proxy"
    # A response's header and body are two writes: with Nagle's algorithm the second waits for the
    # client's delayed ACK, 40 ms on Linux, on every request.
    disable_nagle_algorithm = True
    timeout = 60.0
    proxy: Proxy  # set on the subclass `main` makes

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        if self.path.startswith(ADMIN):
            self._admin()
        else:
            self._forward(None)

    def do_POST(self) -> None:  # noqa: N802
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._send(*_error(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length"))
            return
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(
                *_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")
            )
            return
        self._forward(self.rfile.read(int(length)))

    def _forward(self, body: bytes | None) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _NOT_FORWARDED}
        status, answer_headers, answer = self.proxy.forward(self.command, self.path, headers, body)
        if body is not None and self.path == "/predict" and 200 <= status < 300:
            self.proxy.captured.add(body)
        self._send(status, answer_headers, answer)

    def _admin(self) -> None:
        given = self.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.proxy.token.encode()):
            self._send(*_error(HTTPStatus.NOT_FOUND, "no such path"))
            return
        route = self.proxy.route
        if self.path == f"{ADMIN}status":
            upstream = route.current()
            data = {
                "pid": os.getpid(),
                "upstream": f"http://{upstream[0]}:{upstream[1]}" if upstream else None,
                "deployment": route.deployment if upstream else None,
                "captured": len(self.proxy.captured.recent()),
            }
        elif self.path == f"{ADMIN}captured":
            data = {"requests": self.proxy.captured.recent()}
        else:
            self._send(*_error(HTTPStatus.NOT_FOUND, "no such path"))
            return
        self._send(HTTPStatus.OK, {"Content-Type": "application/json"}, json.dumps(data).encode())

    def _send(self, status: int, headers: dict, body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        """Quiet: a line per request would cost each of them a write."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The stable URL of a local deployment.")
    parser.add_argument("state", type=Path, help="The environment's directory (route.json, token).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    handler = type("ProxyHandler", (Handler,), {"proxy": Proxy(args.state)})
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET  # `listen: "[::]:8500"`
    server_class = type("ProxyServer", (ThreadingHTTPServer,), {"address_family": family})
    try:
        server = server_class((args.host, args.port), handler)
    except OSError as exc:
        print(f"tierbot proxy: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return PORT_TAKEN
    server.daemon_threads = True
    ready = args.state / "proxy.ready.json"
    temporary = ready.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), "port": server.server_address[1]}))
    temporary.replace(ready)
    print(f"tierbot proxy: listening on {args.host}:{server.server_address[1]}", file=sys.stderr, flush=True)
    server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
