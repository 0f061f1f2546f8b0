"""The load generator of webhook_ack.py: signed GitHub `pull_request` deliveries, and a minimal
asyncio HTTP/1.1 client that posts them to /github/webhook over keep-alive connections and times
each answer.
"""

import asyncio
import json
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass


@dataclass
class SignedDelivery:
    id: str
    event: str
    body: bytes
    signature: str


@dataclass
class Batch:
    latencies: list[float]  # seconds, one per request
    seconds: float  # wall time of the whole batch
    statuses: Counter

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds


# -- deliveries ---------------------------------------------------------------------------------------


def pull_request(repository: str, number: int, main_sha: str, head_sha: str) -> dict:
    """A `pull_request` "opened" payload with the fields GitHub sends that tierbot reads (and some more)."""
    return {
        "action": "opened",
        "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{repository}/pulls/{number}",
            "number": number,
            "state": "open",
            "draft": False,
            "title": f"Try better #{number}",
            "user": {"login": "octocat", "id": 1, "type": "User"},
            "head": {
                "label": "acme:better",
                "ref": "better",
                "sha": head_sha,
                "repo": {"full_name": repository},
            },
            "base": {"label": "acme:main", "ref": "main", "sha": main_sha, "repo": {"full_name": repository}},
            "merged": False,
        },
        "repository": {
            "id": 42,
            "full_name": repository,
            "name": "models",
            "private": True,
            "owner": {"login": "acme"},
            "default_branch": "main",
            "clone_url": f"https://github.com/{repository}.git",
        },
        "sender": {"login": "octocat", "id": 1},
        "installation": {"id": 1001},
    }


def signed(
    repository: str, secret: str, numbers: range, main_sha: str, head_sha: str
) -> list[SignedDelivery]:
    from bot.github.signature import sign

    bodies = [json.dumps(pull_request(repository, n, main_sha, head_sha)).encode() for n in numbers]
    return [SignedDelivery(f"bench-{uuid.uuid4()}", "pull_request", b, sign(b, secret)) for b in bodies]


# -- measuring ----------------------------------------------------------------------------------------


async def post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delivery: SignedDelivery
) -> tuple[int, dict]:
    """One request on a keep-alive connection; the answer's status and JSON body."""
    writer.write(
        (
            f"POST /github/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"User-Agent: GitHub-Hookshot/bench\r\nX-GitHub-Event: {delivery.event}\r\n"
            f"X-GitHub-Delivery: {delivery.id}\r\nX-Hub-Signature-256: {delivery.signature}\r\n"
            f"Content-Length: {len(delivery.body)}\r\n\r\n"
        ).encode()
        + delivery.body
    )
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
    body = await reader.readexactly(int(fields["content-length"]))
    return int(head[0].split()[1]), json.loads(body)


async def send(port: int, deliveries: list[SignedDelivery], concurrency: int) -> tuple[Batch, list[dict]]:
    """Every delivery, `concurrency` in flight at a time over keep-alive connections; latencies, answers.

    A minimal HTTP/1.1 client on asyncio streams: on 2 cores httpx.AsyncClient's own overhead at
    concurrency 16 caps it near 400 req/s with a p99 over 200 ms against the bare app, which would
    measure httpx rather than the servers."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    answers: list[dict] = []
    pending = iter(deliveries)

    async def sender() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for delivery in pending:
            started = time.perf_counter()
            status, answer = await post(reader, writer, delivery)
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
            answers.append(answer)
        writer.close()
        await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return Batch(latencies, time.perf_counter() - started, statuses), answers


def summary(name: str, batches: list[Batch]) -> dict[str, float]:
    figures = {
        "p50": statistics.median(b.percentile(50) for b in batches) * 1000,
        "p99": statistics.median(b.percentile(99) for b in batches) * 1000,
        "max": statistics.median(max(b.latencies) for b in batches) * 1000,
        "throughput": statistics.median(b.throughput for b in batches),
    }
    statuses = sum((b.statuses for b in batches), Counter())
    print(
        f"  {name:<8} p50 {figures['p50']:7.2f} ms   p99 {figures['p99']:7.2f} ms   "
        f"max {figures['max']:7.2f} ms   {figures['throughput']:7.0f} req/s   "
        f"(median of {len(batches)} rounds; statuses {dict(statuses)})"
    )
    return figures
