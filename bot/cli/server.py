"""`tierbot serve` (the bot) and `tierbot replay` (send a signed webhook to a running bot).

`serve` says at start what it is about to be, on one screen: which doors are open (and, when one is
not, which variable is missing), the database, the tiers and whether each can run here, the workers,
where reports are linked and where outputs, logs and reports are kept. A misconfiguration is then seen
at start, not at the first refused request; a host-local store beside other hosts' runs refuses to start.
"""

import json
import logging
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text
from sqlalchemy import make_url

from bot import __version__
from bot.artifacts import describe, refuse_host_local
from bot.errors import TierbotError
from bot.forks import forks_summary
from bot.github.signature import sign
from bot.hardening import harden
from bot.settings import Settings
from bot.tiers import TierSet


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", "-j", min=0, help="Worker threads here.")] = 1,
) -> None:
    """Run the bot: GitHub webhooks, health and metrics (and workers, unless --workers 0)."""
    import uvicorn

    from bot import wiring
    from bot.limits import raise_open_files_limit, server_options
    from bot.server import create_app

    settings = Settings()
    warnings = harden(settings)  # before the data dir is opened or a thread or child starts
    pipeline = wiring.pipeline(settings)
    refuse_host_local(settings, pipeline.artifacts, pipeline.db)  # before it settles or serves anything
    console = Console(stderr=True, soft_wrap=True)  # one line per item, also in a service's log
    console.print(f"[bold]tierbot {__version__}[/] serve")
    said = [*start_summary(settings, pipeline.tiers, workers), *(f"Warning: {w}" for w in warnings)]
    console.print(Text("\n".join(said)))  # no markup
    app = create_app(pipeline, workers=workers)
    # A filter on the logger, not a handler: uvicorn replaces the handlers when it configures logging.
    logging.getLogger("uvicorn.access").addFilter(PathsOnly())
    limits = server_options(pipeline.settings, raise_open_files_limit())
    uvicorn.run(app, host=host, port=port, log_level="info", **limits)


class PathsOnly(logging.Filter):
    """Access log lines without query strings: a report link's token is one, and logs are read by more
    people (and kept longer) than the links are meant for."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args  # uvicorn's: client, method, path with query, HTTP version, status
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def start_summary(settings: Settings, tiers: TierSet, workers: int) -> list[str]:
    """The lines `tierbot serve` prints at start. Secrets are only ever said to be set or not."""
    database = make_url(settings.db_url).render_as_string(hide_password=True)
    if settings.public_url:
        reports = f"linked at {settings.public_url.rstrip('/')}/reports/ID"
    else:
        reports = "report files only (set TIERBOT_PUBLIC_URL to link them from GitHub and Slack)"
    return [
        f"GitHub: {_github_door(settings)}",
        f"Slack: {_slack_door(settings)}",
        f"Database: {database}",
        *_tier_lines(tiers),
        f"Forks: {forks_summary(tiers, settings)}",
        f"Workers: {_workers(workers)}",
        f"Reports: {reports}",
        f"Artifacts: {describe(settings)}",
    ]


def _github_door(settings: Settings) -> str:
    secrets = len(settings.github_secrets)
    if not secrets:
        return "off: TIERBOT_GITHUB_WEBHOOK_SECRET is not set, so every delivery is refused"
    app_id, key = settings.github_app_id, settings.github_private_key
    if app_id is not None and key is not None:
        mode = f"App mode (app {app_id}): comments and check runs"
    elif settings.github_token is not None:
        mode = "token mode: comments only (GitHub lets only Apps write check runs)"
    else:
        mode = (
            "deliveries are accepted but nothing can be posted: set TIERBOT_GITHUB_APP_ID and "
            "TIERBOT_GITHUB_PRIVATE_KEY (App mode) or TIERBOT_GITHUB_TOKEN (token mode)"
        )
    rotating = f" with {secrets} webhook secrets (rotating)" if secrets > 1 else ""
    said = f"{mode} · POST /github/webhook{rotating}"
    if (app_id is None) != (key is None):  # one of the pair without the other: a typo, not a choice
        missing = "TIERBOT_GITHUB_PRIVATE_KEY" if key is None else "TIERBOT_GITHUB_APP_ID"
        said += f"; App mode is off: {missing} is not set"
    return said


def _slack_door(settings: Settings) -> str:
    http, socket = settings.slack_signing_secret is not None, settings.slack_app_token is not None
    if not (http or socket):
        return (
            "off: neither TIERBOT_SLACK_SIGNING_SECRET (HTTP mode) nor TIERBOT_SLACK_APP_TOKEN "
            "(Socket Mode) is set"
        )
    modes = [name for name, on in (("HTTP mode (POST /slack/events)", http), ("Socket Mode", socket)) if on]
    door = " and ".join(modes)
    if settings.slack_bot_token is None:
        return f"{door}, but nothing can be answered: TIERBOT_SLACK_BOT_TOKEN is not set"
    repository = settings.slack_default_repository
    if repository:
        return f"{door} · channels that chose no repository run {repository}"
    return f"{door} · no TIERBOT_SLACK_DEFAULT_REPOSITORY: each channel chooses one with /run use"


def _tier_lines(tiers: TierSet) -> list[str]:
    """The available tiers on one line; each unavailable one on its own, with why."""
    available = [f"{t.name} (default)" if t.default else t.name for t in tiers.tiers if not t.unavailable]
    lines = [f"Tiers: {', '.join(available) or 'none available'}"]
    for tier in tiers.tiers:
        if tier.unavailable:
            refused = "; requests that name no tier are refused" if tier.default else ""
            default = "default " if tier.default else ""
            lines.append(f"  the {default}tier {tier.name} is unavailable: {tier.unavailable}{refused}")
    return lines


def _workers(workers: int) -> str:
    if not workers:
        return "none in this process (--workers 0): `tierbot worker` processes on this database do the work"
    return f"{workers} run worker(s) in this process, and one for deliveries and reports"


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
