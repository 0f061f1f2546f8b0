"""Several replicas, one truth: a burst of pull requests against 1 and 2 `tierbot serve` replicas.

    python benchmarks/replicas.py [--pulls 200] [--workers 4] [--sleep 1.0]
                                  [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

A repository whose experiment sleeps `--sleep` seconds, with `--pulls` branches off main, each of its own
tree; one signed `pull_request` "opened" delivery per branch. Each configuration gets a fresh PostgreSQL
database and fresh data dirs: one replica with `--workers` run workers, then two replicas with half as
many each (the same total), each replica with its own data dir and one shared artifact store
(TIERBOT_ARTIFACT_STORE). With two replicas every delivery is sent to both (the same delivery id) and
again to the other under a new id (a proxy's retry): nothing may run twice. Prints, per configuration,
the time from the first delivery until every pull request is compared, the runs executed against the
distinct keys (one baseline and one head per branch: they must be equal), check runs asked per head
SHA, and false verdicts (every comparison must be "changed").

Then the takeover: two replicas, one long run; the replica holding it is SIGKILLed and the time until
the other holds it is printed (target ≤ 5 s; the lease is left at 30 s, so it is not the lease's doing).
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from loadgen import SignedDelivery, pull_request, send
from webhook_ack import create_database, drop_database, free_port, git, start, stop, wait_up

SECRET = "bench-secret"
REPOSITORY = "acme/models"
SPEC = "name: bench\nrun:\n  command: python make.py\n  outputs: out\n"
SCRIPT = (
    "import pathlib, time\ntime.sleep(float(pathlib.Path('sleep.txt').read_text()))\n"
    "pathlib.Path('out').mkdir()\npathlib.Path('out/notes.txt').write_text(open('notes.txt').read())\n"
)
TAKEOVER_TARGET = 5.0


def publish(root: Path, pulls: int, sleep: float) -> tuple[str, list[str]]:
    """main and `pulls` branches (each its own notes.txt), published as acme/models: (main, heads)."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    files = {"tierbot.yaml": SPEC, "make.py": SCRIPT, "sleep.txt": str(sleep), "notes.txt": ""}
    main = commit(repo, files, None)
    heads = [commit(repo, {"notes.txt": f"branch {n}\n"}, main) for n in range(pulls)]
    bare = root / "git" / f"{REPOSITORY}.git"
    bare.parent.mkdir(parents=True)
    git(repo, "clone", "-q", "--bare", str(repo), str(bare))
    return main, heads


def commit(repo: Path, files: dict[str, str], parent: str | None) -> str:
    """A commit of `parent`'s tree with `files` written, on a branch of its own (main when first)."""
    if parent:
        git(repo, "checkout", "-q", "--detach", parent)
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "change")
    sha = git(repo, "rev-parse", "HEAD")
    if parent:
        git(repo, "branch", f"b-{sha[:12]}", sha)
    return sha


def deliveries(main: str, heads: list[str]) -> list[SignedDelivery]:
    import json

    from bot.github.signature import sign

    out = []
    for number, head in enumerate(heads, start=1):
        body = json.dumps(pull_request(REPOSITORY, number, main, head)).encode()
        out.append(SignedDelivery(f"bench-{uuid.uuid4()}", "pull_request", body, sign(body, SECRET)))
    return out


def replicas(root: Path, database_url: str, count: int, workers: int, tag: str) -> list[tuple]:
    """`count` `tierbot serve` processes: (process, port, log)."""
    started = []
    for n in range(count):
        port, log = free_port(), root / f"{tag}-{n}.log"
        env = {
            **os.environ,
            "TIERBOT_DATA_DIR": str(root / f"{tag}-data-{n}"),
            "TIERBOT_DATABASE_URL": database_url,
            "TIERBOT_ARTIFACT_STORE": str(root / f"{tag}-shared"),
            "TIERBOT_GIT_URL_TEMPLATE": f"file://{root}/git/{{full_name}}.git",
            "TIERBOT_GITHUB_WEBHOOK_SECRET": SECRET,
            "TIERBOT_POLL_SECONDS": "0.1",
            "TIERBOT_LEASE_SECONDS": "30",
        }
        command = [sys.executable, "-m", "bot", "serve", "--port", str(port), "--workers", str(workers)]
        process = start(command, env, log)
        wait_up(f"http://127.0.0.1:{port}/healthz", process, log)
        started.append((process, port, log))
    return started


def burst(servers: list[tuple], sent: list[SignedDelivery]) -> None:
    """Each delivery to every replica (same id), and to each other replica again under a new id."""

    async def all_of() -> None:
        tasks = [send(port, sent, 16) for _, port, _ in servers]
        if len(servers) > 1:
            retried = [SignedDelivery(f"retry-{uuid.uuid4()}", d.event, d.body, d.signature) for d in sent]
            tasks += [send(port, retried, 16) for _, port, _ in servers[1:]]
        await asyncio.gather(*tasks)

    asyncio.run(all_of())


