"""Webhook acknowledgement: `tierbot serve` against a bare FastAPI app that answers 202 to everything.

    python benchmarks/webhook_ack.py [--deliveries 2000] [--concurrency 16] [--rounds 3] [--keep]
                                     [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Starts, in the same run, the real `tierbot serve --workers 0` and a bare FastAPI app, each one uvicorn
process on a free loopback port with the same uvicorn settings (asyncio, h11, log level info with access
log: what `tierbot serve` sets). Sends both the same correctly signed `pull_request` "opened" deliveries
(distinct delivery ids and PR numbers; `--deliveries` to each, split over `--rounds` rounds, the order of
the two swapped every round) at a fixed concurrency over keep-alive connections, after 50 untimed
warm-up deliveries. `--workers 0` starts no worker thread beside the server, so what is measured is the
HTTP answer alone: verify the signature, parse, record the delivery, answer 202. Prints p50, p99, max
and throughput of each (median over the rounds) and the ratios tierbot / bare.

Then checks that every delivery leads to exactly one queued run: door workers in this process turn the
recorded deliveries into runs (deliveries only: no run executes, no report is synced); every delivery
must be recorded and "done", with one queued head run per PR. Some delivery ids are sent again: each
must answer 200 "duplicate", and nothing new may appear.

Targets: tierbot's p99 within 1.5× of the bare app's; every delivery leads to exactly one queued run.
SQLite in the temp data dir by default; `--database-url` names a PostgreSQL server, on which a fresh
database is created for the run and dropped afterwards (the URL's own database only serves to do that).
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx  # readiness polls only; see `loadgen.send` for the measuring client
from loadgen import Batch, SignedDelivery, send, signed, summary

SECRET = "bench-secret"
REPOSITORY = "acme/models"
SPEC = "name: bench\nrun:\n  command: python make.py\n  outputs: out\n"
SCRIPT = "import pathlib\npathlib.Path('out').mkdir()\npathlib.Path('out/metrics.json').write_text('{}')\n"
TARGET = 1.5
WARMUP = 50
RESEND = 50
HANDLERS = 4  # door workers that turn the recorded deliveries into runs, for the check


# -- the bare app: run by this file in a child process ------------------------------------------------


def serve_bare(port: int, log_level: str) -> None:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def accept(request: Request) -> JSONResponse:
        await request.body()  # received like tierbot's, then nothing else
        return JSONResponse({"result": "queued"}, status_code=202)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level=log_level)


# -- set-up -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=b", "-c", "user.email=b@example.invalid", "-c", "commit.gpgsign=false"]
    done = subprocess.run(
        ["git", "-C", str(repo), *identity, *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def publish_repo(root: Path) -> tuple[str, str]:
    """A repository with main and two branches, published as the bare acme/models; (main, head) shas."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "tierbot.yaml").write_text(SPEC)
    (repo / "make.py").write_text(SCRIPT)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main")
    for branch in ("better", "worse"):
        git(repo, "checkout", "-q", "-b", branch, "main")
        (repo / "notes.txt").write_text(branch)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", branch)
    git(repo, "checkout", "-q", "main")
    bare = root / "git" / f"{REPOSITORY}.git"
    bare.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    return git(repo, "rev-parse", "main"), git(repo, "rev-parse", "better")


def create_database(server_url: str) -> tuple[str, str]:
    """A fresh database on the PostgreSQL server of `server_url`: (its URL, its name)."""
    import sqlalchemy

    name = f"tierbot_bench_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name, name


