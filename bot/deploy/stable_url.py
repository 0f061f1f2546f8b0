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

import json
import os
import secrets
import shutil
import signal
import sys
import time
import urllib.request
from pathlib import Path

import xxhash

from bot.backends import Watcher
from bot.checkout import CodeCache
from bot.deploy import DeployFailed, Log, Release, Version, proxy
from bot.deploy.processes import kill, ours, read_json, spawn, wait_ready, write_json, write_private
from bot.settings import Settings

HOST = "127.0.0.1"
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
    """The `url`, `routed`, `switch` and `captured` of the `Target` shape, for versions on loopback."""

    def __init__(self, settings: Settings, code: CodeCache, repository: str, environment: str):
        self.settings, self.code, self.repository = settings, code, repository
        self.home = environment_dir(settings, repository, environment)

    def url(self) -> str:
        return f"http://{HOST}:{self._proxy_port()}"

    def _proxy_port(self) -> int:
        """The running proxy's port; a proxy started (on the port it had before) when none answers."""
        ready = read_json(self.home / "proxy.ready.json")
        if ready and ours(ready["pid"], str(self.home)) and self._admin("status", ready["port"]) is not None:
            return ready["port"]
        self.home.mkdir(parents=True, exist_ok=True)
        token = self.home / "token"
        if not token.exists():
            write_private(token, secrets.token_hex(24))
        wanted = (read_json(self.home / "proxy.json") or {}).get("port", 0)
        port = self._start_proxy(wanted)
        if port is None:  # the port it had is taken now: the URL changes, which the deploy report says
            port = self._start_proxy(0)
        if port is None:
            raise DeployFailed(f"the deploy proxy did not start; its log: {self.home / 'proxy.log'}")
        write_json(self.home / "proxy.json", {"port": port})
        return port

    def _start_proxy(self, port: int) -> int | None:
        (self.home / "proxy.ready.json").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "bot.deploy.proxy", str(self.home), "--host", HOST, "--port", str(port)]
        process = spawn(argv, self.home, os.environ.copy(), self.home / "proxy.log")
        ready = wait_ready(self.home / "proxy.ready.json", process, PROXY_START_SECONDS)
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

    def routed(self) -> dict | None:
        route = read_json(self.home / "route.json")
        return None if route is None else route["handle"]

    def switch(self, version: Version) -> None:
        self._proxy_port()
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
