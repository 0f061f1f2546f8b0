"""The processes a deployment leaves running on this machine (the deploy proxy, the local target's model
servers), and the small files they speak through.

Processes are started in sessions of their own, so they outlive the worker that started them (a bot
restart must not take the API down), and are found again by pid, checked against their command line
before anything is sent to them: a pid reused by another program is never signalled.
"""

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path


def spawn(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in a session of its own, writing to `log`: it outlives the worker."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def wait_ready(ready_file: Path, process: subprocess.Popen, seconds: float) -> dict | None:
    """What the process wrote to its ready file, or None when it exited (or the time ran out) first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready = read_json(ready_file)
        if ready is not None:
            return ready
        if process.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def ours(pid: int, marker: str) -> bool:
    """Whether `pid` runs and is the process started with `marker` (a path) on its command line."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    if "\nState:\tZ" in status:  # a zombie: ended; reaped here when it is our child
        _reap(pid)
        return False
    return marker.encode() in cmdline


def stop_process(pid: int, marker: str, seconds: float) -> None:
    """SIGTERM (a model server drains: requests in flight end, then it exits), SIGKILL if it lingers."""
    if not ours(pid, marker):
        return
    kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    while ours(pid, marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    if ours(pid, marker):
        kill(pid, signal.SIGKILL)


def kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # another process's child: its parent (or init) reaps it
        os.waitpid(pid, os.WNOHANG)


def last_lines(text: str, count: int = 1) -> str | None:
    """The last non-blank lines of a log, joined, for a reason people read."""
    lines = [line[:500] for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-count:]) if lines else None


def last_line(log: Path) -> str | None:
    try:
        return last_lines(log.read_text(errors="replace"))
    except OSError:
        return None


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: dict) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one (the proxy's route)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}")
    temporary.write_text(json.dumps(data))
    temporary.replace(path)


def write_private(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(3)}")
    temporary.touch(mode=0o600)
    temporary.write_text(text)
    temporary.replace(path)
