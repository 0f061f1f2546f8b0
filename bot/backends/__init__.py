"""Backends run one experiment command on a tier's hardware. This is the interface they all implement.

A worker hands a backend a `Job` (a checked-out workdir, a command, a tier) and a `Watcher` (the queue's
ears: phase changes, log lines, the process group, cancellation) and gets an `Outcome` back. Backends
never touch the database or the comparison; `docker`, `batch` and `sagemaker` sit beside `local`
as rows of `PROVIDED`, which also answers, before anything is queued, whether a tier can run here (and
whether it can run untrusted code here).
"""

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from bot.errors import TierUnavailable
from bot.settings import Settings
from bot.tiers import Tier, TierSet

OutcomeState = Literal["succeeded", "failed", "timed_out", "cancelled"]
IsRunning = Callable[[int], bool]


@dataclass
class Job:
    run_id: int
    workdir: Path  # checked-out commit; the command runs here
    command: str  # shell command, run via /bin/sh -c
    tier: Tier
    requirements: Path | None  # pip requirements file inside workdir; None runs in the environment as is
    env: dict[str, str]  # extra variables, e.g. TIERBOT_RUN_ID
    log_path: Path  # written afresh by each attempt: environment build output, then the command's
    max_log_bytes: int
    trusted: bool = True  # False: a fork's code, run sandboxed and without the worker's environment
    redact: Callable[[list[str]], list[str]] | None = None  # every batch of log lines passes it first
    dockerfile: Path | None = None  # the repository's Dockerfile inside workdir: container tiers build it
    # The outputs directory in workdir (run.outputs): remote tiers send back only it. None: all of workdir.
    outputs: str | None = None


@dataclass
class Outcome:
    state: OutcomeState
    exit_code: int | None  # None when tierbot stopped the command (timeout, cancel) or it never started
    seconds: float  # the command's own wall time, without building its environment
    reason: str  # for people: "exit code 3", "out of memory (limit 256.0 MiB)", "cancelled"
    log_tail: str  # the last lines of output, shown where the user asked
    # Where the outputs are when not in the job's workdir (an untrusted run's sandbox): the worker collects
    # them from there, then removes it.
    workspace: Path | None = None
    # What the provider bills for the job when it says so (SageMaker's BillableTimeInSeconds): the run's
    # cost is this times the tier's price, instead of its wall time (`bot.costs.actual_cost`).
    billed_seconds: float | None = None


class Watcher(Protocol):
    def phase(self, name: str) -> None:
        """ "building" (the environment), then "running"."""

    def log(self, line: str) -> None:
        """Each line of output as it comes, without its newline."""

    def started(self, pgid: int) -> None:
        """The command's process group, recorded so a restarted worker can kill what it left behind."""

    def cancelled(self) -> bool:
        """Polled about every 0.2 s while the command runs."""


class Backend(Protocol):
    def run(self, job: Job, watcher: Watcher) -> Outcome: ...


def _nothing_missing(_tier: Tier, _settings: Settings) -> str | None:
    return None


def _local(settings: Settings) -> Backend:
    from bot.backends.local import LocalBackend  # local imports Job and Outcome from here

    return LocalBackend(settings)


def _local_untrusted(_tier: Tier, settings: Settings) -> str | None:
    from bot.backends.sandbox import refusal

    return refusal(os.geteuid(), settings.sandbox_user)


@dataclass(frozen=True)
class Provided:
    """A backend this installation provides. `missing` says why it cannot run a tier here (None: it can).
    It runs at start for every tier, so it stays cheap: no heavy SDK imported just to answer, a few quick
    questions at most (docker: does the `docker` package import, does the engine answer, with the tier's
    image, network and hardware)."""

    missing: Callable[[Tier, Settings], str | None]
    build: Callable[[Settings], Backend]
    # Why it cannot run untrusted code (a fork's) on the tier here, though it can run trusted code.
    untrusted: Callable[[Tier, Settings], str | None] = _nothing_missing
    # Removes what runs that are no longer running left on the backend's engines (a crashed bot's
    # containers), given its tiers and whether a run id is running; what it did, by engine.
    reap: Callable[[list[Tier], Settings, IsRunning], dict[str, object]] | None = None


