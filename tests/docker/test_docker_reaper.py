"""The reaper on a real engine: a bot killed mid-run leaves its container running; the reaper removes
it (and only what is this installation's and not running), and environment images past the budget."""

import io
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import uuid

import pytest

from bot.backends.docker_reaper import reap, reap_engines

from .conftest import BASE_IMAGE, containers_of, docker_tier

pytestmark = pytest.mark.docker

CRASHING_BOT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from bot.backends import Job, backend_for
    from bot.settings import Settings
    from bot.tiers import Tier

    data, instance, run_id = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    (data / "work").mkdir(parents=True)
    settings = Settings(data_dir=data, docker_instance=instance)
    tier = Tier(name="box", backend="docker", backend_options={"image": sys.argv[4]})

    class Watcher:
        def phase(self, name): pass
        def log(self, line): print(line, flush=True)
        def started(self, pgid): pass
        def cancelled(self): return False

    job = Job(run_id=run_id, workdir=data / "work", command="echo ready; sleep 300", tier=tier,
              requirements=None, env={}, log_path=data / "run.log", max_log_bytes=10**6)
    backend_for(tier, settings).run(job, Watcher())
    """
)


def _sleeper(engine, labels: dict[str, str]) -> str:
    container = engine.api.create_container(BASE_IMAGE, command=["sleep", "300"], labels=labels)
    engine.api.start(container["Id"])
    return container["Id"]


def _exists(engine, container_id: str) -> bool:
    return bool(engine.api.containers(all=True, filters={"id": container_id}))


def test_a_crashed_bots_container_is_reaped_and_nothing_else(engine, tmp_path):
    instance = f"test-reaper-{uuid.uuid4().hex[:8]}"
    crashed_run, live_run = 4242, 4343
    bot = subprocess.Popen(
        [sys.executable, "-c", CRASHING_BOT, str(tmp_path / "bot"), instance, str(crashed_run), BASE_IMAGE],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not [c for c in containers_of(engine, crashed_run) if c["State"] == "running"]:
            assert time.monotonic() < deadline and bot.poll() is None, "the bot never started its run"
            time.sleep(0.1)
    finally:
        bot.send_signal(signal.SIGKILL)  # the bot dies mid-run, without a chance to clean up
        bot.wait()
    orphan = containers_of(engine, crashed_run)
    assert [c["State"] for c in orphan] == ["running"]  # what a crash leaves behind

    live = _sleeper(engine, {"tierbot.run": str(live_run), "tierbot.instance": instance})
    other = _sleeper(engine, {"tierbot.run": str(crashed_run), "tierbot.instance": "someone-else"})
    try:
        reaped = reap(engine, instance, is_running=lambda run_id: run_id == live_run, image_budget=10**12)
        assert reaped.containers == [orphan[0]["Names"][0].lstrip("/")]
        assert reaped.containers[0] == f"tierbot-{instance}-run-{crashed_run}"
        assert not _exists(engine, orphan[0]["Id"])
        assert _exists(engine, live) and _exists(engine, other)  # a running run's, another bot's
    finally:
        for container in (live, other):
            engine.api.remove_container(container, force=True, v=True)
        reap(engine, instance, lambda _run: False, image_budget=0, young_seconds=0)  # the bot's image


def _labelled_image(engine, instance: str, megabytes: int) -> str:
    tag = f"tierbot-env:test-{uuid.uuid4().hex[:12]}"
    blob = f"head -c {megabytes * 1024 * 1024} /dev/urandom > /blob-{uuid.uuid4().hex}"  # not from cache
    recipe = f"FROM {BASE_IMAGE}\nRUN {blob}\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(recipe)
        archive.addfile(info, io.BytesIO(recipe))
    context.seek(0)
    output = list(
        engine.api.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            labels={"tierbot.instance": instance, "tierbot.run": "1"},
            rm=True,
            decode=True,
        )
    )
    assert not any("error" in item for item in output), output
    return tag


def test_images_past_the_budget_go_oldest_first(engine, settings):
    instance = f"test-budget-{uuid.uuid4().hex[:8]}"
    older = _labelled_image(engine, instance, 2)
    time.sleep(1.1)  # the engine's creation times are in seconds
    newer = _labelled_image(engine, instance, 2)
    try:
        reaped = reap(engine, instance, lambda _run: False, image_budget=3 * 1024**2, young_seconds=0)
        assert reaped.images == [older] and reaped.freed >= 2 * 1024**2
        assert engine.api.images(name=newer) and not engine.api.images(name=older)
        # Through the engines of a tier set: the default engine reaped, an unreachable one said so.
        tiers = [docker_tier(name="here"), docker_tier(name="away", docker_host="tcp://127.0.0.1:9")]
        results = reap_engines(
            tiers, settings.model_copy(update={"docker_instance": instance}), lambda _: False
        )
        assert results["the default Docker Engine (DOCKER_HOST)"].images == []  # the newer is too young
        assert results["tcp://127.0.0.1:9"].startswith("tcp://127.0.0.1:9 cannot be reached")
    finally:
        reap(engine, instance, lambda _run: False, image_budget=0, young_seconds=0)
    assert not engine.api.images(name=newer)
