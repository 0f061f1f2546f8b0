"""tierbot's entrypoint inside a remote job (AWS Batch): fetch the code, build the environment if asked,
run the experiment, send its outputs back.

It ships with tierbot and reaches the job through the artifact store: the job's command is a line of
`python3 -c` (`bot.backends.remote.BOOTSTRAP`) that fetches this file from a presigned URL, checks its
SHA-256 and runs it. All it needs comes in the environment: presigned URLs for the code bundle (GET) and
for the outputs (PUT), the command, the outputs directory. It never holds an AWS credential of the bot:
those URLs are all it can reach of the bucket, one object each, for a limited time.

Standard library only, Python 3.8 or later: it runs with whatever python3 the job's image has. Its own
lines start with `[tierbot: `; a failure of its own (the code not fetched, the environment not built, the
outputs not sent) is its last line, `[tierbot: entrypoint failed: …]`, which the worker reports as the
run's reason, and it exits 1. Otherwise it exits with the command's code (128 + N for signal N, as a
shell does).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request

MARK = "[tierbot: "
FAILED = "[tierbot: entrypoint failed: "
TOP = "work"  # the bundles' top directory, as tierbot packs the code and unpacks the outputs
ATTEMPTS = 4  # per transfer; S3 has bad seconds
TIMEOUT_SECONDS = 300
CHUNK = 1024 * 1024
OUTPUTS_TYPE = "application/gzip"  # the outputs' Content-Type, part of their URL's signature
# What the entrypoint reads and the experiment has no use for: the URLs, and the entrypoint's own orders.
OWN = (
    "TIERBOT_ENTRYPOINT_URL",
    "TIERBOT_ENTRYPOINT_SHA256",
    "TIERBOT_BUNDLE_URL",
    "TIERBOT_BUNDLE_SHA256",
    "TIERBOT_OUTPUTS_URL",
    "TIERBOT_COMMAND",
    "TIERBOT_OUTPUTS",
    "TIERBOT_REQUIREMENTS",
)


class Failed(Exception):
    """The entrypoint's own failure, in words for the run's reason."""


def say(text: str) -> None:
    print(MARK + text + "]", flush=True)


def main() -> int:
    env = dict(os.environ)
    missing = [name for name in OWN[:6] if not env.get(name)]
    root = tempfile.mkdtemp(prefix="tierbot-")
    work = os.path.join(root, TOP)
    try:
        if missing:
            raise Failed("the job's environment lacks " + ", ".join(missing))
        say("fetching the code")
        fetch(env["TIERBOT_BUNDLE_URL"], env["TIERBOT_BUNDLE_SHA256"], root)
        command_env = {name: value for name, value in env.items() if name not in OWN}
        if env.get("TIERBOT_REQUIREMENTS"):
            command_env = build_environment(work, env["TIERBOT_REQUIREMENTS"], root, command_env)
        code = run(env["TIERBOT_COMMAND"], work, command_env)
        if code == 0:
            send(work, env.get("TIERBOT_OUTPUTS", ""), env["TIERBOT_OUTPUTS_URL"], root)
        return code
    except Failed as exc:
        print(FAILED + str(exc) + "]", flush=True)
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fetch(url: str, sha256: str, root: str) -> None:
    """The code bundle, checked against its hash, unpacked under `root/work`."""
    path = os.path.join(root, "code.tar.gz")
    transfer(lambda: download(url, path), "the code could not be fetched")
    if digest(path) != sha256:
        raise Failed("the code bundle does not match its hash (corrupted, or replaced): not run")
    with tarfile.open(path, "r:gz") as bundle:
        if hasattr(tarfile, "tar_filter"):  # Python 3.12+, and backports: the repository's links stay
            bundle.extractall(root, filter="tar")
        else:
            bundle.extractall(root)
    os.unlink(path)


def build_environment(work: str, requirements: str, root: str, env: dict[str, str]) -> dict[str, str]:
    """A venv with the requirements file installed; the command's environment with it activated."""
    say(f"building the environment from {requirements}")
    venv = os.path.join(root, "venv")
    python = os.path.join(venv, "bin", "python")
    steps = (
        [sys.executable, "-m", "venv", venv],
        [python, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", "-r", requirements],
    )
    for argv in steps:
        sys.stdout.flush()
        if subprocess.call(argv, cwd=work, env=env) != 0:
            raise Failed(
                f"the environment could not be built from {requirements}: {' '.join(argv[1:4])} failed"
            )
    path = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", os.defpath)
    return dict(env, VIRTUAL_ENV=venv, PATH=path)


def run(command: str, work: str, env: dict[str, str]) -> int:
    """The command in its own process group, its output straight to the job's log. A stop of the job
    (SIGTERM to this process, PID 1 of the container) is passed on to the whole group."""
    say("running the experiment")
    proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=work, env=env, start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    code = proc.wait()
    with contextlib.suppress(ProcessLookupError):  # what the command left running goes with it
        os.killpg(proc.pid, signal.SIGKILL)
    return 128 - code if code < 0 else code


def send(work: str, outputs: str, url: str, root: str) -> None:
    """The outputs directory (the whole workdir when none is named) as a tar.gz under `work/`, PUT to
    the presigned URL. Links are archived as links, never followed: the worker judges them."""
    say("sending the outputs")
    path = os.path.join(root, "outputs.tar.gz")
    outputs = os.path.normpath(outputs) if outputs else "."
    with tarfile.open(path, "w:gz") as archive:
        if outputs == ".":
            archive.add(work, arcname=TOP)
        else:
            archive.add(work, arcname=TOP, recursive=False)
            target = os.path.join(work, outputs)
            if os.path.lexists(target):  # none: the worker says so, as for a local run
                archive.add(target, arcname=f"{TOP}/{outputs}")
    transfer(lambda: upload(url, path), "the outputs could not be sent")
    say(f"outputs sent ({os.path.getsize(path)} bytes)")


def transfer(action, what: str) -> None:
    """`action` (one HTTP transfer), again after 1, 2, 4 s when the network or S3 fails for a moment."""
    for attempt in range(ATTEMPTS):
        try:
            action()
            return
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code not in (408, 429) or attempt == ATTEMPTS - 1:
                raise Failed(f"{what}: HTTP {exc.code} {exc.reason}") from None
        except OSError as exc:  # URLError, a reset connection, a timeout
            if attempt == ATTEMPTS - 1:
                raise Failed(f"{what}: {exc}") from None
        time.sleep(2**attempt)


def download(url: str, path: str) -> None:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer, open(path, "wb") as out:
        shutil.copyfileobj(answer, out, CHUNK)


def upload(url: str, path: str) -> None:
    size = os.path.getsize(path)
    with open(path, "rb") as body:
        headers = {"Content-Length": str(size), "Content-Type": OUTPUTS_TYPE}
        request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
            answer.read()


def digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            sha.update(block)
    return sha.hexdigest()


if __name__ == "__main__":
    sys.exit(main())