def _docker_missing(tier: Tier, settings: Settings) -> str | None:
    # Only the options module, which imports the docker SDK lazily: without the `docker` extra, docker
    # tiers are unavailable with that reason, and everything else works.
    from bot.backends.docker_options import missing

    return missing(tier, settings)


def _docker(settings: Settings) -> Backend:
    from bot.backends.docker import DockerBackend

    return DockerBackend(settings)


def _docker_reap(tiers: list[Tier], settings: Settings, is_running: IsRunning) -> dict[str, object]:
    try:
        from bot.backends.docker_reaper import reap_engines
    except ImportError:  # no docker SDK: no docker tier ever ran here
        return {}
    return reap_engines(tiers, settings, is_running)


def _docker_untrusted(tier: Tier, settings: Settings) -> str | None:
    from bot.backends.docker_options import untrusted

    return untrusted(tier, settings)


def _aws(options: str, backend: str, reaper: str, service: str) -> Provided:
    """An AWS backend, every module imported when first used: its options module imports boto3 lazily,
    so without the `aws` extra its tiers are unavailable (and no reaper has anything to do). `backend`
    and `reaper` are `module:name`."""

    def load(where: str):
        module, _, name = where.partition(":")
        return getattr(importlib.import_module(module), name)

    def reap(tiers: list[Tier], settings: Settings, is_running: IsRunning) -> dict[str, object]:
        try:
            reap_all = load(reaper)
        except ImportError:  # no boto3: no such tier ever ran here
            return {}
        return reap_all(tiers, settings, is_running)

    def untrusted(tier: Tier, _settings: Settings) -> str:
        from bot.aws_options import untrusted

        return untrusted(tier, service)

    return Provided(
        missing=lambda tier, settings: load(f"{options}:missing")(tier, settings),
        build=lambda settings: load(backend)(settings),
        untrusted=untrusted,
        reap=reap,
    )


PROVIDED: dict[str, Provided] = {
    "local": Provided(missing=_nothing_missing, build=_local, untrusted=_local_untrusted),
    "docker": Provided(
        missing=_docker_missing, build=_docker, untrusted=_docker_untrusted, reap=_docker_reap
    ),
    "batch": _aws(
        "bot.backends.batch_options",
        "bot.backends.batch:BatchBackend",
        "bot.backends.batch_reaper:reap_batch",
        "AWS Batch",
    ),
    "sagemaker": _aws(
        "bot.backends.sagemaker_options",
        "bot.backends.sagemaker:SageMakerBackend",
        "bot.backends.sagemaker_reaper:reap_sagemaker",
        "SageMaker",
    ),
}


def availability(tier: Tier, settings: Settings) -> str | None:
    """Why this installation cannot run the tier, or None when it can."""
    return PROVIDED[tier.backend].missing(tier, settings)


def untrusted_refusal(tier: Tier, settings: Settings) -> str | None:
    """Why this installation cannot run untrusted code on the tier, or None when it can: asked when such
    a run is requested, so that it is refused where the user asked rather than when it starts."""
    return availability(tier, settings) or PROVIDED[tier.backend].untrusted(tier, settings)


def mark_availability(tiers: TierSet, settings: Settings) -> TierSet:
    """The tiers, each carrying its availability here: the composition root's answer for the pure tiers."""
    return tiers.with_availability({tier.name: availability(tier, settings) for tier in tiers.tiers})


def backend_for(tier: Tier, settings: Settings) -> Backend:
    reason = availability(tier, settings)
    if reason is not None:  # a run queued before its backend went away (or before tierbot checked)
        raise TierUnavailable(f"Tier {tier.name!r} is unavailable: {reason}.")
    return PROVIDED[tier.backend].build(settings)


def reap(tiers: TierSet, settings: Settings, is_running: IsRunning) -> dict[str, object]:
    """Every backend's reaper over its tiers: nothing of tierbot's outlives its run, even when the bot
    that started it crashed. What each removed (or why it could not), by engine."""
    done: dict[str, object] = {}
    for name, provided in PROVIDED.items():
        mine = [tier for tier in tiers.tiers if tier.backend == name]
        if provided.reap is not None and mine:
            done |= provided.reap(mine, settings, is_running)
    return done
