"""The local backend: the experiment runs on this machine, in a venv built from its requirements file.

Limits come from the tier: `max_runtime` stops the whole process group (SIGTERM, then SIGKILL after a
grace period) and `memory` caps the address space (RLIMIT_AS). There is no isolation beyond that: local
tiers are for trusted code on the bot's own machine.
"""

import os
import signal
import tempfile
from functools import partial
from pathlib import Path

from bot.backends import Job, Outcome, OutcomeState, Watcher
from bot.backends.process import Ending, LogSink, kill_process_group, run_process
from bot.backends.venv import BuildCancelled, BuildFailed, activated, prepare
from bot.settings import Settings
from bot.tiers import Tier
from bot.units import format_duration, format_size

__all__ = ["LocalBackend", "kill_process_group"]

GRACE_SECONDS = 5.0
# What runtimes print when an allocation fails under RLIMIT_AS (Python, libc's ENOMEM, C++). Not a bare
# "out of memory": "CUDA out of memory" is the GPU's, and has nothing to do with the tier's memory.
_OUT_OF_MEMORY = ("MemoryError", "Cannot allocate memory", "std::bad_alloc")
# How a process that hit RLIMIT_AS usually dies when it does not print anything first.
_MEMORY_SIGNALS = {signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS}


class LocalBackend:
    def __init__(self, settings: Settings, grace_seconds: float = GRACE_SECONDS):
        self.envs_dir = settings.envs_dir
        self.grace_seconds = grace_seconds

    def run(self, job: Job, watcher: Watcher) -> Outcome:
        with LogSink(job.log_path, job.max_log_bytes, watcher.log, job.redact) as sink:
            env = _inherited_env(job.trusted)
            if job.requirements is not None:
                watcher.phase("building")
                build = partial(self._run, cwd=job.workdir, sink=sink, watcher=watcher, memory_bytes=None)
                try:
                    venv = prepare(job.requirements, self.envs_dir, env, build, sink, watcher)
                except BuildCancelled:
                    return Outcome("cancelled", None, 0.0, "cancelled", sink.tail())
                except BuildFailed as exc:
                    return Outcome("failed", None, 0.0, f"environment build failed: {exc}", sink.tail())
                env = activated(env, venv)
            watcher.phase("running")
            ending = self._run(
                ["/bin/sh", "-c", job.command],
                env | job.env,
                job.tier.runtime_seconds,
                cwd=job.workdir,
                sink=sink,
                watcher=watcher,
                memory_bytes=job.tier.memory_bytes,
            )
            state, reason = judge(ending, job.tier, sink.tail_lines())
            exit_code = None if ending.stopped else ending.returncode
            return Outcome(state, exit_code, ending.seconds, reason, sink.tail())

    def _run(
        self,
        argv: list[str],
        env: dict[str, str],
        max_seconds: float,
        *,
        cwd: Path,
        sink: LogSink,
        watcher: Watcher,
        memory_bytes: int | None,
    ) -> Ending:
        return run_process(
            argv,
            cwd=cwd,
            env=env,
            sink=sink,
            watcher=watcher,
            max_seconds=max_seconds,
            memory_bytes=memory_bytes,
            grace_seconds=self.grace_seconds,
        )


# All an untrusted command gets from the worker: nothing that could hold a credential.
_UNTRUSTED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")


def _inherited_env(trusted: bool) -> dict[str, str]:
    """The worker's environment minus tierbot's own settings, which may hold tokens and keys; for
    untrusted code (a fork's) only an allowlist, since any variable (AWS_*, CI tokens) may be a secret."""
    if trusted:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
    else:
        env = {k: os.environ[k] for k in _UNTRUSTED_ENV if k in os.environ}
        env["HOME"] = tempfile.gettempdir()  # not the worker's home, with its dotfiles and credentials
    env.setdefault("PYTHONUNBUFFERED", "1")  # through a pipe Python buffers; live progress wants lines
    return env


def judge(ending: Ending, tier: Tier, tail: list[str]) -> tuple[OutcomeState, str]:
    """The outcome's state and a reason a person understands."""
    if ending.stopped == "cancel":
        return "cancelled", "cancelled"
    if ending.stopped == "timeout":
        return "timed_out", f"killed after {_duration(tier.runtime_seconds)}: the tier's max_runtime"
    code = ending.returncode
    if code == 0:
        return "succeeded", "exit code 0"
    if tier.memory_bytes is not None and _out_of_memory(code, tail):
        return "failed", f"out of memory (limit {format_size(tier.memory_bytes)})"
    if code is not None and code < 0:
        return "failed", f"killed by signal {_signal_name(-code)}"
    return "failed", f"exit code {code}"


def _out_of_memory(code: int | None, tail: list[str]) -> bool:
    if any(marker in line for line in tail for marker in _OUT_OF_MEMORY):
        return True
    # A negative code is a signal; 128+n is how /bin/sh reports a child killed by signal n.
    signum = -code if code is not None and code < 0 else (code - 128 if code and 128 < code < 160 else None)
    return signum in _MEMORY_SIGNALS


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _duration(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 60 else format_duration(seconds)
