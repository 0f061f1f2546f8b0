"""`tierbot serve` (the bot) and `tierbot replay` (send a signed webhook to a running bot)."""

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Annotated

import typer

from bot.errors import TierbotError
from bot.github.signature import sign
from bot.settings import Settings


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0, help="Worker threads here.")] = 1,
) -> None:
    """Run the bot: GitHub webhooks, health and metrics (and workers, unless --workers 0)."""
    import uvicorn

    from bot.pipeline import Pipeline
    from bot.server import create_app

    app = create_app(Pipeline(Settings()), workers=workers)
    uvicorn.run(app, host=host, port=port, log_level="info")


def replay(
    file: Annotated[Path, typer.Argument(help="A webhook payload (JSON) to send.")],
    event: Annotated[str, typer.Option(help="The X-GitHub-Event, e.g. pull_request.")],
    url: Annotated[str, typer.Option(help="The bot's webhook URL.")] = "http://127.0.0.1:8000/github/webhook",
    delivery: Annotated[str | None, typer.Option(help="X-GitHub-Delivery (default: a new id).")] = None,
) -> None:
    """Send a payload to a running bot, signed with TIERBOT_GITHUB_WEBHOOK_SECRET (the first one)."""
    secrets = Settings().github_secrets
    if not secrets:
        raise TierbotError("Set TIERBOT_GITHUB_WEBHOOK_SECRET to the bot's secret to sign the payload.")
    try:
        body = file.read_bytes()
        json.loads(body)
    except OSError as exc:
        raise TierbotError(f"Cannot read {file}: {exc.strerror}.") from None
    except ValueError as exc:
        raise TierbotError(f"{file} is not JSON: {exc}.") from None
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secrets[0]),
        "User-Agent": "tierbot-replay",
    }
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, answer = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, exc.read().decode()
    except urllib.error.URLError as exc:
        raise TierbotError(f"Cannot reach {url}: {exc.reason}.") from None
    typer.echo(f"{status} {answer}")
    if status >= 400:
        raise typer.Exit(1)