def drop_database(server_url: str, name: str) -> None:
    import sqlalchemy

    admin = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{url} exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} did not come up in {timeout:.0f} s:\n{log.read_text()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- checking the runs --------------------------------------------------------------------------------


def handle_all(pipeline, threads: int) -> int:
    """Hand every pending delivery to door workers (deliveries only; `Worker.run_once` would also sync
    reports, i.e. call the real GitHub API); how many they handled."""
    from bot.worker import Worker

    handled = Counter()

    def drain(n: int) -> None:
        worker = Worker(pipeline, runs=False)
        while worker.handle_delivery():
            handled[n] += 1

    pool = [threading.Thread(target=drain, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(handled.values())


def counts(pipeline) -> dict[str, int]:
    from sqlalchemy import func, select

    from bot.store import Delivery as Recorded
    from bot.store import Run, RunState

    def count(model, *where) -> int:
        return s.scalar(select(func.count()).select_from(model).where(*where))

    with pipeline.db.session() as s:
        return {
            "deliveries recorded": count(Recorded),
            "deliveries done": count(Recorded, Recorded.state == "done"),
            "head runs": count(Run, Run.role == "head"),
            "head runs queued": count(Run, Run.role == "head", Run.state == RunState.queued),
            "PRs with a head run": s.scalar(
                select(func.count(Run.subject.distinct())).where(Run.role == "head")
            ),
            "baseline runs": count(Run, Run.role == "baseline"),
        }


def check_runs(settings, port: int, sent: list[SignedDelivery], concurrency: int) -> bool:
    from sqlalchemy import select

    from bot import wiring
    from bot.store import Run

    pipeline = wiring.pipeline(settings)  # as `tierbot serve` builds it: the doors plugged in
    started = time.perf_counter()
    handled = handle_all(pipeline, HANDLERS)
    seconds = time.perf_counter() - started
    before = counts(pipeline)
    with pipeline.db.session() as s:
        subjects = set(s.scalars(select(Run.subject).where(Run.role == "head")))
    expected = {f"github:{REPOSITORY}#{json.loads(d.body)['number']}" for d in sent}
    resent = sent[:: max(1, len(sent) // RESEND)][:RESEND]
    batch, answers = asyncio.run(send(port, resent, concurrency))
    duplicates = sum(1 for a in answers if a.get("result") == "duplicate")
    again = handle_all(pipeline, 1)
    after = counts(pipeline)
    pipeline.db.dispose()

    total = len(sent)
    print(
        f"\nEvery delivery → one queued run: {total} deliveries sent to tierbot (distinct ids and PRs), "
        f"handled by {HANDLERS} door workers in this process in {seconds:.1f} s ({handled} handled):"
    )
    for name, value in before.items():
        print(f"  {name:<20} {value}")
    print(f"  head runs are for exactly the PRs sent: {subjects == expected}")
    print(
        f"  resent {len(resent)} delivery ids: {duplicates} answered duplicate (statuses "
        f"{dict(batch.statuses)}); handled afterwards {again}; counts unchanged {after == before}"
    )
    ok = (
        before["deliveries recorded"] == before["deliveries done"] == total
        and before["head runs"] == before["head runs queued"] == before["PRs with a head run"] == total
        and subjects == expected
        and duplicates == len(resent)
        and batch.statuses == Counter({200: len(resent)})
        and again == 0
        and after == before
    )
    print(f"  target: every delivery leads to exactly one queued run → {'PASS' if ok else 'MISS'}")
    return ok


# -- main ---------------------------------------------------------------------------------------------


def measure(
    ports: dict[str, int], rounds: list[list[SignedDelivery]], concurrency: int
) -> dict[str, list[Batch]]:
    """Each round's deliveries to both targets, the order swapped every round."""
    batches: dict[str, list[Batch]] = {"bare": [], "tierbot": []}
    for r, deliveries in enumerate(rounds):
        for name in ("bare", "tierbot") if r % 2 == 0 else ("tierbot", "bare"):
            batches[name].append(asyncio.run(send(ports[name], deliveries, concurrency))[0])
        line = "   ".join(
            f"{name} p50 {b.percentile(50) * 1000:.2f} ms p99 {b.percentile(99) * 1000:.2f} ms "
            f"{b.throughput:.0f}/s"
            for name, b in ((name, batches[name][-1]) for name in ("bare", "tierbot"))
        )
        print(f"  round {r + 1}: {line}")
    return batches


def bench(args: argparse.Namespace, root: Path, database_url: str | None) -> bool:
    from pydantic import SecretStr

    from bot.settings import Settings

    main_sha, head_sha = publish_repo(root)
    settings = Settings(
        data_dir=root / "data",
        database_url=database_url,
        tiers_file=None,
        git_url_template=f"file://{root}/git/{{full_name}}.git",
        github_webhook_secret=SecretStr(SECRET),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERBOT_")}
    env |= {
        "TIERBOT_DATA_DIR": str(settings.data_dir),
        "TIERBOT_GIT_URL_TEMPLATE": settings.git_url_template,
        "TIERBOT_GITHUB_WEBHOOK_SECRET": SECRET,
    } | ({"TIERBOT_DATABASE_URL": database_url} if database_url else {})
    ports = {"bare": free_port(), "tierbot": free_port()}
    logs = {name: root / f"{name}.log" for name in ports}
    commands = {
        "tierbot": [sys.executable, "-m", "bot", "serve", "--port", str(ports["tierbot"]), "--workers", "0"],
        "bare": [
            sys.executable,
            __file__,
            "--bare-app",
            str(ports["bare"]),
            "--bare-log-level",
            args.bare_log_level,
        ],
    }
    processes = {name: start(command, env, logs[name]) for name, command in commands.items()}
    try:
        wait_up(f"http://127.0.0.1:{ports['tierbot']}/healthz", processes["tierbot"], logs["tierbot"])
        wait_up(f"http://127.0.0.1:{ports['bare']}/", processes["bare"], logs["bare"])
        # Warm-up: real deliveries (they warm the database path too), not timed, counted in the run check.
        warmup = signed(REPOSITORY, SECRET, range(1, WARMUP + 1), main_sha, head_sha)
        for name in ("bare", "tierbot"):
            asyncio.run(send(ports[name], warmup, args.concurrency))
        per_round = -(-args.deliveries // args.rounds)
        numbers = range(WARMUP + 1, WARMUP + args.deliveries + 1)
        rounds = [
            signed(REPOSITORY, SECRET, numbers[i : i + per_round], main_sha, head_sha)
            for i in range(0, len(numbers), per_round)
        ]
        database = "PostgreSQL, a fresh database" if database_url else "SQLite in the data dir"
        print(
            f"{args.deliveries} signed pull_request deliveries to each, in {len(rounds)} rounds, concurrency "
            f"{args.concurrency}, after {WARMUP} warm-up deliveries; database: {database}.\n"
            f"tierbot serve --workers 0: no worker threads, the request path is the HTTP answer alone.\n"
            f"uvicorn, one process each, asyncio + h11; log level: tierbot info (set by `tierbot serve`), "
            f"bare {args.bare_log_level}."
        )
        batches = measure(ports, rounds, args.concurrency)
        bare, bot = summary("bare", batches["bare"]), summary("tierbot", batches["tierbot"])
        print(
            f"  tierbot / bare: p50 {bot['p50'] / bare['p50']:.2f}×   p99 {bot['p99'] / bare['p99']:.2f}×   "
            f"max {bot['max'] / bare['max']:.2f}×   throughput {bot['throughput'] / bare['throughput']:.2f}×"
        )
        ratio = bot["p99"] / bare["p99"]
        verdict = "PASS" if ratio <= TARGET else "MISS"
        print(f"  target: tierbot p99 ≤ {TARGET}× bare p99 → {ratio:.2f}× {verdict}")
        sent = warmup + [d for deliveries in rounds for d in deliveries]
        return check_runs(settings, ports["tierbot"], sent, args.concurrency) and ratio <= TARGET
    finally:
        for process in processes.values():
            stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=2000, help="to each target, over all rounds")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server (URL of any database on it) to create a fresh database on; default SQLite",
    )
    parser.add_argument(
        "--bare-log-level", default="info", help="uvicorn log level of the bare app (tierbot serve's: info)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, repository, SQLite)")
    parser.add_argument("--bare-app", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_app:
        serve_bare(args.bare_app, args.bare_log_level)
        return
    root = Path(tempfile.mkdtemp(prefix="tierbot-webhook-"))
    database_url, database = create_database(args.database_url) if args.database_url else (None, None)
    try:
        ok = bench(args, root, database_url)
    finally:
        if database:
            drop_database(args.database_url, database)
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
