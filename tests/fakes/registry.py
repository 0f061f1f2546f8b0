"""A Docker registry on loopback for ECR pushes (a pytest plugin, see tests/conftest.py): Debian's
`docker-registry` (the distribution project's registry, `apt-get install -y docker-registry`) serving on
127.0.0.1 from a temporary directory, with basic auth by an htpasswd file whose one user is the one
moto's ECR hands out (`AWS`, with the password of its authorization token), so that a push that did not
log in with the token is refused as ECR would refuse it. The Docker Engine counts 127.0.0.0/8 as an
insecure registry: plain HTTP, no certificate.

Fixture: `registry` (one per session; started here, stopped by its PID).
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARY = "/usr/bin/docker-registry"
USER = "AWS"
PASSWORD = "123456789012-auth-token"  # moto's ECR token for its default account: AWS:<account>-auth-token
# PASSWORD's bcrypt hash (the registry's htpasswd takes bcrypt only), made once: the password is fixed.
HASHED = "$2b$10$xnSVRAQbYic4eItVegIC1ena.pJXL79Tx2NJpqBRxz9Bx5pQFLPmm"
START_SECONDS = 20


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:<port>, as an image name starts

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}"

    def manifest(self, repository: str, tag: str) -> dict | None:
        """The image's manifest in the registry (asked over its HTTP API), or None when it has none."""
        request = urllib.request.Request(
            f"{self.endpoint}/v2/{repository}/manifests/{tag}",
            headers={
                "Accept": "application/vnd.docker.distribution.manifest.v2+json",
                "Authorization": "Basic " + b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(root: Path, port: int) -> Path:
    (root / "htpasswd").write_text(f"{USER}:{HASHED}\n")
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "tierbot-test"},
        "auth": {"htpasswd": {"realm": "tierbot-test", "path": str(root / "htpasswd")}},
    }
    path = root / "config.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def _started(process: subprocess.Popen, registry: Registry, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry ended at start: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"{registry.endpoint}/v2/", timeout=1)
        except urllib.error.HTTPError:  # 401: it answers, and asks for the password
            return
        except OSError:
            time.sleep(0.1)
            continue
        return
    raise RuntimeError(f"docker-registry did not answer within {START_SECONDS} s")


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    if not os.access(BINARY, os.X_OK):
        reason = f"ECR pushes go to a local registry: apt-get install -y docker-registry ({BINARY})"
        if os.environ.get("TIERBOT_REQUIRE_DOCKER"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="tierbot-registry-"))
    port = _free_port()
    log = root / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [BINARY, "serve", str(_config(root, port))], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        found = Registry(host=f"127.0.0.1:{port}")
        _started(process, found, log)
        yield found
    finally:
        process.terminate()  # by its PID: the one this fixture started
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)
