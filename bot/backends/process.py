"""One command as its own process group on this machine: output captured line by line, limits applied,
and the whole group stopped (not just the shell) on timeout or cancel."""

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from bot.backends import Watcher

TAIL_LINES = 30
POLL_SECONDS = 0.2  # how often cancellation is checked
READ_LIMIT = 64 * 1024  # a "line" without newlines (binary junk, progress bars) is cut into chunks
READER_JOIN_SECONDS = 2.0
PR_SET_PDEATHSIG = 1
# Loaded in the parent: the forked child must not load libraries (it may not take locks) before exec.
# None where libc has no prctl (not Linux).
PRCTL = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)


class LogSink:
    """The run's log file (capped at `max_bytes`), its last lines, and the watcher, fed line by line.
    `redact` filters each batch of lines first: what is stored (and so every later view) holds no secret."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        forward: Callable[[str], None],
        redact: Callable[[list[str]], list[str]] | None = None,
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] | None = open(path, "wb")  # noqa: SIM115 (closed by close(), after the reader)
        self._max_bytes = max_bytes
        self._written = 0
        self._truncated = False
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._forward = forward
        self._redact = redact
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        self.lines([text])

    def lines(self, texts: list[str]) -> None:
        with self._lock:
            if self._redact is not None:  # it follows a key block across batches: one batch at a time
                texts = self._redact(texts)
            self._tail.extend(texts)  # the tail keeps following even when the file is full
            for text in texts:
                self._write(text)
            if self._file is not None:
                self._file.flush()  # the log is read live (dashboard, `tierbot show`)
        for text in texts:
            self._forward(text.rsplit("\r", 1)[-1])  # a progress bar redraws with \r: its latest state

    def _write(self, text: str) -> None:
        if self._file is None or self._truncated:
            return
        data = (text + "\n").encode("utf-8", errors="replace")
        if self._written + len(data) > self._max_bytes:
            self._truncated = True
            data = f"[tierbot: log truncated at {self._max_bytes} bytes]\n".encode()
        else:
            self._written += len(data)
        self._file.write(data)

    def tail_lines(self) -> list[str]:
        with self._lock:
            return list(self._tail)

    def tail(self) -> str:
        return "\n".join(self.tail_lines())

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> "LogSink":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Account:
    """A user a command runs as instead of the worker's own (which needs root to switch)."""

    name: str
    uid: int
    gid: int


@dataclass
class Ending:
    returncode: int | None
    stopped: Literal["timeout", "cancel"] | None  # tierbot stopped it, and why
    seconds: float


def run_process(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    sink: LogSink,
    watcher: Watcher,
    max_seconds: float,
    memory_bytes: int | None = None,
    grace_seconds: float = 5.0,
    account: Account | None = None,
) -> Ending:
    """Run `argv` in a new session, stream its output to `sink`, and stop it on timeout or cancel.
    Raises OSError when it cannot start (no such program, a directory it may not enter)."""
    # None of the worker's supplementary groups either: root's would open every root-group file to it.
    identity = {} if account is None else {"user": account.uid, "group": account.gid, "extra_groups": []}
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_child_setup(memory_bytes, os.getpid()),
        **identity,
    )
    reader = threading.Thread(target=_pump, args=(proc.stdout, sink), daemon=True, name=f"log-{proc.pid}")
    reader.start()
    try:
        watcher.started(proc.pid)  # with start_new_session the pid is also the process group id
        stopped = _wait(proc, watcher, started + max_seconds)
    except BaseException:  # a failure in tierbot (the database, a signal) must not orphan the experiment
        stop_group(proc, 0.0)
        raise
    if stopped:
        stop_group(proc, grace_seconds)
    seconds = time.monotonic() - started
    kill_process_group(proc.pid)  # whatever the command left running in the background goes with it
    # A daemon that left the group may hold the pipe open forever; don't wait for it.
    reader.join(READER_JOIN_SECONDS)
    return Ending(proc.returncode, stopped, seconds)


def _wait(proc: subprocess.Popen, watcher: Watcher, deadline: float) -> Literal["timeout", "cancel"] | None:
    while True:
        try:
            proc.wait(timeout=max(0.0, min(POLL_SECONDS, deadline - time.monotonic())))
            return None
        except subprocess.TimeoutExpired:
            pass
        if watcher.cancelled():
            return "cancel"
        if time.monotonic() >= deadline:
            return "timeout"


def _pump(stream: IO[bytes], sink: LogSink) -> None:
    """Whatever the pipe holds, as whole lines: a burst of output is handled (and redacted) in batches,
    a slow trickle line by line as it comes."""
    pending = b""
    with stream:
        while chunk := stream.read1(READ_LIMIT):
            *complete, pending = (pending + chunk).split(b"\n")
            if len(pending) >= READ_LIMIT:  # a "line" without newlines: cut, so memory stays bounded
                complete.append(pending)
                pending = b""
            if complete:
                sink.lines([_text(raw) for raw in complete])
        if pending:
            sink.lines([_text(pending)])


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r")


def _child_setup(memory_bytes: int | None, parent: int) -> Callable[[], None]:
    """Runs in the forked child before exec, after it took its account's identity (which clears a
    parent-death signal set earlier): die with the worker, and cap the address space."""
    limit = None
    if memory_bytes is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)

    def setup() -> None:
        if PRCTL is not None:
            # Sent when the forking *thread* exits: run_process waits in that thread until the end.
            PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the worker died before prctl took effect
                os._exit(137)
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return setup


def stop_group(proc: subprocess.Popen, grace_seconds: float) -> None:
    """SIGTERM the whole group so it can flush, then SIGKILL whatever is left after the grace period."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        proc.poll()  # reap the shell: a zombie leader would keep the group "alive"
        if not group_alive(proc.pid):
            break
        time.sleep(0.05)
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _has_running_member(pgid)


def _has_running_member(pgid: int) -> bool:
    """killpg(pgid, 0) counts zombies too, and an init that reaps slowly keeps them for seconds."""
    if not os.path.isdir("/proc"):
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "stat")) as handle:
                text = handle.read()
        except OSError:
            continue  # exited while we looked
        state, _ppid, group = text[text.rindex(")") + 2 :].split()[:3]  # the name in (...) may hold spaces
        if int(group) == pgid and state not in ("Z", "X"):
            return True
    return False


def kill_process_group(pgid: int) -> bool:
    """SIGKILL a process group (a dead worker's experiment); returns whether anything was there."""
    if pgid <= 1 or pgid == os.getpgrp():  # never ourselves, never init or "every process"
        return False
    return _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
        return True
    return False
