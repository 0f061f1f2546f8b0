"""What `tierbot serve` says at start: doors on or off and why, the database, the tiers and whether they
can run here, the workers, where reports are linked; never a secret."""

from pathlib import Path

from pydantic import SecretStr

from bot.backends import mark_availability
from bot.cli.server import start_summary
from bot.settings import Settings
from bot.tiers import BUILTIN, load_tiers

from ..fakes.cli import UNAVAILABLE, UNAVAILABLE_TIERS, serving

SECRETS = {
    "github_webhook_secret": "whsec-one-4f1c,whsec-two-9a2b",
    "github_token": "ghp_summarytoken0123456789abcdefABCDEF",
    "github_private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEsummarykey\n-----END RSA PRIVATE KEY-----",
    "slack_bot_token": "xoxb-summary-bot-token",
    "slack_signing_secret": "slack-signing-summary",
    "slack_app_token": "xapp-summary-app-token",
    "report_secret": "report-secret-summary",
}


def configured(settings: Settings, **fields: object) -> Settings:
    """The settings with these fields; secrets given as plain strings, as the environment gives them."""
    values = {name: SecretStr(v) if name in SECRETS and v is not None else v for name, v in fields.items()}
    return settings.model_copy(update=values)


def summary(settings: Settings, tiers=BUILTIN, workers: int = 1) -> str:
    text = "\n".join(start_summary(settings, tiers, workers))
    for secret in SECRETS.values():
        assert all(part not in text for part in secret.split(",")), secret
    return text


def line(text: str, start: str) -> str:
    return next(found for found in text.splitlines() if found.startswith(start))


def test_everything_off_says_which_variables_are_missing(settings):
    text = summary(settings, workers=0)
    assert line(text, "GitHub:") == (
        "GitHub: off: TIERBOT_GITHUB_WEBHOOK_SECRET is not set, so every delivery is refused"
    )
    assert line(text, "Slack:") == (
        "Slack: off: neither TIERBOT_SLACK_SIGNING_SECRET (HTTP mode) nor TIERBOT_SLACK_APP_TOKEN "
        "(Socket Mode) is set"
    )
    assert line(text, "Database:") == f"Database: sqlite:///{settings.data_dir / 'tierbot.db'}"
    assert line(text, "Tiers:") == "Tiers: local (default)"
    assert line(text, "Workers:").startswith("Workers: none in this process (--workers 0)")
    assert line(text, "Reports:").startswith("Reports: report files only (set TIERBOT_PUBLIC_URL")
    assert len(text.splitlines()) <= 24  # one screen


def test_github_app_mode_token_mode_and_half_configured(settings):
    app = configured(settings, **SECRETS, github_app_id=42)
    assert line(summary(app), "GitHub:") == (
        "GitHub: App mode (app 42): comments and check runs · POST /github/webhook "
        "with 2 webhook secrets (rotating)"
    )
    token = configured(settings, github_webhook_secret="whsec-one-4f1c", github_token=SECRETS["github_token"])
    assert line(summary(token), "GitHub:") == (
        "GitHub: token mode: comments only (GitHub lets only Apps write check runs) · POST /github/webhook"
    )
    typo = configured(token, github_app_id=42)
    assert line(summary(typo), "GitHub:").endswith("; App mode is off: TIERBOT_GITHUB_PRIVATE_KEY is not set")
    mute = configured(settings, github_webhook_secret="whsec-one-4f1c")
    assert "nothing can be posted: set TIERBOT_GITHUB_APP_ID" in line(summary(mute), "GitHub:")


def test_slack_http_mode_socket_mode_and_a_missing_bot_token(settings):
    both = configured(settings, **SECRETS, slack_default_repository="acme/models")
    assert line(summary(both), "Slack:") == (
        "Slack: HTTP mode (POST /slack/events) and Socket Mode · channels that chose no repository run "
        "acme/models"
    )
    socket_only = configured(settings, slack_app_token=SECRETS["slack_app_token"])
    assert line(summary(socket_only), "Slack:") == (
        "Slack: Socket Mode, but nothing can be answered: TIERBOT_SLACK_BOT_TOKEN is not set"
    )
    http = configured(settings, **{k: SECRETS[k] for k in ("slack_signing_secret", "slack_bot_token")})
    assert "each channel chooses one with /run use" in line(summary(http), "Slack:")


def test_the_database_password_is_masked(settings):
    postgres = configured(settings, database_url="postgresql+psycopg://tierbot:hunter2-secret@db.internal/tb")
    text = summary(postgres)
    assert line(text, "Database:") == "Database: postgresql+psycopg://tierbot:***@db.internal/tb"
    assert "hunter2" not in text


def test_unavailable_tiers_say_why_and_an_unavailable_default_says_what_it_means(settings, tmp_path: Path):
    path = tmp_path / "tiers.yaml"
    path.write_text(UNAVAILABLE_TIERS)
    tiers = mark_availability(load_tiers(path), settings)
    text = summary(settings, tiers)
    assert line(text, "Tiers:") == "Tiers: local (default)"
    assert f"  the tier gpu-small is unavailable: {UNAVAILABLE}" in text.splitlines()
    gone = BUILTIN.with_availability({"local": "no engine"})
    assert summary(settings, gone).splitlines()[3:5] == [
        "Tiers: none available",
        "  the default tier local is unavailable: no engine; requests that name no tier are refused",
    ]


def test_workers_and_report_links(settings):
    linked = configured(settings, public_url="https://tierbot.example.com/")
    text = summary(linked, workers=3)
    assert line(text, "Workers:") == (
        "Workers: 3 run worker(s) in this process, and one for deliveries and reports"
    )
    assert line(text, "Reports:") == "Reports: linked at https://tierbot.example.com/reports/ID"


def test_serve_prints_the_summary_before_it_serves(settings, tmp_path: Path):
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text(UNAVAILABLE_TIERS)
    secrets = {
        f"TIERBOT_{name.upper()}": value for name, value in SECRETS.items() if name != "slack_app_token"
    }
    with serving(settings.data_dir, TIERBOT_TIERS_FILE=str(tiers), **secrets) as served:
        pass
    said = served.output
    assert said.index("GitHub: token mode") < said.index("Uvicorn running")
    assert "Slack: HTTP mode (POST /slack/events) · no TIERBOT_SLACK_DEFAULT_REPOSITORY" in said
    assert f"the tier gpu-small is unavailable: {UNAVAILABLE}" in " ".join(said.split())
    for secret in SECRETS.values():
        assert all(part not in said for part in secret.split(",")), secret
