"""The local target: each version is a model server process on this machine, in the experiment's own
cached virtualenv, behind the environment's proxy (`bot.deploy.proxy`), which keeps its URL stable.

An environment lives in one directory of the data dir: the proxy's files (`route.json`, `token`, its
port) and `releases/<deployment>/` — the commit's checkout, the artifact, `version.json` and the model
server's log. A release is kept after its version stops: a rollback starts it again as it was.

Processes are started in sessions of their own, so they outlive the worker that started them (a bot
restart must not take the API down), and are found again by pid, checked against their command line
before anything is sent to them: a pid reused by another program is never signalled.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import xxhash

from bot.backends import Watcher
from bot.backends.process import LogSink, run_process
from bot.backends.venv import BuildFailed, activated, prepare
from bot.checkout import CodeCache
from bot.deploy import DeployFailed, Log, Release, Version, model_server, proxy
from bot.settings import Settings

START_SECONDS = 120.0  # a model server's import of predict (scikit-learn takes seconds) and listen
STOP_SECONDS = model_server.DRAIN_SECONDS + 5.0
BUILD_LOG_BYTES = 1024 * 1024
HOST = "127.0.0.1"


def environment_dir(settings: Settings, repository: str, environment: str) -> Path:
    """`deploy/<name>-<hash>/<environment>`: readable, and unique for a path or an owner/name alike."""
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in repository.rstrip("/").rsplit("/", 1)[-1])
    return (
        settings.data_dir
        / "deploy"
        / f"{name}-{xxhash.xxh3_64_hexdigest(repository.encode())[:10]}"
        / environment
    )


class LocalTarget:
    def __init__(self, settings: Settings, code: CodeCache, repository: str, environment: str):
        self.settings, self.code, self.repository = settings, code, repository
        self.home = environment_dir(settings, repository, environment)

    # -- the stable URL -------------------------------------------------------------------------------

    def url(self) -> str:
        return f"http://{HOST}:{self._proxy_port()}"

    def _proxy_port(self) -> int:
        """The running proxy's port; a proxy started (on the port it had before) when none answers."""
        ready = _read_json(self.home / "proxy.ready.json")
        if ready and _ours(ready["pid"], str(self.home)) and self._admin("status", ready["port"]) is not None:
            return ready["port"]
        self.home.mkdir(parents=True, exist_ok=True)
        token = self.home / "token"
        if not token.exists():
            _write_private(token, secrets.token_hex(24))
        wanted = (_read_json(self.home / "proxy.json") or {}).get("port", 0)
        port = self._start_proxy(wanted)
        if port is None:  # the port it had is taken now: the URL changes, which the deploy report says
            port = self._start_proxy(0)
        if port is None:
            raise DeployFailed(f"the deploy proxy did not start; its log: {self.home / 'proxy.log'}")
        _write_json(self.home / "proxy.json", {"port": port})
        return port

    def _start_proxy(self, port: int) -> int | None:
        (self.home / "proxy.ready.json").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "bot.deploy.proxy", str(self.home), "--host", HOST, "--port", str(port)]
        process = _spawn(argv, self.home, os.environ.copy(), self.home / "proxy.log")
        ready = _wait_ready(self.home / "proxy.ready.json", process, 30.0)
        return None if ready is None else ready["port"]

    def _admin(self, what: str, port: int | None = None) -> dict | None:
        """The proxy's answer to `/_tierbot/<what>`, None when it does not answer."""
        port = port or self._proxy_port()
        request = urllib.request.Request(f"http://{HOST}:{port}{proxy.ADMIN}{what}")
        request.add_header(proxy.TOKEN_HEADER, (self.home / "token").read_text().strip())
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            return None

    # -- versions -------------------------------------------------------------------------------------

    def start(self, release: Release, log: Log) -> Version:
        release_dir = self.home / "releases" / str(release.deployment_id)
        log(f"staging the release in {release_dir}")
        shutil.rmtree(release_dir, ignore_errors=True)  # an attempt that died may have left half of it
        code = self.code.checkout(release.repository, release.sha, release_dir / "code")
        artifact = release_dir / "artifact" / Path(release.artifact_name).name
        artifact.parent.mkdir(parents=True)
        shutil.copyfile(release.artifact, artifact)
        _write_json(release_dir / "version.json", release.version())
        python = self._python(code, release.requirements, release_dir, log)
        handle = {"release": str(release_dir), "python": python, "predict": release.predict}
        return self.restart(handle, log)

    def restart(self, handle: dict, log: Log) -> Version:
        release_dir = Path(handle["release"])
        if not (release_dir / "version.json").exists():
            raise DeployFailed(f"the release in {release_dir} is no longer kept")
        ready_file = release_dir / "ready.json"
        ready_file.unlink(missing_ok=True)
        artifact = next((release_dir / "artifact").iterdir())
        argv = [
            handle["python"],
            str(Path(model_server.__file__)),
            *("--checkout", str(release_dir / "code"), "--predict", handle["predict"]),
            *("--artifact", str(artifact), "--version-file", str(release_dir / "version.json")),
            *("--ready-file", str(ready_file), "--host", HOST),
        ]
        log(f"starting the model server: {Path(handle['python']).name} model_server.py {handle['predict']}")
        server_log = release_dir / "server.log"
        process = _spawn(argv, release_dir / "code", self._environment(handle["python"]), server_log)
        ready = _wait_ready(ready_file, process, START_SECONDS)
        if ready is None:
            code = process.poll()
            said = _last_line(server_log) or "nothing on its log"
            if code is None:
                _signal(process.pid, signal.SIGKILL)
                raise DeployFailed(f"the model server did not listen within {START_SECONDS:g} s: {said}")
            raise DeployFailed(f"the model server exited with code {code}: {said}")
        log(f"the model server listens on port {ready['port']} (pid {ready['pid']})")
        handle = handle | {"pid": ready["pid"], "port": ready["port"]}
        return Version(url=f"http://{HOST}:{ready['port']}", handle=handle)

    def _python(self, code: Path, requirements: str | None, release_dir: Path, log: Log) -> str:
        """The experiment's interpreter: its cached venv (built now if `tierbot gc` removed it), or the
        `python` its command found on the PATH when it has no requirements file."""
        if requirements is None:
            found = shutil.which("python3", path=self._environment(None).get("PATH")) or sys.executable
            log(f"no requirements file: serving with {found}")
            return found
        log(f"the experiment's environment ({requirements})")
        watcher = _BuildWatcher()
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
        if not _ours(handle["pid"], handle["release"]):
            return f"its model server (pid {handle['pid']}) is not running"
        return None

    # -- traffic --------------------------------------------------------------------------------------

    def routed(self) -> dict | None:
        route = _read_json(self.home / "route.json")
        return None if route is None else route["handle"]

    def switch(self, version: Version) -> None:
        self._proxy_port()
        handle = version.handle
        route = {"host": HOST, "port": handle["port"], "deployment": Path(handle["release"]).name}
        _write_json(self.home / "route.json", route | {"handle": handle})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the proxy reads the route on its next request: ask it one
            status = self._admin("status")
            if status and status["upstream"] == f"http://{HOST}:{handle['port']}":
                return
            time.sleep(0.05)
        raise DeployFailed("the deploy proxy did not take the new route within 10 s")

    def stop(self, handle: dict) -> None:
        if handle.get("pid"):
            _stop(handle["pid"], handle["release"])

    def captured(self) -> list[str]:
        found = self._admin("captured") if _read_json(self.home / "proxy.ready.json") else None
        return found["requests"] if found else []


