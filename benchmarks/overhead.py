"""The pipeline's own overhead on a trivial experiment.

    python benchmarks/overhead.py [--repeat 5]

1. Running: for the CLI (a new `tierbot run --fresh` process each time, as a user sees it) and for the
   pipeline in-process (submit + worker, without Python start-up), the median wall time, the
   experiment command's own time as measured by the backend, and their difference. Target: overhead
   under 1 s with a warm environment (the first, unmeasured round warms the git mirror and database).
2. Reusing: `tierbot compare feature --base main` when both sides ran before (head and baseline
   reused, nothing executes) against `git rev-parse feature` in a new process. Target: compare adds
   at most 1.0 s.
3. History: a metric history of 10,000 points drawn as `tierbot history` draws it (the sparkline) and
   as the HTML report does (the SVG chart, from its template), median of `--repeat`. Target: at most
   100 ms. Shown beside it, not part of the target: reading those points from a SQLite database, as
   `tierbot history --last 10000` does.
"""

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bot.compare.model import MetricChange
from bot.history import MetricRange, history
from bot.pipeline import Pipeline
from bot.render.chart import history_svg, sparkline
from bot.request import RunRequest
from bot.settings import Settings
from bot.store import Database
from bot.store.models import MetricPoint, Run
from bot.worker import Worker

SPEC = (
    "name: trivial\nrun:\n  command: python -c \"import pathlib; pathlib.Path('out').mkdir(); "
    "pathlib.Path('out/metrics.json').write_text('{}')\"\n  outputs: out\n"
)


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir()
    (repo / "tierbot.yaml").write_text(SPEC)
    git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "trivial"], check=True)
    return repo


def cli_round(repo: Path, env: dict, pipeline: Pipeline) -> tuple[float, float]:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bot", "run", "main", "--repo", str(repo), "--fresh"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    return wall, pipeline.recent_runs(1)[0].command_seconds


def inprocess_round(repo: Path, pipeline: Pipeline) -> tuple[float, float]:
    started = time.perf_counter()
    run_id = pipeline.submit(RunRequest(repository=str(repo), ref="main", fresh=True)).head.id
    worker = Worker(pipeline, only={run_id})
    while worker.run_once():
        pass
    wall = time.perf_counter() - started
    return wall, pipeline.run(run_id).command_seconds


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def reuse_rounds(repo: Path, env: dict, repeat: int) -> tuple[float, float]:
    """Median wall of a compare whose both sides are reused, and of `git rev-parse`, taking turns."""
    git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    subprocess.run([*git, "checkout", "-q", "-b", "feature"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "same tree"], check=True)
    compare = [sys.executable, "-m", "bot", "compare", "feature", "--base", "main", "--repo", str(repo)]
    timed(compare, env)  # the baseline and the head are main's run, reused from here on
    compares, parses = [], []
    for _ in range(repeat):
        compares.append(timed(compare, env))
        parses.append(timed(["git", "-C", str(repo), "rev-parse", "feature"], env))
    return statistics.median(compares), statistics.median(parses)


def history_rounds(db: Database, points: int, repeat: int) -> tuple[float, float]:
    """Median seconds to draw a history of `points` (sparkline and chart), and to read it from `db`."""
    values = [0.9 + 0.01 * math.sin(i / 50) + (0.03 if i % 997 == 0 else 0) for i in range(points)]
    with db.session() as s:
        s.execute(
            Run.__table__.insert(),
            [
                dict(
                    repository="bench",
                    ref="main",
                    sha=f"{i:040x}",
                    tree_sha="t",
                    experiment="e",
                    tier="local",
                    role="baseline",
                    cache_key=f"k{i}",
                    spec={},
                    requested_by={},
                    report_to=[],
                    state="succeeded",
                )
                for i in range(points)
            ],
        )
        ids = s.scalars(Run.__table__.select().with_only_columns(Run.id).order_by(Run.id)).all()
        s.execute(
            MetricPoint.__table__.insert(),
            [
                dict(
                    run_id=run_id,
                    repository="bench",
                    branch="main",
                    experiment="e",
                    tier="local",
                    sha=f"{i:040x}",
                    values={"metrics.json": {"accuracy": value}},
                )
                for i, (run_id, value) in enumerate(zip(ids, values, strict=True))
            ],
        )
    recent = MetricRange(
        file="metrics.json",
        name="accuracy",
        branch="main",
        values=values,
        commits=[f"{i:07x}" for i in range(points)],
    )
    branch = MetricChange(file="metrics.json", name="accuracy", base=values[-1], head=0.95, change="up")
    draws, reads = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        sparkline(recent.values)
        history_svg(branch, recent)
        draws.append(time.perf_counter() - started)
        started = time.perf_counter()
        history(db, "bench", "main", last=points)
        reads.append(time.perf_counter() - started)
    return statistics.median(draws), statistics.median(reads)


def report(name: str, rounds: list[tuple[float, float]]) -> float:
    wall = statistics.median(w for w, _ in rounds)
    command = statistics.median(c for _, c in rounds)
    overhead = statistics.median(w - c for w, c in rounds)
    print(
        f"{name:<12} wall {wall:6.3f} s   command {command:6.3f} s   overhead {overhead:6.3f} s "
        f"(median of {len(rounds)})"
    )
    return overhead


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = make_repo(root)
        env = {**os.environ, "TIERBOT_DATA_DIR": str(root / "data")}
        env.pop("TIERBOT_DATABASE_URL", None)
        env.pop("TIERBOT_TIERS_FILE", None)
        pipeline = Pipeline(Settings(data_dir=root / "data", database_url=None, tiers_file=None))
        cli_round(repo, env, pipeline)  # warm-up: mirror clone, database file
        cli = report("tierbot run", [cli_round(repo, env, pipeline) for _ in range(args.repeat)])
        inproc = report("in-process", [inprocess_round(repo, pipeline) for _ in range(args.repeat)])
        verdict = "OK" if cli < 1.0 else "OVER TARGET"
        print(f"target: overhead < 1 s → CLI {cli:.3f} s {verdict}; pipeline alone {inproc:.3f} s")
        compare, parse = reuse_rounds(repo, env, args.repeat)
        added = compare - parse
        print(
            f"compare, both sides reused: {compare:.3f} s; git rev-parse {parse:.3f} s; adds {added:.3f} s "
            f"→ target ≤ 1.0 s: {'OK' if added <= 1.0 else 'OVER TARGET'}"
        )
        draw, read = history_rounds(Database(f"sqlite:///{root / 'history.db'}"), 10_000, args.repeat)
        print(
            f"history of 10,000 points: sparkline and chart {draw * 1000:.1f} ms → target ≤ 100 ms: "
            f"{'OK' if draw <= 0.1 else 'OVER TARGET'}; read from SQLite {read * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
