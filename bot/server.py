"""`tierbot serve`: the bot's HTTP face. Every endpoint answers at once; all work is queued.

`create_app` is a factory: settings come in through the pipeline, nothing is read from the
environment here, so tests and several replicas can build as many apps as they like.
"""

import asyncio
import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_sdk.errors import SlackApiError
from sqlalchemy import func, select, text

from bot import __version__, report_links
from bot.errors import TierbotError
from bot.github.webhook import triage
from bot.inbox import Inbox
from bot.limits import RequestLimits
from bot.pipeline import Pipeline
from bot.slack.bolt import create_bolt
from bot.store import Run
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
    """What `/metrics` serves: webhook answers by result and their latency, and runs by state."""

    def __init__(self, pipeline: Pipeline):
        self.registry = CollectorRegistry()
        deliveries = Counter(
            "tierbot_webhook_deliveries",
            "Webhook deliveries by result",
            ["source", "result"],
            registry=self.registry,
        )
        latency = Histogram(
            "tierbot_webhook_seconds", "Time to answer a webhook", ["source"], registry=self.registry
        )
        # Labelled children looked up once: `labels()` costs more than the rest of a metric update.
        self.github_latency, self.slack_latency = latency.labels("github"), latency.labels("slack")
        self.github_results = {
            result: deliveries.labels("github", result)
            for result in ("queued", "duplicate", "ignored", "pong", "refused", "malformed")
        }
        self.registry.register(_RunStates(pipeline))


def create_app(pipeline: Pipeline, workers: int = 1) -> FastAPI:
    """The application; `workers` threads execute runs in this process, beside one thread for deliveries
    and reports (0: no threads at all, when `tierbot worker` processes do all the work)."""
    settings = pipeline.settings
    bolt = create_bolt(pipeline) if settings.slack_signing_secret or settings.slack_app_token else None
    app = FastAPI(title="tierbot", version=__version__, lifespan=_lifespan(pipeline, workers, bolt))
    app.add_middleware(
        RequestLimits, max_bytes=settings.max_request_bytes, read_seconds=settings.request_read_seconds
    )
    metrics = _Metrics(pipeline)
    _webhooks(app, pipeline, metrics, bolt)

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


def _lifespan(pipeline: Pipeline, workers: int, bolt):
    """Start the workers and the Socket Mode link with the server; stop them with it."""

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
        # Opening and closing the websocket block for seconds: not on the event loop.
        socket_mode = await asyncio.to_thread(_socket_mode, pipeline, bolt) if bolt is not None else None
        # Everything alive now (the libraries, the app) lives as long as the server: left to the
        # collector, a full collection walks it all, a long stall every few thousand requests. Garbage
        # goes first, so none is kept for good; the objects go back to the collector when the app stops.
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()
        if socket_mode is not None:
            await asyncio.to_thread(socket_mode.close)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    return lifespan


def _webhooks(app: FastAPI, pipeline: Pipeline, metrics: _Metrics, bolt) -> None:
    """GitHub's webhook, and Slack's in HTTP mode: recorded once, answered at once."""
    inbox = Inbox(pipeline.deliveries)

    async def github_webhook(request: Request) -> JSONResponse:
        with metrics.github_latency.time():
            answer = triage(request.headers, await request.body(), pipeline.settings.github_secrets)
            result = answer.result
            if answer.delivery is not None:
                result = "queued" if await inbox.record(answer.delivery) else "duplicate"
            metrics.github_results[result].inc()
            status = 200 if result == "duplicate" else answer.status
            return JSONResponse({"result": result, **answer.fields}, status_code=status)

    async def slack_events(request: Request) -> Response:
        """Slash commands and interactivity; bolt verifies the signature and its 5-minute window."""
        with metrics.slack_latency.time():
            bolt_request = to_bolt_request(request, await request.body())
            return to_starlette_response(await run_in_threadpool(bolt.dispatch, bolt_request))

    # Both read their signed raw bodies themselves: plain Starlette routes. FastAPI's dependency solving
    # and validation do nothing for them, and cost a fifth of an answer (benchmarks/webhook_ack.py).
    app.add_route("/github/webhook", github_webhook, methods=["POST"])
    if pipeline.settings.slack_signing_secret is not None:  # Socket Mode alone needs no public route
        app.add_route("/slack/events", slack_events, methods=["POST"])


def _report(pipeline: Pipeline, comparison_id: int, token: str) -> Response:
    """The full HTML report of a comparison, for whoever holds a live link (see `bot.report_links`). An
    unknown comparison and a forged, foreign or tampered token look the same: no such report."""
    settings = pipeline.settings
    try:
        comparison = pipeline.comparison(comparison_id)
    except TierbotError:
        comparison = None
    verdict = "invalid"
    if comparison is not None:
        repository = comparison.head_run.repository
        verdict = report_links.check(settings, comparison_id, repository, token, report_links.today())
    if verdict == "invalid":
        return JSONResponse({"detail": "no such report"}, status_code=404)
    if verdict == "expired":
        return HTMLResponse(report_links.expired_page(settings, token, comparison.head_run_id), 410)
    path = comparison.report_path
    if path is None or not Path(path).is_file():
        return JSONResponse({"detail": "this report is not ready, or no longer kept"}, status_code=404)
    # Stored redacted; redacted again as it leaves, with the secrets this replica knows now.
    return HTMLResponse(pipeline.redactor(Path(path).read_text(encoding="utf-8", errors="replace")))


def _socket_mode(pipeline: Pipeline, bolt):
    """With an app-level token, Slack talks over a websocket this process opens: no public URL."""
    token = pipeline.settings.slack_app_token
    if token is None:
        return None
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(bolt, token.get_secret_value())
    try:
        handler.connect()
    except SlackApiError as exc:
        raise TierbotError(
            f"Slack refused TIERBOT_SLACK_APP_TOKEN for Socket Mode ({exc.response.get('error')}): it "
            f"must be an app-level token (xapp-…) with the connections:write scope."
        ) from None
    return handler
