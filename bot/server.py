"""`tierbot serve`: the bot's HTTP face. Every endpoint answers at once; all work is queued.

`create_app` is a factory: settings come in through the pipeline, nothing is read from the
environment here, so tests and several replicas can build as many apps as they like.
"""

import asyncio
import collections
import gc
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select, text

from bot import __version__, signed_links
from bot.artifacts import ArtifactUnavailable
from bot.costs import month_costs, month_of
from bot.crew import Crew, exit_on_second_signal
from bot.errors import TierbotError
from bot.inbox import Inbox
from bot.limits import RequestLimits
from bot.pipeline import Pipeline
from bot.store import Run, RunState
from bot.store.deliveries import Item
from bot.store.models import utcnow

log = logging.getLogger(__name__)


class _RunStates:
    """Runs per state, the queue's depth per tier, the runs in flight per replica and the month's spend
    per budget, read from the database at scrape time (any replica may have changed them); runs of dead
    workers this replica took over."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    def collect(self):
        states = GaugeMetricFamily("tierbot_runs", "Runs by state", labels=["state"])
        depth = GaugeMetricFamily("tierbot_queue_depth", "Queued runs waiting for a worker", labels=["tier"])
        flight = GaugeMetricFamily(
            "tierbot_runs_in_flight", "Runs being executed, by replica (host:pid)", labels=["replica"]
        )
        replicas: collections.Counter[str] = collections.Counter()
        with self.pipeline.db.session() as s:
            for state, count in s.execute(select(Run.state, func.count()).group_by(Run.state)):
                states.add_metric([state], count)
            waiting = (Run.state == RunState.queued) & Run.reused_run_id.is_(None)  # joiners never run
            for tier, count in s.execute(select(Run.tier, func.count()).where(waiting).group_by(Run.tier)):
                depth.add_metric([tier], count)
            running = select(Run.worker, func.count()).where(Run.state == RunState.running)
            for worker, count in s.execute(running.group_by(Run.worker)):
                replicas[(worker or "?").rsplit(":", 1)[0]] += count  # a worker is host:pid:thread
        for replica, count in sorted(replicas.items()):
            flight.add_metric([replica], count)
        takeovers = CounterMetricFamily(
            "tierbot_takeovers", "Runs of dead workers this replica requeued or ended"
        )
        takeovers.add_metric([], self.pipeline.queue.takeovers)
        yield from (states, depth, flight, takeovers, self._spend())

    def _spend(self) -> GaugeMetricFamily:
        """This month's spend per budget, as `tierbot costs` counts it (`bot.costs`)."""
        costs = month_costs(self.pipeline.db, self.pipeline.tiers, month_of(utcnow()))
        spend = GaugeMetricFamily(
            "tierbot_spend",
            f"Spend toward each budget this month (UTC), in {costs.currency}",
            labels=["budget", "month"],
        )
        for budget in costs.budgets:
            spend.add_metric([budget.budget, costs.month], budget.spent)
        return spend


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
        crew = Crew(pipeline, runs=workers, doors=bool(workers))
        crew.start()
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
        if threading.current_thread() is threading.main_thread():  # serving; not a test's thread
            exit_on_second_signal()
        await asyncio.to_thread(crew.stop, pipeline.settings.shutdown_grace_seconds)

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
    location = comparison.report_path  # in the artifact store: written by whichever replica settled it
    try:
        html = pipeline.artifacts.read_text(location) if location is not None else None
    except ArtifactUnavailable as exc:  # the store is down, or what came back failed its check
        log.warning("report %s: %s", comparison_id, exc)
        return JSONResponse({"detail": "this report cannot be read now; try again later"}, status_code=503)
    if html is None:
        return JSONResponse({"detail": "this report is not ready, or no longer kept"}, status_code=404)
    # Stored redacted; redacted again as it leaves, with the secrets this replica knows now.
    return HTMLResponse(pipeline.redactor(html))
