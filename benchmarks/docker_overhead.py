"""What a docker tier adds to a run over a local one, and what a cached environment image costs.

    python benchmarks/docker_overhead.py [--repeat 7]

Needs a Docker Engine with the base image tierbot-base:bookworm (`.ci/docker-engine.sh` starts one and
imports it). The same trivial experiment goes through the pipeline in process (submit + worker) on a
`local` tier and on a `docker` tier, taking turns so that both see the same machine, after one unmeasured
round each (which builds the docker tier's environment image, once). Prints each tier's median wall
time and the median of the per-pair differences: docker's overhead per run (container create, code in,
start, wait, workdir out, remove). Then the time to resolve a cached environment image, the whole
"building" phase of a run whose environment exists: for the base-image recipe, and for a repository's
Dockerfile, whose context (here ~10 MB in 100 files) is hashed each time.

Targets: docker adds at most 1.5 s per run (median), a cached image at most 0.5 s.
"""

import argparse
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bot.backends import Job
from bot.backends.docker_image import environment_image
from bot.backends.docker_options import LABEL_INSTANCE, LABEL_RUN, engine, options_of
from bot.backends.docker_reaper import reap
from bot.backends.process import LogSink
from bot.pipeline import Pipeline
from bot.request import RunRequest
from bot.settings import Settings
from bot.worker import Worker

IMAGE = "tierbot-base:bookworm"
SPEC = (
    "name: trivial\nrun:\n  command: python -c \"import pathlib; pathlib.Path('out').mkdir(); "
    "pathlib.Path('out/metrics.json').write_text('{}')\"\n  outputs: out\n"
)
TIERS = f"""\
tiers:
  - name: local
    default: true
  - name: box
    backend: docker
    memory: 1GiB
    backend_options: {{image: "{IMAGE}"}}
"""


class Quiet:
    def phase(self, name: str) -> None: ...
    def log(self, line: str) -> None: ...
    def started(self, pgid: int) -> None: ...
    def cancelled(self) -> bool:
        return False


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "tierbot.yaml").write_text(SPEC)
    (repo / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN python3 -m venv --without-pip /opt/venv\n")
    for i in range(100):  # a small repository's worth of context for the Dockerfile recipe to hash
        (repo / "data" / f"part-{i:03d}.bin").write_bytes(bytes([i]) * 100_000)
    git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "trivial"], check=True)
    return repo


def pipeline_round(pipeline: Pipeline, repo: Path, tier: str) -> tuple[float, float]:
    started = time.perf_counter()
    run_id = pipeline.submit(RunRequest(repository=str(repo), ref="main", tier=tier)).head.id
    worker = Worker(pipeline, only={run_id})
    while worker.run_once():
        pass
    wall = time.perf_counter() - started
    run = pipeline.run(run_id)
    assert run.state == "succeeded", f"{tier}: {run.reason}"
    return wall, run.command_seconds or 0.0


def cached_image_seconds(
    settings: Settings, pipeline: Pipeline, repo: Path, dockerfile: bool, repeat: int
) -> float:
    """Median time of the building phase when the environment image exists (built by the first call)."""
    tier = pipeline.tiers.get("box")
    client = engine(options_of(tier), 60)
    labels = {LABEL_RUN: "0", LABEL_INSTANCE: str(settings.docker_instance)}
    job = Job(
        run_id=0,
        workdir=repo,
        command="true",
        tier=tier,
        requirements=None,
        env={},
        log_path=settings.data_dir / "bench.log",
        max_log_bytes=10**6,
        dockerfile=repo / "Dockerfile" if dockerfile else None,
    )
    times = []
    with LogSink(job.log_path, job.max_log_bytes, lambda _line: None) as sink:
        for _ in range(repeat + 1):
            started = time.perf_counter()
            environment_image(client, job, options_of(tier), labels, sink, Quiet())
            times.append(time.perf_counter() - started)
    client.close()
    return statistics.median(times[1:])  # the first may have built it


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = make_repo(root)
        (root / "tiers.yaml").write_text(TIERS)
        instance = f"bench-{uuid.uuid4().hex[:8]}"
        settings = Settings(
            data_dir=root / "data",
            database_url=None,
            tiers_file=root / "tiers.yaml",
            docker_instance=instance,
        )
        pipeline = Pipeline(settings)
        try:
            if pipeline.tiers.get("box").unavailable:
                raise SystemExit(f"the docker tier is unavailable: {pipeline.tiers.get('box').unavailable}")
            pipeline_round(pipeline, repo, "local")  # warm-up: mirror clone, database file
            pipeline_round(pipeline, repo, "box")  # warm-up: builds the environment image once
            local, docker = [], []
            for _ in range(args.repeat):  # taking turns: both see the same machine
                local.append(pipeline_round(pipeline, repo, "local"))
                docker.append(pipeline_round(pipeline, repo, "box"))
            report(local, docker)
            base = cached_image_seconds(settings, pipeline, repo, dockerfile=False, repeat=args.repeat)
            built = cached_image_seconds(settings, pipeline, repo, dockerfile=True, repeat=args.repeat)
            worst = max(base, built)
            print(
                f"cached image: base recipe {base:.3f} s, Dockerfile recipe (10 MB context) {built:.3f} s "
                f"(median of {args.repeat}) → target ≤ 0.5 s: {'OK' if worst <= 0.5 else 'OVER TARGET'}"
            )
        finally:
            client = engine(options_of(pipeline.tiers.get("box")), 60)
            reap(client, instance, lambda _run: False, image_budget=0, young_seconds=0)
            client.close()


def report(local: list[tuple[float, float]], docker: list[tuple[float, float]]) -> None:
    for name, rounds in (("local", local), ("docker", docker)):
        wall = statistics.median(w for w, _ in rounds)
        command = statistics.median(c for _, c in rounds)
        print(f"{name:<7} wall {wall:6.3f} s   command {command:6.3f} s   (median of {len(rounds)})")
    added = statistics.median(d[0] - loc[0] for loc, d in zip(local, docker, strict=True))
    verdict = "OK" if added <= 1.5 else "OVER TARGET"
    print(f"docker adds {added:.3f} s per run (median of pairs) → target ≤ 1.5 s: {verdict}")


if __name__ == "__main__":
    main()
