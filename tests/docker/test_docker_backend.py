"""The docker backend on a real engine: confinement, limits, timeout, cancel, outputs, and environments
built once (from the tier's base image with requirements, or from the repository's Dockerfile)."""

import base64
import hashlib
import http.server
import re
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.backends import backend_for
from bot.outputs import BlobStore, OutputLimits, collect

from ..fakes.local_backend import RecordingWatcher
from .conftest import containers_of, docker_job, docker_tier

pytestmark = pytest.mark.docker


def run(job, settings, watcher=None):
    watcher = watcher or RecordingWatcher()
    return backend_for(job.tier, settings).run(job, watcher), watcher


def test_the_command_runs_confined_as_nobody_on_a_read_only_root(
    engine, docker_settings, workdir, monkeypatch
):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")  # the worker's; never the container's
    command = (
        "id -u; touch /x 2>&1; echo > /tmp/t && echo tmp-writable; echo > here && echo workdir-writable; "
        "test -e /var/run/docker.sock && echo docker-socket || echo no-docker-socket; "
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; echo interfaces $(ls /sys/class/net); "
        'echo "secret=[$AWS_SECRET_ACCESS_KEY] run=$TIERBOT_RUN_ID home=$HOME"; pwd; exit 3'
    )
    job = docker_job(workdir, command, docker_tier())
    outcome, watcher = run(job, docker_settings)
    assert (outcome.state, outcome.exit_code, outcome.reason) == ("failed", 3, "exit code 3")
    lines = watcher.lines[watcher.lines.index("65534") :]  # the command's output, after the image's
    assert lines[:2] == ["65534", "touch: cannot touch '/x': Read-only file system"]
    assert lines[2:5] == ["tmp-writable", "workdir-writable", "no-docker-socket"]
    assert lines[5].split() == ["CapEff:", "0000000000000000"] and lines[6].split() == ["NoNewPrivs:", "1"]
    assert lines[7] == "interfaces lo"  # network: none
    assert lines[8] == f"secret=[] run={job.run_id} home=/tmp"
    assert lines[9] == "/tierbot/work"
    assert watcher.phases == ["building", "running"] and watcher.pgids == []  # no process group here
    assert job.log_path.read_text().endswith("/tierbot/work\n")
    assert containers_of(engine, job.run_id) == []  # removed, with its volume


def test_out_of_memory_is_read_from_the_container_state(engine, docker_settings, workdir):
    command = "echo allocating; python -c \"x = b'x' * (256 << 20); print('survived')\""
    outcome, watcher = run(docker_job(workdir, command, docker_tier(memory="64MiB")), docker_settings)
    assert (outcome.state, outcome.reason) == ("failed", "out of memory (limit 64.0 MiB)")
    assert outcome.exit_code == 137 and "survived" not in watcher.lines and "allocating" in watcher.lines


def test_timeout_stops_and_removes_the_container(engine, docker_settings, workdir):
    job = docker_job(workdir, "echo started; sleep 60", docker_tier(runtime="1s"))
    started = time.monotonic()
    outcome, watcher = run(job, docker_settings)
    assert (outcome.state, outcome.exit_code) == ("timed_out", None)
    assert outcome.reason == "killed after 1s: the tier's max_runtime"
    assert "started" in watcher.lines and 1 <= outcome.seconds < 10
    assert time.monotonic() - started < 15
    assert containers_of(engine, job.run_id) == []


def test_cancel_mid_run_stops_the_whole_group_and_removes_the_container(engine, docker_settings, workdir):
    # The shell traps SIGTERM: docker-init hands it to the command's whole group, as a local run's gets it.
    command = "trap 'echo terminated; exit 143' TERM; echo working; sleep 60 & wait"
    job = docker_job(workdir, command, docker_tier())
    outcome, watcher = run(job, docker_settings, RecordingWatcher(cancel_after=2.0))
    assert (outcome.state, outcome.exit_code, outcome.reason) == ("cancelled", None, "cancelled")
    assert watcher.lines[-2:] == ["working", "terminated"] and outcome.seconds < 10
    assert containers_of(engine, job.run_id) == []


def test_outputs_come_out_and_a_symlink_out_of_the_workdir_is_listed_not_read(
    engine, docker_settings, workdir, tmp_path
):
    command = (
        "mkdir -p out/deep && echo 0.9 > out/metrics.txt && echo nested > out/deep/a.txt && "
        "ln -s /etc out/etc && ln -s /etc/passwd out/passwd && ln -s metrics.txt out/alias"
    )
    job = docker_job(workdir, command, docker_tier())
    outcome, _ = run(job, docker_settings)
    assert outcome.state == "succeeded", outcome.reason
    workspace = outcome.workspace
    assert workspace is not None and workspace.is_relative_to(docker_settings.data_dir)
    assert (workspace / "out" / "etc").is_symlink()  # a link, as the container had it, pointing nowhere safe
    manifest = collect(workspace, "out", BlobStore(tmp_path / "blobs"), OutputLimits(100, 10**6))
    assert set(manifest.files) == {"metrics.txt", "deep/a.txt", "alias"}
    assert {(s.path, s.reason.split(",")[0]) for s in manifest.skipped} == {
        ("etc", "a symlink to /etc"),
        ("passwd", "a symlink to /etc/passwd"),
    }
    shutil.rmtree(workspace)


