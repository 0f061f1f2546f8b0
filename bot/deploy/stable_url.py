"""What the targets whose versions listen on this machine's loopback share (the local target's
processes, the docker target's containers in the host's network): the environment's directory, its
stable URL (the proxy, `bot.deploy.proxy`, started here and found again), the atomic switch, and the
releases staged there.

An environment lives in one directory of the data dir: the proxy's files (`route.json`, `token`, its
port) and `releases/<deployment>/` — the commit's checkout, the artifact, `version.json` and the logs.
A release is kept after its version stops: a rollback starts it again as it was.

Every handle a target returns here names its release directory (`release`) and the loopback port its
version answers on (`port`): that is all the route needs.
"""

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import xxhash

from bot.backends import Watcher
from bot.checkout import CodeCache
from bot.deploy import DeployFailed, Log, Release, Version, proxy
from bot.deploy.local_options import LOOPBACK, Listen, StableAddress
from bot.deploy.processes import (
    kill,
    last_line,
    ours,
    read_json,
    spawn,
    wait_ready,
    write_json,
    write_private,
)
from bot.settings import Settings

HOST = LOOPBACK  # where versions listen: only the proxy listens beyond this machine
PROXY_START_SECONDS = 30.0


def environment_dir(settings: Settings, repository: str, environment: str) -> Path:
    """`deploy/<name>-<hash>/<environment>`: readable, and unique for a path or an owner/name alike."""
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in repository.rstrip("/").rsplit("/", 1)[-1])
    return (
        settings.data_dir
        / "deploy"
        / f"{name}-{xxhash.xxh3_64_hexdigest(repository.encode())[:10]}"
        / environment
    )


