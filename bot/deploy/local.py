"""The local target: each version is a model server process on this machine, in the experiment's own
cached virtualenv, behind the environment's proxy, which keeps its URL stable (`bot.deploy.stable_url`:
the environment's directory, the proxy, the switch and the staged releases).

A model server is a process in a session of its own (`bot.deploy.processes`), found again by its pid
and its release directory on its command line.
"""

import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from bot.backends.process import LogSink, run_process
from bot.backends.venv import BuildFailed, activated, prepare
from bot.deploy import DeployFailed, Log, Release, Version, model_server
from bot.deploy.processes import kill, last_line, ours, read_json, spawn, stop_process, wait_ready
from bot.deploy.stable_url import (
    HOST,
    BuildWatcher,
    StableUrl,
    artifact_of,
    stop_proxy,
)
from bot.settings import Settings

START_SECONDS = 120.0  # a model server's import of predict (scikit-learn takes seconds) and listen
STOP_SECONDS = model_server.DRAIN_SECONDS + 5.0
BUILD_LOG_BYTES = 1024 * 1024


class LocalTarget(StableUrl):
    # -- versions -------------------------------------------------------------------------------------

    def start(self, release: Release, log: Log) -> Version:
        release_dir = self.stage(release, log)
        python = self._python(release_dir / "code", release.requirements, release_dir, log)
        handle = {"release": str(release_dir), "python": python, "predict": release.predict}
        return self.restart(handle, log)

    def restart(self, handle: dict, log: Log) -> Version:
        release_dir = Path(handle["release"])
        if not (release_dir / "version.json").exists():
            raise DeployFailed(f"the release in {release_dir} is no longer kept")
        ready_file = release_dir / "ready.json"
        ready_file.unlink(missing_ok=True)
        artifact = artifact_of(release_dir)
        argv = [
            handle["python"],
            str(Path(model_server.__file__)),
            *("--checkout", str(release_dir / "code"), "--predict", handle["predict"]),
            *("--artifact", str(artifact), "--version-file", str(release_dir / "version.json")),
            *("--ready-file", str(ready_file), "--host", HOST),
        ]
        log(f"starting the model server: {Path(handle['python']).name} model_server.py {handle['predict']}")
        server_log = release_dir / "server.log"
        process = spawn(argv, release_dir / "code", self._environment(handle["python"]), server_log)
        ready = wait_ready(ready_file, process, START_SECONDS)
        if ready is None:
            code = process.poll()
            said = last_line(server_log) or "nothing on its log"
            if code is None:
                kill(process.pid, signal.SIGKILL)
                raise DeployFailed(f"the model server did not listen within {START_SECONDS:g} s: {said}")
            raise DeployFailed(f"the model server exited with code {code}: {said}")
        log(f"the model server listens on port {ready['port']} (pid {ready['pid']})")
        # The machine is in the handle: a process is only this machine's to find, restart or stop.
        handle = handle | {"pid": ready["pid"], "port": ready["port"], "machine": socket.gethostname()}
        return Version(url=f"http://{HOST}:{ready['port']}", handle=handle)

    def _python(self, code: Path, requirements: str | None, release_dir: Path, log: Log) -> str:
        """The experiment's interpreter: its cached venv (built now if `tierbot gc` removed it), or the
        `python` its command found on the PATH when it has no requirements file."""
        if requirements is None:
            found = shutil.which("python3", path=self._environment(None).get("PATH")) or sys.executable
            log(f"no requirements file: serving with {found}")
            return found
        log(f"the experiment's environment ({requirements})")
        watcher = BuildWatcher()
        with LogSink(release_dir / "build.log", BUILD_LOG_BYTES, lambda _line: None) as sink:

            def run(argv: list[str], env: dict[str, str], seconds: float):
                return run_process(argv, cwd=code, env=env, sink=sink, watcher=watcher, max_seconds=seconds)

            try:
                venv = prepare(
                    code / requirements, self.settings.envs_dir, self._environment(None), run, sink, watcher
                )
            except BuildFailed as exc:
                raise DeployFailed(f"the experiment's environment could not be built: {exc}") from None
        return str(venv / "bin" / "python")

    @staticmethod
    def _environment(python: str | None) -> dict[str, str]:
        """What the experiment's command saw, less tierbot's own settings (they may hold tokens)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
        venv = Path(python).parent.parent if python else None
        return activated(env, venv) if venv is not None and (venv / "pyvenv.cfg").exists() else env

    def problem(self, handle: dict) -> str | None:
        if not handle.get("pid"):
            return "it was never started"
        if not ours(handle["pid"], handle["release"]):
            return f"its model server (pid {handle['pid']}) is not running"
        return None

    def down(self, handle: dict) -> str | None:
        """Why the version is down: nothing restarts a model server process but tierbot (`revive`).
        None on another machine than the one it runs on: that machine's workers see to it."""
        if handle.get("machine", socket.gethostname()) != socket.gethostname():
            return None
        return self.problem(handle)

    def revive(self, handle: dict, log: Log, note: dict, record: Callable[[dict], None]) -> bool:
        """The routed version whose model server died, started again from its kept release, routed to,
        and its new handle (with `note`) `record`ed, all under the route lock: a deployment's switch
        waits, then stops what the record says. False (nothing done) when the route moved on meanwhile
        or the server answers again."""
        with self.route_lock():
            if self.routed() != handle or self.problem(handle) is None:
                return False
            version = self.restart(handle, log)
            revived = version.handle | {"url": version.url} | note
            self.route(Version(url=version.url, handle=revived))
            record(revived)
            return True

    def stop(self, handle: dict) -> None:
        if handle.get("pid"):
            stop_process(handle["pid"], handle["release"], STOP_SECONDS)


def shutdown(settings: Settings) -> list[Path]:
    """Every process of every local environment stopped, their versions drained (tests; an installation
    that stops serving its models). The environments' directories."""
    homes = sorted(path for path in (settings.data_dir / "deploy").glob("*/*") if path.is_dir())
    for home in homes:
        stop_environment(home)
    return homes


def stop_environment(home: Path) -> None:
    """An environment's versions drained and stopped, and its proxy: its URL answers no more."""
    for release in sorted((home / "releases").glob("*")):
        ready = read_json(release / "ready.json")
        if ready:
            stop_process(ready["pid"], str(release), STOP_SECONDS)
    stop_proxy(home)
