"""Serving an ASGI app for a test: uvicorn on 127.0.0.1, a free port, its own thread. Shared by the
fake GitHub and Slack servers and by the running bot of the door tests."""

import contextlib
import socket
import threading
import time

import uvicorn


class Loopback:
    def __init__(self, app, name: str, lifespan: str = "off", start_timeout: float = 30):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(app, interface="asgi3", lifespan=lifespan, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, args=(sock,), daemon=True, name=name)
        self.thread.start()
        deadline = time.monotonic() + start_timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"{name} did not start (a failed startup is in the log)")
            time.sleep(0.01)

    def _serve(self, sock: socket.socket) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when the app's startup fails
            self.server.run(sockets=[sock])

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


async def read_request(scope: dict, receive) -> tuple[bytes, dict[str, str]]:
    """An HTTP request's whole body and its headers (names lower-cased), from ASGI."""
    assert scope["type"] == "http"
    raw, more = b"", True
    while more:
        message = await receive()
        raw, more = raw + message.get("body", b""), message.get("more_body", False)
    return raw, {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


class ServedFake:
    """`start`/`stop` and `with` for a fake whose ASGI app is its `_asgi` method; sets `url`."""

    _loopback: Loopback | None = None

    def start(self):
        self._loopback = Loopback(self._asgi, type(self).__name__)
        self.url = self._loopback.url
        return self

    def stop(self) -> None:
        if self._loopback is not None:
            self._loopback.stop()
            self._loopback = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