class _BuildWatcher(Watcher):
    """An environment build for a deployment: never cancelled, nothing to report but its log."""

    def phase(self, name: str) -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def started(self, pgid: int) -> None:
        pass

    def cancelled(self) -> bool:
        return False


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
        ready = _read_json(release / "ready.json")
        if ready:
            _stop(ready["pid"], str(release))
    ready = _read_json(home / "proxy.ready.json")
    if ready and _ours(ready["pid"], str(home)):
        _signal(ready["pid"], signal.SIGKILL)


def _stop(pid: int, marker: str) -> None:
    """SIGTERM (a model server drains: requests in flight end, then it exits), SIGKILL if it lingers."""
    if not _ours(pid, marker):
        return
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while _ours(pid, marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _ours(pid, marker):
        _signal(pid, signal.SIGKILL)


def _spawn(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in a session of its own, writing to `log`: it outlives the worker."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def _wait_ready(ready_file: Path, process: subprocess.Popen, seconds: float) -> dict | None:
    """What the process wrote to its ready file, or None when it exited (or the time ran out) first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready = _read_json(ready_file)
        if ready is not None:
            return ready
        if process.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def _ours(pid: int, marker: str) -> bool:
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


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):  # another process's child: its parent (or init) reaps it
        os.waitpid(pid, os.WNOHANG)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return
    _reap(pid)


def _last_line(log: Path) -> str | None:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1][:500] if lines else None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one (the proxy's route)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}")
    temporary.write_text(json.dumps(data))
    temporary.replace(path)


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(3)}")
    temporary.touch(mode=0o600)
    temporary.write_text(text)
    temporary.replace(path)
