"""Streams from a Docker Engine: chunks turned into log lines, and a streamed request that can be
abandoned from another thread.

The engine sends build output and container logs in chunks that do not follow lines ("Step 2/3 : RUN
…" and its newline arrive apart; a frame may end inside a UTF-8 character), so `Lines` reassembles them
the way the local backend reads a pipe. A build or a log stream blocks in a socket read for as long as
the engine is silent (a long RUN step prints nothing), and docker-py offers no way to interrupt it:
`Interruptible` remembers the streamed response, and shutting down its socket wakes the reader, and
makes the engine cancel the build (it does on a client that goes away).
"""

import codecs
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from bot.backends.process import READ_LIMIT, LogSink


class Lines:
    """Chunks in, whole lines out to the sink (a line without newlines is cut at READ_LIMIT)."""

    def __init__(self, sink: LogSink):
        self._sink = sink
        self._pending = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes | str) -> None:
        text = chunk if isinstance(chunk, str) else self._decoder.decode(chunk)
        *complete, self._pending = (self._pending + text).split("\n")
        if len(self._pending) >= READ_LIMIT:
            complete.append(self._pending)
            self._pending = ""
        if complete:
            self._sink.lines([line.rstrip("\r") for line in complete])

    def close(self) -> None:
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        if rest:
            self._sink.lines([rest.rstrip("\r")])


class Interruptible:
    """Consumes a streamed engine request in a thread; `abort` cuts its connection from any other."""

    def __init__(self, api: Any, start: Callable[[], Iterator[Any]], consume: Callable[[Any], None]):
        self._api = api
        self._responses: list[Any] = []
        self._start, self._consume = start, consume
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, daemon=True, name="docker-stream")

    def _remember(self, response: Any, *_args: Any, **_kwargs: Any) -> Any:
        if threading.current_thread() is self._thread:  # not the run's other requests (wait, stop)
            self._responses.append(response)
        return response

    def run(self) -> "Interruptible":
        # Hooks run in the thread that made the request: the stream's are the ones made in its thread.
        self._api.hooks["response"].append(self._remember)
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            for item in self._start():
                self._consume(item)
        except BaseException as exc:  # the engine's error, or the abort: the caller decides
            self.error = exc
        finally:
            with contextlib.suppress(ValueError):
                self._api.hooks["response"].remove(self._remember)

    def join(self, seconds: float) -> bool:
        """Whether the stream has ended, after waiting at most `seconds`."""
        self._thread.join(seconds)
        return not self._thread.is_alive()

    def abort(self) -> None:
        for response in self._responses:
            connection = getattr(response.raw, "_connection", None)
            sock = getattr(connection, "sock", None)
            with contextlib.suppress(OSError):
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)  # close() alone would not wake a blocked read
            with contextlib.suppress(Exception):
                response.close()
