"""`tierbot serve`: the bot's HTTP face. Every endpoint answers at once; all work is queued.

`create_app` is a factory: settings come in through the pipeline, nothing is read from the
environment here, so tests and several replicas can build as many apps as they like.
"""

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select, text

from bot import __version__, signed_links
from bot.errors import TierbotError
from bot.inbox import Inbox
from bot.limits import RequestLimits
from bot.pipeline import Pipeline
from bot.store import Run
from bot.store.deliveries import Item
from bot.worker import Worker


class _RunStates:
    """Runs per state, read from the database at scrape time (any replica may have changed them)."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    def collect(self):
        gauge = GaugeMetricFamily("tierbot_runs", "Runs by state", labels=["state"])
        with self.pipeline.db.session() as s:
            for state, count in s.execute(select(Run.state, func.count()).group_by(Run.state)):
                gauge.add_metric([state], count)
        yield gauge


class _Metrics:
    """What `/metrics` serves: each door's answers by result and their latency, and runs by state."""

    def __init__(self, pipeline: Pipeline):
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "tierbot_webhook_deliveries",
            "Webhook deliveries by result",
            ["source", "result"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tierbot_webhook_seconds", "Time to answer a webhook", ["source"], registry=self.registry
        )
        self.registry.register(_RunStates(pipeline))


class _DoorFront:
    """One door's share of the server (`bot.doors.Front`)."""

    def __init__(self, door: str, app: FastAPI, pipeline: Pipeline, inbox: Inbox, metrics: _Metrics):
        self.pipeline, self.app, self.inbox = pipeline, app, inbox
        # Labelled children looked up once: `labels()` costs more than the rest of a metric update.
        self._latency = metrics.latency.labels(door)
        self._results = {}
        self._count = lambda result: metrics.deliveries.labels(door, result)
        self.links: list[Callable[[], Callable[[], None] | None]] = []

    def route(
        self, path: str, endpoint: Callable[..., Awaitable], methods: tuple[str, ...] = ("POST",)
    ) -> None:
        # Doors read their signed raw bodies themselves: plain Starlette routes. FastAPI's dependency
        # solving and validation do nothing for them, and cost a fifth of an answer
        # (benchmarks/webhook_ack.py).
        self.app.add_route(path, endpoint, methods=list(methods))

    def record(self, delivery: Item) -> Awaitable[bool]:
        return self.inbox.record(delivery)

    def timed(self) -> AbstractContextManager:
        return self._latency.time()

    def count(self, result: str) -> None:
        if result not in self._results:
            self._results[result] = self._count(result)
        self._results[result].inc()

    def connect(self, open_link: Callable[[], Callable[[], None] | None]) -> None:
        self.links.append(open_link)


def create_app(pipeline: Pipeline, workers: int = 1) -> FastAPI:
    """The application; `workers` threads execute runs in this process, beside one thread for deliveries
    and reports (0: no threads at all, when `tierbot worker` processes do all the work). Each door plugged
    into the pipeline mounts its own routes."""
    settings = pipeline.settings
    links: list[Callable[[], Callable[[], None] | None]] = []
    app = FastAPI(title="tierbot", version=__version__, lifespan=_lifespan(pipeline, workers, links))
    app.add_middleware(
        RequestLimits, max_bytes=settings.max_request_bytes, read_seconds=settings.request_read_seconds
    )
    metrics, inbox = _Metrics(pipeline), Inbox(pipeline.deliveries)
    for door in pipeline.doors:
        if door.mount is not None:
            front = _DoorFront(door.name, app, pipeline, inbox, metrics)
            door.mount(front)
            links += front.links

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            with pipeline.db.session() as s:
                s.execute(text("SELECT 1"))
        except Exception as exc:  # the point of a health check is to say so, not to raise
            return JSONResponse({"status": "unhealthy", "database": str(exc)[:200]}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__})

    @app.get("/reports/{comparison_id}")
    def report(comparison_id: int, token: str = "") -> Response:
        return _report(pipeline, comparison_id, token)

    @app.get("/metrics")
    def metrics_page() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _lifespan(pipeline: Pipeline, workers: int, links: list[Callable[[], Callable[[], None] | None]]):
    """Start the workers and the doors' links (Socket Mode) with the server; stop them with it."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        # One door worker keeps deliveries and reports moving while every run worker is busy.
        pool = [Worker(pipeline, runs=False)] + [Worker(pipeline) for _ in range(workers)] if workers else []
        threads = [
            threading.Thread(target=worker.run_forever, args=(stop,), name=f"worker-{n}")
            for n, worker in enumerate(pool)
        ]
        for thread in threads:
            thread.start()
        # Opening and closing a websocket block for seconds: not on the event loop.
        closers = [await asyncio.to_thread(open_link) for open_link in links]
        # Everything alive now (the libraries, the app) lives as long as the server: left to the
        # collector, a full collection walks it all, a long stall every few thousand requests. Garbage
        # goes first, so none is kept for good; the objects go back to the collector when the app stops.
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()
        for close in closers:
            if close is not None:
                await asyncio.to_thread(close)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    return lifespan


def _report(pipeline: Pipeline, comparison_id: int, token: str) -> Response:
    """The full HTML report of a comparison, for whoever holds a live link (see `bot.signed_links`). An
    unknown comparison and a forged, foreign or tampered token look the same: no such report."""
    settings = pipeline.settings
    try:
        comparison = pipeline.comparison(comparison_id)
    except TierbotError:
        comparison = None
    verdict = "invalid"
    if comparison is not None:
        repository = comparison.head_run.repository
        verdict = signed_links.check(settings, comparison_id, repository, token, signed_links.today())
    if verdict == "invalid":
        return JSONResponse({"detail": "no such report"}, status_code=404)
    if verdict == "expired":
        return HTMLResponse(signed_links.expired_page(settings, token, comparison.head_run_id), 410)
    path = comparison.report_path
    if path is None or not Path(path).is_file():
        return JSONResponse({"detail": "this report is not ready, or no longer kept"}, status_code=404)
    # Stored redacted; redacted again as it leaves, with the secrets this replica knows now.
    return HTMLResponse(pipeline.redactor(Path(path).read_text(encoding="utf-8", errors="replace")))
