"""Virtual environments for local runs: for trusted code one per (requirements file, Python), built once
and shared; for untrusted code one per run, in its sandbox (`build`), never shared.

A venv cannot be moved after it is built (its scripts' shebangs and `activate` name its own path), so
instead of building elsewhere and renaming, it is built in place under a per-environment file lock, and
a `.tierbot-ready` marker written last (atomically) says it is complete. A directory without the marker
is a build that crashed and is started over.

Why untrusted environments are never shared: `pip install` runs the packages' build code, and the
sandbox user can rewrite any venv it built. A venv one fork's code could write must never be run by a
trusted run, nor by another fork's run (which may name the same requirements file over other code).
"""

import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import xxhash

from bot.backends import Watcher
from bot.backends.process import Ending, LogSink
from bot.errors import TierbotError
from bot.units import format_duration

READY = ".tierbot-ready"
BUILD_SECONDS = 3600.0
LOCK_POLL_SECONDS = 0.5
# Inherited variables that would make pip install into, or Python import from, somewhere else.
_FOREIGN = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PIP_USER",
    "PIP_TARGET",
    "PIP_PREFIX",
    "VIRTUAL_ENV",
    "__PYVENV_LAUNCHER__",
)

Runner = Callable[[list[str], dict[str, str], float], Ending]


class BuildFailed(TierbotError):
    pass


class BuildCancelled(TierbotError):
    pass


def environment_key(requirements: bytes) -> str:
    """Same requirements on the same Python give the same environment."""
    python = f"{sys.version}\0{sys.executable}".encode()
    return xxhash.xxh3_64_hexdigest(requirements + b"\0" + python)


def isolated(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in _FOREIGN}


def activated(env: dict[str, str], venv: Path) -> dict[str, str]:
    """`env` as `source venv/bin/activate` would leave it."""
    path = env.get("PATH", os.defpath)
    return isolated(env) | {"VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{path}"}


def prepare(
    requirements: Path, envs_dir: Path, env: dict[str, str], run: Runner, sink: LogSink, watcher: Watcher
) -> Path:
    """The venv for `requirements`: reused when ready, else built now while other builders wait."""
    _require(requirements)
    venv = envs_dir / environment_key(requirements.read_bytes())
    if (venv / READY).exists():
        sink.line(f"[tierbot: reusing the environment for {requirements.name} ({venv.name})]")
        os.utime(venv)  # when it was last used: `tierbot gc` keeps recently used environments
        return venv
    with _locked(envs_dir / f"{venv.name}.lock", watcher):
        if (venv / READY).exists():  # another worker built it while we waited for the lock
            sink.line(f"[tierbot: reusing the environment for {requirements.name} ({venv.name})]")
            return venv
        sink.line(f"[tierbot: building the environment for {requirements.name} ({venv.name})]")
        shutil.rmtree(venv, ignore_errors=True)
        try:
            build(venv, sys.executable, requirements, env, run, sink)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)  # never leave a half-built environment to confuse anyone
            raise
        marker = venv / f"{READY}.tmp"
        marker.write_text(f"{requirements.name}\n{sys.version}\n")
        marker.replace(venv / READY)
    return venv


def build(
    venv: Path, python: str, requirements: Path | None, env: dict[str, str], run: Runner, sink: LogSink
) -> None:
    """A venv at `venv` made by `python`, with `requirements` installed; without requirements a bare one
    (no pip: it only makes `python` mean this interpreter, in a second rather than five)."""
    if requirements is not None:
        _require(requirements)
    build_env = isolated(env) | {"PIP_NO_INPUT": "1"}
    bare = [] if requirements is not None else ["--without-pip"]
    _step(run, [python, "-m", "venv", *bare, str(venv)], build_env, "python -m venv", sink)
    if requirements is not None:
        pip = [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-r",
            str(requirements),
        ]
        _step(run, pip, build_env, f"pip install -r {requirements.name}", sink)


def _require(requirements: Path) -> None:
    if not requirements.is_file():
        raise BuildFailed(f"the requirements file {requirements.name} does not exist in the repository")


def _step(run: Runner, argv: list[str], env: dict[str, str], label: str, sink: LogSink) -> None:
    try:
        ending = run(argv, env, BUILD_SECONDS)
    except OSError as exc:  # the interpreter is missing, or the user it runs as may not run it
        raise BuildFailed(f"`{label}` could not start {argv[0]}: {exc.strerror or exc}") from None
    if ending.stopped == "cancel":
        raise BuildCancelled("cancelled while building the environment")
    if ending.stopped == "timeout":
        raise BuildFailed(f"`{label}` took more than {format_duration(BUILD_SECONDS)}")
    if ending.returncode != 0:
        raise BuildFailed(f"`{label}` exited with code {ending.returncode}: {_error_line(sink.tail_lines())}")


def _error_line(lines: list[str]) -> str:
    """pip's own error line (`ERROR: ...`) when it printed one, else its last line."""
    errors = [line.strip() for line in lines if line.strip().startswith(("ERROR", "error:"))]
    last = [line.strip() for line in lines if line.strip()]
    return (errors or last or ["no output"])[-1][:500]


@contextmanager
def _locked(path: Path, watcher: Watcher) -> Iterator[None]:
    """An exclusive lock across processes, waited for politely: a cancelled run stops waiting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if watcher.cancelled():
                    raise BuildCancelled("cancelled while waiting for another build") from None
                time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
