"""Untrusted code on the local backend reaches nothing of the bot's, and the bot hardens itself at start.

Real processes and files: an approved fork's command, run through the real LocalBackend (as root here,
as CI runs), tries to read the bot's /proc/PID/environ, the report key and the database; the bot's
start-up hardening runs in a real process that another process of its user then tries to read; a bot
that is not root refuses untrusted code, in a real process that dropped root.
"""

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from bot import signed_links
from bot.backends import untrusted_refusal
from bot.backends.local import LocalBackend
from bot.backends.sandbox import refusal
from bot.hardening import private_data_dir, secret_variables
from bot.pipeline import Pipeline
from bot.tiers import Tier

from ..fakes.github_bot import REPO, fork_pull, make_bot, settle
from ..fakes.local_backend import RecordingWatcher, job

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (as CI runs)")

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def exposed(settings):
    """Settings whose data dir any user could reach, as a default install (umask 022) left it: only the
    hardening closes it. Under /tmp, since pytest's own temporary directories are closed to others."""
    parent = Path(tempfile.mkdtemp(prefix="tierbot-exposed-"))
    parent.chmod(0o755)
    data = parent / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    yield settings.model_copy(update={"data_dir": data})
    shutil.rmtree(parent)


PRY = """\
echo "uid=$(id -u) groups=$(id -G)"
echo "parent=$PPID"
for f in /proc/$PPID/environ {key} {db}; do
  if cat "$f" > /dev/null 2>&1; then echo "read $f"; else echo "denied $f"; fi
done
if (echo x >> {db}) 2> /dev/null; then echo "wrote {db}"; else echo "denied writing {db}"; fi
echo "cwd=$(pwd)"
env | sed 's/^/env /'
mkdir -p out && echo ok > out/result.txt
"""


def test_untrusted_code_runs_as_the_sandbox_user_and_reaches_nothing_of_the_bots(
    exposed, workdir, monkeypatch
):
    monkeypatch.setenv("TIERBOT_GITHUB_TOKEN", "ghp-secret-in-the-bot")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-in-the-bot")
    Pipeline(exposed).db.dispose()  # the database, as a running bot has it
    signed_links.key(exposed)  # and the report key
    key, db = exposed.data_dir / "report.key", exposed.data_dir / "tierbot.db"
    local = LocalBackend(exposed, grace_seconds=1.0)
    command = PRY.format(key=key, db=db)

    def pry() -> tuple[list[str], Path]:
        the_job = job(workdir, command)
        the_job.trusted = False
        watcher = RecordingWatcher()
        outcome = local.run(the_job, watcher)
        assert outcome.state == "succeeded", outcome.log_tail
        return watcher.lines, outcome.workspace

    before, workspace = pry()  # the data dir as umask 022 left it: the database is open to anyone
    shutil.rmtree(workspace)
    assert f"read {db}" in before
    assert private_data_dir(exposed.data_dir)  # what `tierbot serve` and `tierbot worker` do at start
    lines, workspace = pry()

    assert f"uid={NOBODY.pw_uid} groups={NOBODY.pw_gid}" in lines  # none of root's groups
    assert f"parent={os.getpid()}" in lines  # the process it pried on is the bot (this one)
    for target in (f"/proc/{os.getpid()}/environ", str(key), str(db)):
        assert f"denied {target}" in lines, lines
    assert f"denied writing {db}" in lines
    env = dict(line.removeprefix("env ").split("=", 1) for line in lines if line.startswith("env "))
    assert {k for k in env if k.startswith(("TIERBOT_", "AWS_"))} == {"TIERBOT_RUN_ID"}  # the job's own
    assert not [v for v in env.values() if str(exposed.data_dir) in v or str(workdir) in v]
    try:
        assert f"cwd={workspace}" in lines and workspace.parent == exposed.sandbox_dir
        assert env["HOME"] == f"{workspace}.scratch/home"
        assert env["VIRTUAL_ENV"] == f"{workspace}.scratch/venv"
        # Locked again before the worker reads the outputs; the scratch (venv, home, temp) is gone.
        info = workspace.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o700)
        assert not Path(f"{workspace}.scratch").exists()
        assert (workspace / "out" / "result.txt").read_text() == "ok\n"
        assert not (workdir / "out").exists()  # the checkout itself was never the command's
    finally:
        shutil.rmtree(workspace)


def test_trusted_code_still_runs_as_the_bots_user_in_the_checkout(backend, workdir):
    watcher = RecordingWatcher()
    outcome = backend.run(job(workdir, "id -u; pwd"), watcher)
    assert outcome.state == "succeeded" and outcome.workspace is None
    assert watcher.lines == [str(os.geteuid()), str(workdir)]