def test_an_untrusted_run_is_sandboxed_by_the_container(engine, docker_settings, workdir):
    job = docker_job(workdir, "mkdir out && id -u > out/uid", docker_tier(), trusted=False)
    outcome, _ = run(job, docker_settings)
    assert outcome.state == "succeeded", outcome.reason
    assert (outcome.workspace / "out" / "uid").read_text() == "65534\n"
    shutil.rmtree(outcome.workspace)
    open_tier = docker_tier(network="host")  # the backend refuses it too, not only the submission
    refused, _ = run(docker_job(workdir, "true", open_tier, trusted=False), docker_settings)
    assert refused.state == "failed" and refused.reason.startswith("not run: code from outside")


# -- environments ------------------------------------------------------------------------------------


def tiny_wheel(directory: Path, value: str) -> Path:
    """A real wheel of one module, `tinypkg`, whose VALUE is `value`."""
    files = {
        "tinypkg/__init__.py": f"VALUE = {value!r}\n",
        "tinypkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n",
        "tinypkg-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files["tinypkg-0.1.dist-info/RECORD"] = "\n".join([*record, "tinypkg-0.1.dist-info/RECORD,,"]) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "tinypkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


@pytest.fixture
def package_index(tmp_path: Path) -> Iterator[tuple[str, list[str], str]]:
    """A find-links page on 127.0.0.1 serving the tiny wheel, and the paths it was asked for."""
    value = uuid.uuid4().hex
    served = tmp_path / "index"
    tiny_wheel(served, value)
    asked: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *_args) -> None:
            asked.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", asked, value
    server.shutdown()
    thread.join()


def _built(lines: list[str]) -> bool:
    return any(line.startswith("Step 1/") for line in lines)


def _tag(lines: list[str]) -> str:
    line = next(line for line in lines if line.startswith("[tierbot: ") and "environment image" in line)
    return line.split("environment image ")[1].split()[0]


def test_requirements_are_installed_on_the_base_image_once(engine, docker_settings, workdir, package_index):
    # The engine builds on the host's network here (dockerd runs with --bridge=none, so `bridge` has
    # none): pip reaches the index on 127.0.0.1, and the experiment itself still runs with network none.
    url, asked, value = package_index
    (workdir / "requirements.txt").write_text(f"--no-index\n--find-links {url}\ntinypkg==0.1\n")
    tier = docker_tier(build_network="host")
    command = "python -c 'import tinypkg, sys; print(\"value\", tinypkg.VALUE, sys.prefix)'"
    first_job = docker_job(workdir, command, tier, requirements=workdir / "requirements.txt")
    first, watcher = run(first_job, docker_settings)
    assert first.state == "succeeded", first.reason + first.log_tail
    assert f"value {value} /opt/tierbot/venv" in watcher.lines
    assert _built(watcher.lines) and any("Successfully installed tinypkg-0.1" in x for x in watcher.lines)
    assert asked, "pip never asked the index"
    tag = _tag(watcher.lines)
    image = engine.api.inspect_image(tag)
    assert image["Config"]["Labels"]["tierbot.run"] == str(first_job.run_id)
    assert image["Config"]["Labels"]["tierbot.instance"] == docker_settings.docker_instance
    shutil.rmtree(first.workspace)

    asked.clear()
    again, watcher = run(
        docker_job(workdir, command, tier, requirements=workdir / "requirements.txt"), docker_settings
    )
    assert again.state == "succeeded" and f"value {value} /opt/tierbot/venv" in watcher.lines
    assert not _built(watcher.lines) and asked == []  # nothing built, pip not even asked
    assert (
        watcher.lines[0]
        == f"[tierbot: reusing the environment image {tag} (tierbot-base:bookworm with requirements.txt)]"
    )
    assert engine.api.inspect_image(tag)["Id"] == image["Id"]
    shutil.rmtree(again.workspace)


