"""`tierbot serve`: the bot's HTTP face. Every endpoint answers at once; all work is queued.

`create_app` is a factory: settings come in through the pipeline, nothing is read from the
environment here, so tests and several replicas can build as many apps as they like.
"""

import asyncio
import gc
import json
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

from bot import __version__, github, report_links
from bot.errors import TierbotError
from bot.github.signature import signature_valid
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


def create_app(pipeline: Pipeline, workers: int = 1) -> FastAPI:
    """The application; `workers` threads execute runs in this process, beside one thread for deliveries
    and reports (0: no threads at all, when `tierbot worker` processes do all the work)."""
    registry = CollectorRegistry()
    deliveries = Counter(
        "tierbot_webhook_deliveries", "Webhook deliveries by result", ["source", "result"], registry=registry
    )
    latency = Histogram("tierbot_webhook_seconds", "Time to answer a webhook", ["source"], registry=registry)
    # Labelled children looked up once: `labels()` costs more than the rest of a metric update.
    github_latency, slack_latency = latency.labels("github"), latency.labels("slack")
    github_results = {
        result: deliveries.labels("github", result)
        for result in ("queued", "duplicate", "ignored", "pong", "refused", "malformed")
    }
    registry.register(_RunStates(pipeline))
    inbox = Inbox(pipeline.deliveries)

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

    settings = pipeline.settings
    bolt = create_bolt(pipeline) if settings.slack_signing_secret or settings.slack_app_token else None
    app = FastAPI(title="tierbot", version=__version__, lifespan=lifespan)
    app.add_middleware(
        RequestLimits, max_bytes=settings.max_request_bytes, read_seconds=settings.request_read_seconds
    )

    async def slack_events(request: Request) -> Response:
        """Slash commands and interactivity; bolt verifies the signature and its 5-minute window."""
        with slack_latency.time():
            bolt_request = to_bolt_request(request, await request.body())
            return to_starlette_response(await run_in_threadpool(bolt.dispatch, bolt_request))

    def answer(result: str, status: int, **extra: object) -> JSONResponse:
        github_results[result].inc()
        return JSONResponse({"result": result, **extra}, status_code=status)

    async def github_webhook(request: Request) -> JSONResponse:
        with github_latency.time():
            body = await request.body()
            secrets = pipeline.settings.github_secrets
            if not secrets:
                return answer("refused", 503, detail="TIERBOT_GITHUB_WEBHOOK_SECRET is not set; refusing all")
            signature = request.headers.get("X-Hub-Signature-256")
            if not signature:
                return answer("refused", 401, detail="missing X-Hub-Signature-256")
            if not signature_valid(body, signature, secrets):
                return answer("refused", 403, detail="signature does not match")
            event = request.headers.get("X-GitHub-Event")
            delivery = request.headers.get("X-GitHub-Delivery")
            if not event or not delivery:
                return answer("malformed", 400, detail="missing X-GitHub-Event or X-GitHub-Delivery")
            try:
                text = body.decode()
                payload = json.loads(text)
            except ValueError:  # (UnicodeDecodeError is one)
                return answer("malformed", 400, detail="the body is not JSON")
            if not isinstance(payload, dict):
                return answer("malformed", 400, detail="the body is not a JSON object")
            action = payload.get("action") if isinstance(payload.get("action"), str) else None
            if event == "ping":
                return answer("pong", 200, zen=payload.get("zen"))
            if not github.handles(event, action):
                return answer("ignored", 202, event=event, action=action)
            recorded = await inbox.record((delivery, "github", event, action, text))
            if not recorded:
                return answer("duplicate", 200, delivery=delivery)
            return answer("queued", 202, delivery=delivery)

    # Both webhooks read their signed raw bodies themselves: plain Starlette routes. FastAPI's dependency
    # solving and validation do nothing for them, and cost a fifth of an answer (benchmarks/webhook_ack.py).
    app.add_route("/github/webhook", github_webhook, methods=["POST"])
    if settings.slack_signing_secret is not None:  # HTTP mode; Socket Mode alone needs no public route
        app.add_route("/slack/events", slack_events, methods=["POST"])

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
        """The full HTML report of a comparison, for whoever holds a live link (see `bot.report_links`).
        An unknown comparison and a forged, foreign or tampered token look the same: no such report."""
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
        page = pipeline.redactor(Path(path).read_text(encoding="utf-8", errors="replace"))
        return HTMLResponse(page)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


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
