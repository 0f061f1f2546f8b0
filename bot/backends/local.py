"""The local backend: the experiment runs on this machine, in a venv built from its requirements file.

Limits come from the tier: `max_runtime` stops the whole process group (SIGTERM, then SIGKILL after a
grace period) and `memory` caps the address space (RLIMIT_AS). Trusted code runs as the worker's user in
the checkout; untrusted code (a fork's) runs as the sandbox user in a workspace of its own, or not at all
when tierbot cannot switch users (see `bot.backends.sandbox`).
"""

import os
import signal
from functools import partial
from pathlib import Path

from bot.backends import Job, Outcome, OutcomeState, Watcher
from bot.backends.process import Account, Ending, LogSink, kill_process_group, run_process
from bot.backends.sandbox import Workspace, account_of, refusal
from bot.backends.venv import BuildCancelled, BuildFailed, activated, build, prepare
from bot.errors import TierbotError
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
        self.sandbox_dir = settings.sandbox_dir
        self.sandbox_user = settings.sandbox_user
        self.sandbox_python = settings.sandbox_python
        self.grace_seconds = grace_seconds

    def run(self, job: Job, watcher: Watcher) -> Outcome:
        with LogSink(job.log_path, job.max_log_bytes, watcher.log, job.redact) as sink:
            if job.trusted:
                return self._trusted(job, watcher, sink)
            refused = refusal(os.geteuid(), self.sandbox_user)
            if refused is not None:
                return Outcome("failed", None, 0.0, f"not run: {refused}", sink.tail())
            return self._untrusted(job, watcher, sink)

    def _trusted(self, job: Job, watcher: Watcher, sink: LogSink) -> Outcome:
        env = _trusted_env()
        if job.requirements is not None:
            watcher.phase("building")
            run = partial(self._run, cwd=job.workdir, sink=sink, watcher=watcher, memory_bytes=None)
            try:
                env = activated(env, prepare(job.requirements, self.envs_dir, env, run, sink, watcher))
            except (BuildCancelled, BuildFailed) as exc:
                return _unbuilt(exc, sink)
        return self._command(job, job.workdir, env, watcher, sink)

    def _untrusted(self, job: Job, watcher: Watcher, sink: LogSink) -> Outcome:
        """In a workspace of the sandbox user's; when it succeeded, the outcome names the workspace (locked
        again), where the worker collects the outputs and which it then removes."""
        watcher.phase("building")
        account = account_of(self.sandbox_user)
        try:
            space = Workspace.create(self.sandbox_dir, job.run_id, job.workdir, account)
        except (OSError, TierbotError) as exc:
            return Outcome("failed", None, 0.0, f"the sandbox could not be prepared: {exc}", sink.tail())
        try:
            outcome = self._sandboxed(job, space, watcher, sink)
        except BaseException:
            space.remove()
            raise
        if outcome.state != "succeeded":  # no outputs to collect
            space.remove()
            return outcome
        space.lock()
        outcome.workspace = space.work
        return outcome

    def _sandboxed(self, job: Job, space: Workspace, watcher: Watcher, sink: LogSink) -> Outcome:
        """Always in a venv of the run's own: `python` is then one the sandbox user can run."""
        account = space.account
        requirements = None if job.requirements is None else space.inside(job.requirements, job.workdir)
        shown = requirements.name if requirements is not None else "no requirements"
        sink.line(f"[tierbot: building this run's own environment ({shown}) as {account.name}]")
        env = space.environment()
        run = partial(
            self._run, cwd=space.work, sink=sink, watcher=watcher, memory_bytes=None, account=account
        )
        try:
            build(space.venv, self.sandbox_python, requirements, env, run, sink)
        except (BuildCancelled, BuildFailed) as exc:
            return _unbuilt(exc, sink)
        return self._command(job, space.work, activated(env, space.venv), watcher, sink, account)

    def _command(
        self,
        job: Job,
        cwd: Path,
        env: dict[str, str],
        watcher: Watcher,
        sink: LogSink,
        account: Account | None = None,
    ) -> Outcome:
        watcher.phase("running")
        try:
            ending = self._run(
                ["/bin/sh", "-c", job.command],
                env | job.env,
                job.tier.runtime_seconds,
                cwd=cwd,
                sink=sink,
                watcher=watcher,
                memory_bytes=job.tier.memory_bytes,
                account=account,
            )
        except OSError as exc:  # the working directory is out of the account's reach, say
            return Outcome("failed", None, 0.0, f"the command could not start: {exc}", sink.tail())
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
        account: Account | None = None,
    ) -> Ending:
        return run_process(
            argv,
            cwd=cwd,
            env={"PYTHONUNBUFFERED": "1"} | env,  # through a pipe Python buffers; live progress wants lines
            sink=sink,
            watcher=watcher,
            max_seconds=max_seconds,
            memory_bytes=memory_bytes,
            grace_seconds=self.grace_seconds,
            account=account,
        )


def _trusted_env() -> dict[str, str]:
    """The worker's environment minus tierbot's own settings, which may hold tokens and keys (the secrets
    among the rest left the process at start, see `bot.hardening`)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}


def _unbuilt(exc: BuildCancelled | BuildFailed, sink: LogSink) -> Outcome:
    if isinstance(exc, BuildCancelled):
        return Outcome("cancelled", None, 0.0, "cancelled", sink.tail())
    return Outcome("failed", None, 0.0, f"environment build failed: {exc}", sink.tail())


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
