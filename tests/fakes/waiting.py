"""Waiting for what another process does (a replica, a worker): poll a condition until it holds."""

import socket
import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout: float = 30, what: str = "") -> object:
    """The condition's first truthy value, polled every 50 ms; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