class StableUrl:
    """The `url`, `routed`, `switch` and `captured` of the `Target` shape, for versions on loopback;
    `address` is where the proxy listens and what the URL is called (`bot.deploy.local_options`)."""

    target = "local"  # its name in `deploy_targets.<environment>`, for the operator's messages

    def __init__(
        self,
        settings: Settings,
        code: CodeCache,
        repository: str,
        environment: str,
        address: StableAddress | None = None,
    ):
        self.settings, self.code, self.repository = settings, code, repository
        self.environment = environment
        self.address = address or StableAddress()
        self.home = environment_dir(settings, repository, environment)
        self._proxy_process: subprocess.Popen | None = None  # the last one started, for its exit code

    def url(self) -> str:
        return self.address.url_for(self._proxy()[1])

    def _proxy(self) -> tuple[str, int]:
        """Where tierbot reaches the environment's proxy (host, port): the running one when it listens
        where the operator says, else one started there (or on the port it had before)."""
        listen = self.address.address
        running = self._running()
        kept = read_json(self.home / "proxy.json") or {}
        same_host = kept.get("host", LOOPBACK) == listen.host
        where = (listen.local_host, running["port"]) if running else None
        listening = running and same_host and listen.port in (0, running["port"])
        if listening and self._admin("status", where) is not None:
            return where
        self.home.mkdir(parents=True, exist_ok=True)
        token = self.home / "token"
        if not token.exists():
            write_private(token, secrets.token_hex(24))
        if running and running["port"] == listen.port:  # its own old proxy holds the port (another host)
            stop_proxy(self.home)
            running = None
        port = self._start_on(listen, kept.get("port", 0) if same_host else 0)
        if port is None:
            if running:  # the proxy that listened before serves on, as before
                write_json(self.home / "proxy.ready.json", running)
            raise DeployFailed(self._start_failure(listen))
        if running:
            kill(running["pid"], signal.SIGKILL)  # the new proxy serves the same route: none is lost
        write_json(self.home / "proxy.json", {"host": listen.host, "port": port})
        return listen.local_host, port

    def _start_on(self, listen: Listen, before: int) -> int | None:
        """A proxy on the operator's port; without one, on the port it had `before` (else any)."""
        if listen.port:
            return self._start_proxy(listen.host, listen.port)
        port = self._start_proxy(listen.host, before)
        if port is None and before:  # the port it had is taken now: the URL changes, as the report says
            port = self._start_proxy(listen.host, 0)
        return port

    def _running(self) -> dict | None:
        """The environment's running proxy's ready file (pid, port), if it runs."""
        ready = read_json(self.home / "proxy.ready.json")
        return ready if ready and ours(ready["pid"], str(self.home)) else None

    def _start_proxy(self, host: str, port: int) -> int | None:
        (self.home / "proxy.ready.json").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "bot.deploy.proxy", str(self.home), "--host", host, "--port", str(port)]
        self._proxy_process = spawn(argv, self.home, os.environ.copy(), self.home / "proxy.log")
        ready = wait_ready(self.home / "proxy.ready.json", self._proxy_process, PROXY_START_SECONDS)
        return None if ready is None else ready["port"]

    def _start_failure(self, listen: Listen) -> str:
        if listen.port and self._proxy_process is not None and self._proxy_process.poll() == proxy.PORT_TAKEN:
            option = f"deploy_targets.{self.environment}.{self.target}.listen"
            return (
                f"the deploy proxy cannot listen on {self.address.listen} ({option} in the tiers file): "
                f"{last_line(self.home / 'proxy.log') or 'the port is taken'}"
            )
        return f"the deploy proxy did not start; its log: {self.home / 'proxy.log'}"

    def _admin(self, what: str, where: tuple[str, int] | None = None) -> dict | None:
        """The proxy's answer to `/_tierbot/<what>`, None when it does not answer."""
        host, port = where or self._proxy()
        address = f"[{host}]" if ":" in host else host
        request = urllib.request.Request(f"http://{address}:{port}{proxy.ADMIN}{what}")
        request.add_header(proxy.TOKEN_HEADER, (self.home / "token").read_text().strip())
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            return None

    def routed(self) -> dict | None:
        route = read_json(self.home / "route.json")
        return None if route is None else route["handle"]

    @contextlib.contextmanager
    def route_lock(self) -> Iterator[None]:
        """The route changes one at a time on this machine: a deployment's switch, or the supervisor
        restarting the version it names (`bot.deploy.supervise`)."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / "route.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield  # closing the file releases it

    def switch(self, version: Version) -> None:
        with self.route_lock():
            self.route(version)

    def route(self, version: Version) -> None:
        """`switch`, with the route lock held."""
        self._proxy()
        handle = version.handle
        route = {"host": HOST, "port": handle["port"], "deployment": Path(handle["release"]).name}
        write_json(self.home / "route.json", route | {"handle": handle})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the proxy reads the route on its next request: ask it one
            status = self._admin("status")
            if status and status["upstream"] == f"http://{HOST}:{handle['port']}":
                return
            time.sleep(0.05)
        raise DeployFailed("the deploy proxy did not take the new route within 10 s")

    def captured(self) -> list[str]:
        found = self._admin("captured") if read_json(self.home / "proxy.ready.json") else None
        return found["requests"] if found else []

    def stage(self, release: Release, log: Log) -> Path:
        """The release's directory, made afresh: the commit's checkout (`code`), its artifact
        (`artifact/<name>`) and `version.json`."""
        release_dir = self.home / "releases" / str(release.deployment_id)
        log(f"staging the release in {release_dir}")
        shutil.rmtree(release_dir, ignore_errors=True)  # an attempt that died may have left half of it
        self.code.checkout(release.repository, release.sha, release_dir / "code")
        artifact = release_dir / "artifact" / Path(release.artifact_name).name
        artifact.parent.mkdir(parents=True)
        shutil.copyfile(release.artifact, artifact)
        write_json(release_dir / "version.json", release.version())
        return release_dir

    def prune(self, kept: set[str]) -> list[str]:
        """Release directories that are not `kept` (by name: the deployment that staged them) deleted;
        their names. Their versions were stopped when they were replaced or failed."""
        pruned = []
        for release_dir in sorted((self.home / "releases").glob("*")):
            if release_dir.name not in kept:
                shutil.rmtree(release_dir, ignore_errors=True)
                pruned.append(release_dir.name)
        return pruned


def artifact_of(release_dir: Path) -> Path:
    """The artifact a staged release serves."""
    return next((release_dir / "artifact").iterdir())


def stop_proxy(home: Path) -> None:
    """The environment's proxy stopped: its URL answers no more."""
    ready = read_json(home / "proxy.ready.json")
    if ready and ours(ready["pid"], str(home)):
        kill(ready["pid"], signal.SIGKILL)


class BuildWatcher(Watcher):
    """An environment built for a deployment: never cancelled, nothing to report but its log."""

    def phase(self, name: str) -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def started(self, pgid: int) -> None:
        pass

    def cancelled(self) -> bool:
        return False