def test_untrusted_requirements_are_built_as_the_sandbox_user_in_the_runs_own_venv(
    backend, settings, workdir
):
    """`pip install` runs a package's build code: a fork's must already run as the sandbox user."""
    (workdir / "pkg").mkdir()
    (workdir / "pkg" / "pyproject.toml").write_text(
        '[project]\nname = "probe"\nversion = "1"\n'
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
    )
    (workdir / "pkg" / "backend.py").write_text(
        "import os\nraise SystemExit(f'built by uid {os.getuid()}')\n"
    )
    (workdir / "requirements.txt").write_text("./pkg\n")
    the_job = job(workdir, "true", requirements=workdir / "requirements.txt")
    the_job.trusted = False
    watcher = RecordingWatcher()
    outcome = backend.run(the_job, watcher)
    assert outcome.state == "failed" and outcome.reason.startswith("environment build failed: `pip install")
    assert f"built by uid {NOBODY.pw_uid}" in "\n".join(watcher.lines)
    assert watcher.lines[0] == "[tierbot: building this run's own environment (requirements.txt) as nobody]"
    assert outcome.workspace is None and not settings.envs_dir.exists()  # nothing kept, nothing shared


def test_a_sandbox_dir_the_sandbox_user_cannot_reach_fails_the_run_with_why(settings, workdir):
    inside = settings.model_copy(update={"sandbox_dir": settings.data_dir / "sandbox"})
    the_job = job(workdir, "touch ran")
    the_job.trusted = False
    outcome = LocalBackend(inside).run(the_job, RecordingWatcher())
    assert outcome.state == "failed" and outcome.reason.startswith("the sandbox could not be prepared: ")
    assert "(TIERBOT_SANDBOX_DIR) is out of nobody's reach: " in outcome.reason  # pytest's 0700 directory
    assert not (workdir / "ran").exists()


def test_a_bot_that_is_not_root_refuses_untrusted_code_and_says_how(exposed, workdir):
    """A real process that dropped root runs the real backend: the job fails with the reason, and its
    command never ran."""
    reachable = exposed.data_dir.parent / "as-nobody"  # where that process can write its log
    reachable.mkdir()
    os.chown(reachable, NOBODY.pw_uid, NOBODY.pw_gid)
    script = textwrap.dedent(f"""\
        import dataclasses, json, os
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

        job = Job(run_id=1, workdir=Path({str(workdir)!r}), command="touch pwned", tier=Tier(name="t"),
                  requirements=None, env={{}}, log_path=Path({str(reachable / "log")!r}), max_log_bytes=4096,
                  trusted=False)
        backend = LocalBackend(Settings(data_dir=Path({str(reachable / "data")!r})))
        os.setgroups([])
        os.setgid({NOBODY.pw_gid})
        os.setuid({NOBODY.pw_uid})  # everything is imported: root's interpreter files are closed now
        print(json.dumps(dataclasses.asdict(backend.run(job, Quiet())), default=str))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert (outcome["state"], outcome["exit_code"]) == ("failed", None)
    assert outcome["reason"] == "not run: " + refusal(NOBODY.pw_uid, "nobody")
    assert not (workdir / "pwned").exists()


def test_the_refusal_says_why_and_what_to_do():
    said = refusal(1000, "nobody")
    assert "while tierbot runs as" in said and "uid 1000" in said
    assert "Run it on a Docker tier" in said and "run tierbot as root" in said and "'nobody'" in said
    assert refusal(0, "nobody") is None
    assert "does not exist" in refusal(0, "tierbot-no-such-user")
    assert "privileged" in refusal(0, "root")


def test_a_fork_is_refused_when_it_asks_if_untrusted_code_cannot_run(
    settings, hosted, tmp_path, fake, simple_repo
):
    """The refusal comes where the fork asked (its pull request), not after someone approved it."""
    unusable = settings.model_copy(update={"sandbox_user": "tierbot-no-such-user", "local_forks": True})
    assert "does not exist" in untrusted_refusal(Tier(name="local"), unusable)
    summary = _fork_refusal(unusable, tmp_path, fake, simple_repo)
    assert "Tier 'local' cannot run" in summary and "'tierbot-no-such-user'" in summary


def test_a_fork_never_runs_on_a_local_tier_by_default(settings, hosted, tmp_path, fake, simple_repo):
    """Without a sandbox tier (TIERBOT_SANDBOX_TIER) and without the operator's unsafe opt-in, a fork
    asking for the local tier is refused on its pull request, before anyone could approve it."""
    summary = _fork_refusal(settings, tmp_path, fake, simple_repo)
    assert "is a fork's code, and a fork's code runs only in the sandbox" in summary
    assert "TIERBOT_SANDBOX_TIER" in summary


def _fork_refusal(settings, tmp_path, fake, simple_repo) -> str:
    """The summary of the failed check run a fork's pull request gets."""
    bot = make_bot(settings, tmp_path, fake)
    try:
        bot.deliver("pull_request", fork_pull(fake, simple_repo))
        settle(bot)
        (check,) = fake.checks_for(REPO, simple_repo.git("rev-parse", "better"))
        assert (check.status, check.conclusion) == ("completed", "failure")
        assert "/run approve" not in check.output["summary"]
        assert not [r for r in bot.pipeline.recent_runs() if not r.trusted and r.state != "failed"]
        return check.output["summary"]
    finally:
        bot.stop()


# -- the bot's own start-up hardening ------------------------------------------------------------------

HARDENED = """\
import ctypes, json, os, sys, time
from pathlib import Path
from bot.hardening import harden
from bot.settings import Settings

settings = Settings(data_dir=Path(sys.argv[1]))
os.setgroups([])
os.setgid({gid})
os.setuid({uid})
# Switching users made this process non-dumpable by itself; a process started as that user is not.
ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)
warnings = harden(settings) if sys.argv[2] == "harden" else []
umask = os.umask(0o077)
left = sorted(k for k in os.environ if "SECRET" in k)
print(json.dumps({{"warnings": warnings, "umask": umask, "left": left}}))
sys.stdout.flush()
time.sleep(30)
"""


def start_bot_like(data_dir: Path, mode: str) -> tuple[subprocess.Popen, dict]:
    """A process of the sandbox user's with secrets in its environment, as a bot started with them."""
    env = os.environ | {
        "TIERBOT_GITHUB_WEBHOOK_SECRET": "whsec-in-environ",
        "AWS_SECRET_ACCESS_KEY": "aws-in-environ",
    }
    script = HARDENED.format(uid=NOBODY.pw_uid, gid=NOBODY.pw_gid)
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(data_dir), mode], env=env, stdout=subprocess.PIPE, text=True
    )
    return process, json.loads(process.stdout.readline())