def test_a_failing_requirement_fails_the_build_with_pips_words(engine, docker_settings, workdir):
    (workdir / "requirements.txt").write_text(f"--no-index\nno-such-package-{uuid.uuid4().hex[:8]}\n")
    job = docker_job(workdir, "true", docker_tier(), requirements=workdir / "requirements.txt")
    outcome, _ = run(job, docker_settings)
    assert outcome.state == "failed" and outcome.reason.startswith("environment build failed: ")
    assert "returned a non-zero code: 1" in outcome.reason
    assert "No matching distribution found" in outcome.log_tail


DOCKERFILE = """\
FROM tierbot-base:bookworm
RUN echo built-{nonce} > /opt/marker
COPY data.txt /opt/data.txt
USER root
WORKDIR /srv
ENTRYPOINT ["false"]
"""


def test_a_dockerfile_is_built_once_per_context_and_run(engine, docker_settings, tmp_path):
    nonce = uuid.uuid4().hex
    first_dir = tmp_path / "first" / "work"
    first_dir.mkdir(parents=True)
    (first_dir / "env").mkdir()
    (first_dir / "env" / "Dockerfile").write_text(DOCKERFILE.format(nonce=nonce))
    (first_dir / "data.txt").write_text("one\n")
    (first_dir / "notes.md").write_text("ignored by the engine\n")
    (first_dir / ".dockerignore").write_text("# not context\nnotes.md\n")
    # The image's USER, WORKDIR and ENTRYPOINT are the repository's; the run's are tierbot's.
    command = "id -u && pwd && cat /opt/marker /opt/data.txt && mkdir out && cp /opt/data.txt out/"
    tier = docker_tier()

    def run_in(directory: Path):
        job = docker_job(directory, command, tier, dockerfile=directory / "env" / "Dockerfile")
        outcome, watcher = run(job, docker_settings)
        assert outcome.state == "succeeded", outcome.reason + outcome.log_tail
        assert (outcome.workspace / "out" / "data.txt").read_text() == (directory / "data.txt").read_text()
        shutil.rmtree(outcome.workspace)
        return watcher.lines

    lines = run_in(first_dir)
    assert _built(lines) and f"built-{nonce}" in lines and "one" in lines
    assert "65534" in lines and "/tierbot/work" in lines
    assert "env/Dockerfile" in lines[0]
    tag = _tag(lines)

    # A fresh checkout of the same tree (new times), another .git, an ignored file changed: nothing built.
    second_dir = tmp_path / "second" / "work"
    shutil.copytree(first_dir, second_dir)
    (second_dir / ".git").mkdir()
    (second_dir / ".git" / "HEAD").write_text("ref: refs/heads/elsewhere\n")
    (second_dir / "notes.md").write_text("changed, but ignored\n")
    lines = run_in(second_dir)
    assert not _built(lines) and _tag(lines) == tag and f"built-{nonce}" in lines

    (second_dir / "data.txt").write_text("two\n")  # in the context: a new environment
    lines = run_in(second_dir)
    assert _built(lines) and _tag(lines) != tag and "two" in lines


def test_cancel_while_building_stops_the_build(engine, docker_settings, workdir):
    nonce = uuid.uuid4().hex
    (workdir / "Dockerfile").write_text(f"FROM tierbot-base:bookworm\nRUN echo {nonce} && sleep 60\n")
    job = docker_job(workdir, "true", docker_tier(), dockerfile=workdir / "Dockerfile")
    started = time.monotonic()
    outcome, watcher = run(job, docker_settings, RecordingWatcher(cancel_after=3.0))
    assert (outcome.state, outcome.reason) == ("cancelled", "cancelled")
    assert nonce in watcher.lines and time.monotonic() - started < 15
    deadline = time.monotonic() + 10  # the engine removes its build container as it notices
    while any(nonce in (c.get("Command") or "") for c in engine.api.containers(all=True)):
        assert time.monotonic() < deadline, "the build's container outlived the cancel"
        time.sleep(0.2)


def test_without_image_or_dockerfile_the_run_fails_saying_so(engine, docker_settings, workdir):
    tier = docker_tier()
    tier = tier.model_copy(update={"backend_options": {}})
    outcome, _ = run(docker_job(workdir, "true", tier), docker_settings)
    assert outcome.state == "failed"
    assert "no base image (backend_options.image) and the repository names no Dockerfile" in outcome.reason


def test_the_workdir_archive_is_bounded(engine, docker_settings, workdir):
    settings = docker_settings.model_copy(update={"max_output_files": 5})
    outcome, _ = run(
        docker_job(workdir, "mkdir out && touch out/f1 out/f2 out/f3 out/f4 out/f5 out/f6", docker_tier()),
        settings,
    )
    assert outcome.state == "failed" and outcome.workspace is None
    assert re.fullmatch(
        r"outputs not copied out of the container: the container's workdir holds more than \d+ entries",
        outcome.reason,
    )
    assert not any((docker_settings.data_dir / "containers").iterdir())
