"""LocalBackend with real processes: logs, exit codes, timeouts, memory limits, cancel, and venvs."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from bot.backends import backend_for
from bot.backends.local import LocalBackend, kill_process_group
from bot.backends.venv import READY
from bot.errors import TierbotError
from bot.tiers import Tier

from ..fakes.local_backend import RecordingWatcher, alive, job


def wait_dead(pid: int, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_success_captures_the_log_and_passes_only_the_jobs_tierbot_variables(backend, workdir, monkeypatch):
    monkeypatch.setenv("TIERBOT_SLACK_TOKEN", "xoxb-secret")
    watcher = RecordingWatcher()
    command = 'echo "hello from $TIERBOT_RUN_ID in $(pwd)"; echo "token=[$TIERBOT_SLACK_TOKEN]" >&2'
    the_job = job(workdir, command)
    outcome = backend.run(the_job, watcher)
    assert (outcome.state, outcome.exit_code, outcome.reason) == ("succeeded", 0, "exit code 0")
    assert watcher.lines == [f"hello from 7 in {workdir}", "token=[]"]
    assert the_job.log_path.read_text() == f"hello from 7 in {workdir}\ntoken=[]\n"
    assert outcome.log_tail == f"hello from 7 in {workdir}\ntoken=[]"
    assert watcher.phases == ["running"] and len(watcher.pgids) == 1
    assert 0 < outcome.seconds < 5


def test_untrusted_code_gets_none_of_the_workers_environment(backend, workdir, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-secret")
    the_job = job(workdir, "env")
    the_job.trusted = False
    watcher = RecordingWatcher()
    outcome = backend.run(the_job, watcher)
    assert outcome.state == "succeeded"
    shutil.rmtree(outcome.workspace)  # run as root: a sandbox's, which the worker would remove
    seen = dict(line.split("=", 1) for line in watcher.lines if "=" in line)
    assert "aws-secret" not in "\n".join(watcher.lines) and "ghp-secret" not in "\n".join(watcher.lines)
    assert seen["TIERBOT_RUN_ID"] == "7" and seen["PATH"]  # the job's own variables and a PATH remain
    assert seen["HOME"] != os.environ.get("HOME")
    the_job.trusted = True
    trusted = RecordingWatcher()
    backend.run(the_job, trusted)
    assert "AWS_SECRET_ACCESS_KEY=aws-secret" in trusted.lines  # trusted code keeps the environment


def test_exit_code_and_log_tail(backend, workdir):
    command = "for i in $(seq 1 50); do echo line $i; done; exit 3"
    outcome = backend.run(job(workdir, command), RecordingWatcher())
    assert (outcome.state, outcome.exit_code, outcome.reason) == ("failed", 3, "exit code 3")
    tail = outcome.log_tail.splitlines()
    assert len(tail) == 30 and tail[0] == "line 21" and tail[-1] == "line 50"


def test_killed_by_a_signal(backend, workdir):
    command = f"exec {sys.executable} -c 'import os; os.kill(os.getpid(), 15)'"
    outcome = backend.run(job(workdir, command), RecordingWatcher())
    assert (outcome.state, outcome.exit_code, outcome.reason) == ("failed", -15, "killed by signal SIGTERM")


def test_timeout_kills_the_whole_group(backend, workdir):
    started = time.monotonic()
    outcome = backend.run(
        job(workdir, "sleep 30 & echo $! > grandchild.pid; sleep 30", runtime="1s"), RecordingWatcher()
    )
    assert (outcome.state, outcome.exit_code) == ("timed_out", None)
    assert outcome.reason == "killed after 1s: the tier's max_runtime"
    assert time.monotonic() - started < 5
    assert wait_dead(int((workdir / "grandchild.pid").read_text()))


def test_timeout_kills_a_child_that_ignores_sigterm(backend, workdir):
    stubborn = textwrap.dedent("""\
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open("stubborn.pid", "w").write(str(os.getpid()))
        print("ignoring SIGTERM", flush=True)
        time.sleep(30)
    """)
    (workdir / "stubborn.py").write_text(stubborn)
    started = time.monotonic()
    the_job = job(workdir, f"{sys.executable} stubborn.py & wait", runtime="1s")
    outcome = backend.run(the_job, RecordingWatcher())
    elapsed = time.monotonic() - started
    assert outcome.state == "timed_out"
    assert elapsed < 5  # 1 s runtime + 1 s grace, then SIGKILL
    assert "ignoring SIGTERM" in outcome.log_tail
    assert wait_dead(int((workdir / "stubborn.pid").read_text()))


def test_memory_limit(backend, workdir):
    outcome = backend.run(
        job(
            workdir,
            f"{sys.executable} -c 'print(\"allocating\", flush=True); b = bytearray(1024**3)'",
            memory="300MiB",
        ),
        RecordingWatcher(),
    )
    assert (outcome.state, outcome.exit_code) == ("failed", 1)
    assert outcome.reason == "out of memory (limit 300.0 MiB)"
    assert "MemoryError" in outcome.log_tail


def test_within_the_memory_limit_runs_normally(backend, workdir):
    outcome = backend.run(
        job(workdir, f"{sys.executable} -c 'b = bytearray(50 * 1024**2)'", memory="300MiB"),
        RecordingWatcher(),
    )
    assert outcome.state == "succeeded", outcome.log_tail


def test_cancel(backend, workdir):
    started = time.monotonic()
    outcome = backend.run(job(workdir, "echo working; sleep 30"), RecordingWatcher(cancel_after=0.5))
    assert (outcome.state, outcome.exit_code, outcome.reason) == ("cancelled", None, "cancelled")
    assert 0.4 < time.monotonic() - started < 3
    assert outcome.log_tail == "working"


def test_log_is_capped_but_drained(backend, workdir):
    watcher = RecordingWatcher()
    the_job = job(workdir, "for i in $(seq 0 499); do echo line $i; done", max_log_bytes=1024)
    outcome = backend.run(the_job, watcher)
    assert outcome.state == "succeeded"  # the command never blocks on a full pipe
    log = the_job.log_path.read_bytes()
    lines = log.decode().splitlines()
    assert lines[-1] == "[tierbot: log truncated at 1024 bytes]" and lines[0] == "line 0"
    assert len(log) - len(lines[-1]) - 1 <= 1024
    assert len(watcher.lines) == 500 and outcome.log_tail.splitlines()[-1] == "line 499"


def test_requirements_environment_is_built_once_and_reused(backend, settings, tmp_path):
    command = "python -c 'import sys; print(sys.prefix)'; echo venv=$VIRTUAL_ENV"
    outcomes, watchers = [], []
    for attempt in ("a", "b"):
        workdir = tmp_path / attempt
        workdir.mkdir()
        (workdir / "requirements.txt").write_text("# nothing to install\n")
        watchers.append(RecordingWatcher())
        the_job = job(workdir, command, requirements=workdir / "requirements.txt")
        outcomes.append(backend.run(the_job, watchers[-1]))
        if attempt == "a":
            (envs,) = [p for p in settings.envs_dir.iterdir() if p.is_dir()]
            built_at = (envs / READY).stat().st_mtime_ns
    assert [o.state for o in outcomes] == ["succeeded", "succeeded"], outcomes[0].log_tail
    assert all(w.phases == ["building", "running"] for w in watchers)
    for outcome in outcomes:
        assert outcome.log_tail.splitlines()[-2:] == [str(envs), f"venv={envs}"]
    assert any(line.startswith("[tierbot: building the environment") for line in watchers[0].lines)
    assert any(line.startswith("[tierbot: reusing the environment") for line in watchers[1].lines)
    assert (envs / READY).stat().st_mtime_ns == built_at  # not rebuilt
    assert outcomes[1].seconds < 2


def test_two_workers_build_one_environment_once(backend, tmp_path):
    """Two runs needing the same new environment at once: one builds it, the other waits and reuses it."""
    jobs, watchers = [], [RecordingWatcher(), RecordingWatcher()]
    for name in ("w1", "w2"):
        workdir = tmp_path / name
        workdir.mkdir()
        (workdir / "requirements.txt").write_text("# shared\n")
        jobs.append(job(workdir, "echo ok", requirements=workdir / "requirements.txt"))
        jobs[-1].log_path = tmp_path / f"{name}.log"
    threads = [threading.Thread(target=backend.run, args=pair) for pair in zip(jobs, watchers, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    said = [line.split()[1] for w in watchers for line in w.lines if "the environment" in line]
    assert sorted(said) == ["building", "reusing"]
    assert all(w.lines[-1] == "ok" for w in watchers)


def test_failing_requirements_fail_the_build(backend, settings, workdir):
    (workdir / "requirements.txt").write_text("./missing-pkg\n")
    watcher = RecordingWatcher()
    outcome = backend.run(job(workdir, "echo never", requirements=workdir / "requirements.txt"), watcher)
    assert (outcome.state, outcome.exit_code) == ("failed", None)
    assert outcome.reason.startswith(
        "environment build failed: `pip install -r requirements.txt` exited with code 1: ERROR:"
    )
    assert "missing-pkg" in outcome.reason
    assert "never" not in watcher.lines and watcher.phases == ["building"]
    assert not [p for p in settings.envs_dir.iterdir() if p.is_dir()]  # nothing half-built is kept


def test_missing_requirements_file(backend, workdir):
    outcome = backend.run(job(workdir, "true", requirements=workdir / "reqs.txt"), RecordingWatcher())
    assert outcome.state == "failed"
    assert outcome.reason == (
        "environment build failed: the requirements file reqs.txt does not exist in the repository"
    )


def test_experiment_dies_with_a_killed_worker(settings, workdir):
    """A worker killed with SIGKILL cannot clean up; the parent-death signal takes its shell with it."""
    worker = textwrap.dedent(f"""\
        from pathlib import Path
        from bot.backends import Job
        from bot.backends.local import LocalBackend
        from bot.settings import Settings
        from bot.tiers import Tier

        class Quiet:
            def phase(self, name): pass
            def log(self, line): pass
            def started(self, pgid): pass
            def cancelled(self): return False

        job = Job(run_id=1, workdir=Path({str(workdir)!r}), command="echo $$ > shell.pid; exec sleep 30",
                  tier=Tier(name="t", max_runtime="1m"), requirements=None, env={{}},
                  log_path=Path({str(workdir / "log")!r}), max_log_bytes=4096)
        LocalBackend(Settings(data_dir=Path({str(settings.data_dir)!r}))).run(job, Quiet())
    """)
    process = subprocess.Popen([sys.executable, "-c", worker])
    try:
        deadline = time.monotonic() + 15
        while not (workdir / "shell.pid").exists() or not (workdir / "shell.pid").read_text().strip():
            assert process.poll() is None, "the worker died before starting the command"
            assert time.monotonic() < deadline, "the worker never started the command"
            time.sleep(0.05)
        shell = int((workdir / "shell.pid").read_text())
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert wait_dead(shell)
    finally:
        if process.poll() is None:
            process.kill()


def test_kill_process_group(tmp_path):
    orphan = subprocess.Popen(["sleep", "30"], start_new_session=True)
    reaper = threading.Thread(target=orphan.wait)
    reaper.start()
    assert kill_process_group(orphan.pid) is True
    reaper.join(5)
    assert orphan.returncode == -signal.SIGKILL
    assert kill_process_group(orphan.pid) is False
    assert kill_process_group(os.getpgrp()) is False  # never the worker itself
    assert kill_process_group(0) is False


def test_backend_for(settings):
    assert isinstance(backend_for(Tier(name="local"), settings), LocalBackend)
    invalid = "Tier 'gpu' is unavailable: tier 'gpu' has invalid backend_options"
    with pytest.raises(TierbotError, match=invalid):
        backend_for(Tier(name="gpu", backend="batch"), settings)
