"""The terminal door's harness (a pytest plugin, see tests/conftest.py): real `tierbot` processes as a user
starts them, against the test's data dir; the pre-push hook on a real remote; a real `tierbot serve`.

Fixtures: `cli_env`, `tierbot`, `pushing`.
"""

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import jsonschema
import pytest

from ..conftest import GitRepo

UNAVAILABLE_TIERS = """\
tiers:
  - name: local
    default: true
  - name: gpu-small
    backend: batch
    memory: 4GiB
    backend_options: {region: us-east-1, job_queue: gpus}
"""  # a tiers file with a tier this installation cannot run: UNAVAILABLE says why
UNAVAILABLE = (
    "AWS Batch tiers send the code and the outputs through the artifact store: set TIERBOT_ARTIFACT_STORE "
    "to s3://bucket/prefix"
)


@pytest.fixture
def cli_env(settings) -> dict[str, str]:
    """The environment of a `tierbot` process: this test's data dir, nothing from the caller's TIERBOT_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
    ours = {"TIERBOT_DATA_DIR": str(settings.data_dir), "TIERBOT_POLL_SECONDS": "0.05", "COLUMNS": "160"}
    return env | ours


@pytest.fixture
def tierbot(cli_env):
    def call(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            env=cli_env | (env or {}),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=240,
        )

    return call


def tierbot_diff(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`tierbot diff ARGS` in `cwd`, with no data dir and nothing of the caller's environment."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "diff", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120", "HOME": str(cwd)},
    )


def stderr_of(done: subprocess.CompletedProcess[str]) -> str:
    """stderr with rich's line wrapping undone."""
    return " ".join(done.stderr.split())


@pytest.fixture
def pushing(settings, simple_repo: GitRepo, tmp_path: Path):
    """simple_repo with a bare remote, and a `tierbot` on PATH that uses the test's data dir."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    simple_repo.git("remote", "add", "origin", str(remote))
    simple_repo.git("push", "-q", "origin", "main")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "tierbot"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m bot "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
    env |= {"TIERBOT_DATA_DIR": str(settings.data_dir), "PATH": f"{bin_dir}:{env['PATH']}"}

    def run(*args: str, extra: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args),
            cwd=simple_repo.path,
            env=env | (extra or {}),
            capture_output=True,
            text=True,
            timeout=240,
        )

    return run


# -- a real `tierbot serve` -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Served:
    url: str
    process: subprocess.Popen
    output: str = ""  # what it printed (stdout and stderr), once it has stopped


@contextmanager
def serving(data_dir: Path, files_limit: int | None = None, **variables: str) -> Iterator[Served]:
    """A real `tierbot serve` (no run workers) on a free loopback port, configured by `TIERBOT_*`
    `variables` alone, once it answers /healthz; stopped with Ctrl-C at the end. `files_limit`: the
    soft open-files limit it starts with."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
    env |= {"TIERBOT_DATA_DIR": str(data_dir), "COLUMNS": "200"} | variables
    port = free_port()
    command = [sys.executable, "-m", "bot", "serve", "--port", str(port), "--workers", "0"]
    if files_limit is not None:
        command = ["sh", "-c", f"ulimit -Sn {files_limit}; exec {shlex.join(command)}"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        wait_healthy(served)
        yield served
    finally:
        process.send_signal(signal.SIGINT)
        served.output, _ = process.communicate(timeout=30)


def wait_healthy(served: Served, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert served.process.poll() is None and time.monotonic() < deadline, "tierbot serve is not answering"
        try:
            if httpx.get(f"{served.url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)


SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "cli-output.schema.json").read_text())


def json_document(done: subprocess.CompletedProcess[str]) -> dict:
    """The one `--json` document a command printed: valid against the schema in the repository, and
    saying the exit status the process ended with."""
    document = json.loads(done.stdout)
    jsonschema.validate(document, SCHEMA)
    assert document["exit_code"] == done.returncode
    return document


def diff_result(done: subprocess.CompletedProcess[str]) -> dict:
    """The comparison's result in `tierbot diff --json`'s document."""
    return json_document(done)["comparison"]["result"]