def settled(pipeline, pulls: int) -> bool:
    from sqlalchemy import func, select

    from bot.store import ComparisonRecord

    with pipeline.db.session() as s:
        done = s.scalar(select(func.count()).where(ComparisonRecord.state != "pending"))
    return done >= pulls


def tally(pipeline) -> dict[str, object]:
    from sqlalchemy import func, select

    from bot.store import ComparisonRecord, Run

    with pipeline.db.session() as s:
        executed = s.scalar(select(func.count()).where(Run.attempts > 0, Run.reused_run_id.is_(None)))
        keys = s.scalar(select(func.count(func.distinct(Run.cache_key))))
        heads = s.execute(select(Run.sha, func.count()).where(Run.role == "head").group_by(Run.sha)).all()
        verdicts = dict(s.execute(select(ComparisonRecord.verdict, func.count()).group_by("verdict")).all())
    return {
        "runs executed": executed,
        "distinct keys": keys,
        "head runs per SHA (max)": max(n for _, n in heads),
        "verdicts": verdicts,
    }


def configuration(root, server_url, count, workers, sent, pulls) -> dict:
    from bot.pipeline import Pipeline
    from bot.settings import Settings

    url, name = create_database(server_url)
    tag = f"r{count}"
    servers = replicas(root, url, count, workers, tag)
    pipeline = Pipeline(Settings(data_dir=root / f"{tag}-probe", database_url=url))
    try:
        started = time.perf_counter()
        burst(servers, sent)
        while not settled(pipeline, pulls):
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        return {"replicas": count, "workers each": workers, "seconds": seconds, **tally(pipeline)}
    finally:
        for process, _, _ in servers:
            stop(process)
        pipeline.db.dispose()
        drop_database(server_url, name)


def takeover(root: Path, server_url: str, main: str, head: str) -> float:
    from bot.pipeline import Pipeline
    from bot.settings import Settings
    from bot.store import RunState

    url, name = create_database(server_url)
    servers = replicas(root, url, 2, 1, "takeover")
    probe = Settings(
        data_dir=root / "takeover-probe",
        database_url=url,
        git_url_template=f"file://{root}/git/{{full_name}}.git",
    )
    pipeline = Pipeline(probe)
    try:
        from bot.request import RunRequest

        run_id = pipeline.submit(RunRequest(repository=REPOSITORY, ref=head)).head.id
        while not ((run := pipeline.run(run_id)).state == RunState.running and run.pgid):
            time.sleep(0.05)
        pid = int(run.worker.split(":")[1])
        (holder,) = [p for p, _, _ in servers if p.pid == pid]
        holder.kill()
        killed = time.perf_counter()
        while (now := pipeline.run(run_id)).state != RunState.running or now.worker == run.worker:
            time.sleep(0.02)
        return time.perf_counter() - killed
    finally:
        for process, _, _ in servers:
            stop(process)
        pipeline.db.dispose()
        drop_database(server_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pulls", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4, help="total run workers in each configuration")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds the experiment takes")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tierbot-replicas-") as temp:
        root = Path(temp)
        main_sha, heads = publish(root, args.pulls, args.sleep)
        sent = deliveries(main_sha, heads)
        rows = [
            configuration(root, args.database_url, count, args.workers // count, sent, args.pulls)
            for count in (1, 2)
        ]
        for row in rows:
            print("  ".join(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()))
        ok = all(r["runs executed"] == r["distinct keys"] and r["head runs per SHA (max)"] == 1 for r in rows)
        ok = ok and all(r["verdicts"] == {"changed": args.pulls} for r in rows)
        print(f"one run per key, one head run per SHA, no false verdict: {'PASS' if ok else 'MISS'}")
        print(f"2 replicas / 1 replica wall time: {rows[1]['seconds'] / rows[0]['seconds']:.2f}")
        long_head = commit(root / "repo", {"sleep.txt": "60"}, main_sha)
        git(root / "repo", "push", "-q", str(root / "git" / f"{REPOSITORY}.git"), f"b-{long_head[:12]}")
        seconds = takeover(root, args.database_url, main_sha, long_head)
        verdict = "PASS" if seconds <= TAKEOVER_TARGET else "MISS"
        print(
            f"takeover after SIGKILL of the replica holding a run: {seconds:.2f} s (target ≤ 5 s) → {verdict}"
        )
        sys.exit(0 if ok and seconds <= TAKEOVER_TARGET else 1)


if __name__ == "__main__":
    main()