def read_environ(pid: int) -> subprocess.CompletedProcess:
    """Another process of the same user reading the bot's environment block."""
    return subprocess.run(
        ["cat", f"/proc/{pid}/environ"],
        user=NOBODY.pw_uid,
        group=NOBODY.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_hardening_closes_the_environment_to_the_same_user_and_forgets_the_secrets(exposed):
    data = exposed.data_dir
    os.chown(data.parent, NOBODY.pw_uid, NOBODY.pw_gid)
    os.chown(data, NOBODY.pw_uid, NOBODY.pw_gid)
    plain, _ = start_bot_like(data, "plain")
    hardened, said = start_bot_like(data, "harden")
    try:
        opened = read_environ(plain.pid)
        assert opened.returncode == 0 and "whsec-in-environ" in opened.stdout  # what it closes
        closed = read_environ(hardened.pid)
        assert closed.returncode != 0 and "Permission denied" in closed.stderr
        assert closed.stdout == ""
    finally:
        for process in (plain, hardened):
            process.send_signal(signal.SIGKILL)
            process.wait()
    assert said["left"] == [] and said["umask"] == 0o077  # no child inherits them; files are private
    (warning,) = said["warnings"]
    assert warning.startswith(f"The data dir {data} was open to other users (mode 0755)")
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def test_every_secret_setting_is_forgotten_under_each_name_it_is_read_from(settings):
    from pydantic import SecretStr

    configured = settings.model_copy(
        update={
            "github_token": SecretStr("t"),
            "aws_secret_access_key": SecretStr("a"),
            "database_url": "postgresql+psycopg://tierbot:pw@db/tierbot",
        }
    )
    names = secret_variables(configured)
    assert {"TIERBOT_GITHUB_TOKEN", "TIERBOT_AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"} <= names
    assert "TIERBOT_DATABASE_URL" in names and "TIERBOT_DATA_DIR" not in names


def test_tierbot_worker_hardens_itself_at_start(exposed):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
    env |= {"TIERBOT_DATA_DIR": str(exposed.data_dir), "COLUMNS": "200"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "bot", "worker"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        said = ""
        while "tierbot worker:" not in said:
            assert worker.poll() is None and time.monotonic() < deadline, said
            said += worker.stderr.readline()
    finally:
        worker.send_signal(signal.SIGINT)
        worker.communicate(timeout=30)
    assert f"Warning: The data dir {exposed.data_dir} was open to other users (mode 0755)" in " ".join(
        said.split()
    )
    assert stat.S_IMODE(exposed.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((exposed.data_dir / "tierbot.db").stat().st_mode) == 0o600  # umask 077
