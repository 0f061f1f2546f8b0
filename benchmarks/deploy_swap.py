"""A blue/green switch of the example model under steady load, and the model server's own latency.

    python benchmarks/deploy_swap.py [--rate 250] [--data-dir DIR]

The bundled iris example (as `tierbot demo` makes it: main, and feature-x with n_estimators 5) is
deployed from main on the local target; then, while load threads post the smoke request to the stable
URL at `--rate` requests/s, feature-x is merged and deployed. Targets (issue 17):
1. 0 failed requests across the switch (the proxy re-sends a request the draining version dropped);
2. new version healthy → traffic switched in ≤ 2 s (from the deploy report's step times: the smoke
   request and the prediction diff are in between);
3. the model server's p99 latency ≤ 2 ms above calling `predict` in-process (sequential requests on
   one kept-alive connection to the version's own port, against a loop in the experiment's venv).
The first run builds the example's environment (about a minute); `--data-dir` keeps it for the next.
"""

import argparse
import http.client
import json
import multiprocessing
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bot import wiring
from bot.cli.demo import BRANCH, make_repository
from bot.deploy.local import shutdown
from bot.deploy.machine import Deployer
from bot.deploy.plan import deployments_of, request_deploy
from bot.settings import Settings
from bot.store.models import DeploymentState
from bot.tiers import Requester
from bot.worker import Worker

SAMPLES = 2000
IN_PROCESS = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from serve import predict
body, artifact = json.loads(sys.argv[2]), sys.argv[3]
for _ in range(200):
    predict(body, artifact)
times = []
for _ in range(int(sys.argv[4])):
    start = time.perf_counter(); predict(body, artifact); times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def deploy(pipe, repo: Path, ref: str):
    deployment, _ = request_deploy(pipe, str(repo), ref, Requester(name="benchmark"), [])
    worker, deployer = Worker(pipe), Deployer(pipe)
    while not DeploymentState((d := deployer.deployments.get(deployment.id)).state).terminal:
        if not worker.run_once():
            time.sleep(0.05)
    assert d.state == "live", d.reason
    return d


def load(url: str, body: dict, rate: float, stop, results, threads: int = 4) -> None:
    """`threads` clients in this process (not the deploying one: they must not share its GIL), each
    on one kept-alive connection, posting `body` at `rate` requests/s between them; their (time,
    status) put on `results` once `stop` is set."""
    host, port = url.removeprefix("http://").split(":")
    payload, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    found: list = []

    def one(offset: float) -> None:
        period, next_at = threads / rate, time.monotonic() + offset
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        while not stop.is_set():
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += period
            try:
                connection.request("POST", "/predict", payload, headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                connection.close()
            found.append((time.monotonic(), status))

    workers = [threading.Thread(target=one, args=(i / rate,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(found)


def percentile(values: list[float], share: float) -> float:
    return sorted(values)[min(len(values) - 1, int(share * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=250.0)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="tierbot-bench-"))
    settings = Settings(data_dir=data, poll_seconds=0.05)
    pipe = wiring.pipeline(settings)
    repo = Path(tempfile.mkdtemp(prefix="tierbot-bench-repo-")).resolve()
    make_repository(repo)
    try:
        first = deploy(pipe, repo, "main")
        spec = json.loads(json.dumps(pipe.run(first.run_id).spec))
        body = spec["deploy"]["smoke"]
        print(f"main deployed at {first.url} (deployment {first.id})")

        stop, results = multiprocessing.Event(), multiprocessing.Queue()
        loader = multiprocessing.Process(target=load, args=(first.url, body, args.rate, stop, results))
        loader.start()
        time.sleep(2)
        subprocess.run(["git", "-C", str(repo), "checkout", "-q", "main"], check=True)
        git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.invalid"]
        subprocess.run([*git, "merge", "-q", "--no-ff", BRANCH, "-m", "merge"], check=True)
        started = time.monotonic()
        second = deploy(pipe, repo, "main")
        took = time.monotonic() - started
        time.sleep(2)
        stop.set()
        results = results.get()
        loader.join()
        failed = [status for _, status in results if status != 200]
        span = results[-1][0] - results[0][0]
        rate = len(results) / span
        print(f"load: {len(results)} requests in {span:.1f} s ({rate:.0f}/s), {len(failed)} failed")
        print(f"  the deployment of {BRANCH} took {took:.2f} s end to end, under that load")
        steps = Path(pipe.comparison(second.comparison_id).report_path).read_text()
        healthy, smoked, switched = (
            _step_time(steps, at) for at in (">healthy<", ">smoke request", ">switched ")
        )
        print(f"  new version healthy → traffic switched: {switched - healthy:.1f} s (target ≤ 2 s)")
        print(f"    of which the smoke request (its first predict loads the model): {smoked - healthy:.1f} s")

        release = Path(second.instance["release"])
        artifact = next((release / "artifact").iterdir())
        times = json.loads(
            subprocess.run(
                [
                    second.instance["python"],
                    "-c",
                    IN_PROCESS,
                    str(release / "code"),
                    json.dumps(body),
                    str(artifact),
                ]
                + [str(SAMPLES)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        served = []
        # http.client, not requests: the client's own cost (requests adds about a millisecond) is not
        # the server's.
        connection = http.client.HTTPConnection("127.0.0.1", second.instance["port"])
        payload, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
        for i in range(200 + SAMPLES):
            start = time.perf_counter()
            connection.request("POST", "/predict", payload, headers)
            connection.getresponse().read()
            if i >= 200:
                served.append(time.perf_counter() - start)
        for name, values in (("predict in-process", times), ("model server (HTTP)", served)):
            ms = [v * 1000 for v in values]
            print(f"  {name:20} p50 {statistics.median(ms):6.2f} ms   p99 {percentile(ms, 0.99):6.2f} ms")
        gap = (percentile(served, 0.99) - percentile(times, 0.99)) * 1000
        print(f"  the model server's p99 above in-process: {gap:.2f} ms (target ≤ 2 ms)")
        print(f"deployments: {[(d.id, d.state) for d in deployments_of(pipe).recent(str(repo))]}")
    finally:
        shutdown(settings)


def _step_time(report: str, marker: str) -> float:
    """The seconds column of the report's step row holding `marker`."""
    row = report[: report.index(marker)].rsplit("<tr>", 1)[1]
    return float(row.split('class="num">')[1].split(" s<")[0])


if __name__ == "__main__":
    main()
