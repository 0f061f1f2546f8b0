"""Links to the full HTML reports that `tierbot serve` hands out at /reports/ID?token=YYYYMMDD.MAC

A report shows a repository's outputs, so its link carries a token: the last day the link works, and an
HMAC of the comparison id, the run's repository and that day, keyed by TIERBOT_REPORT_SECRET or else by
a random key created once in the data dir (0600, in a 0700 directory no sandboxed run can reach). A token
opens one comparison of one repository, until its day ends (UTC); changing the day breaks the HMAC.

Links live `report_link_days`, counted to the end of a day: the PR comment and the Slack message get a
fresh link each time they are synced, and all day long it is the same link, so an unchanged message is
not edited for a new one. One query parameter carries it all: an `&` would need escaping differently in
every format a link is written in. Without TIERBOT_PUBLIC_URL (a local CLI run) the link is the file.
"""

import hashlib
import hmac
import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

from bot.render.templates import template
from bot.settings import Settings

Verdict = Literal["valid", "expired", "invalid"]


def key(settings: Settings) -> bytes:
    if settings.report_secret is not None:
        return settings.report_secret.get_secret_value().encode()
    path = settings.data_dir / "report.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{secrets.token_hex(4)}")
        temporary.write_text(secrets.token_hex(32))
        temporary.chmod(0o600)
        temporary.replace(path)  # several processes starting at once keep one key (the last rename)
    return path.read_text().strip().encode()


def today() -> date:
    return datetime.now(UTC).date()


def token(settings: Settings, comparison_id: int, repository: str, last_day: date) -> str:
    message = f"report\0{comparison_id}\0{repository}\0{last_day.isoformat()}".encode()
    return f"{last_day:%Y%m%d}.{hmac.new(key(settings), message, hashlib.sha256).hexdigest()[:32]}"


def check(settings: Settings, comparison_id: int, repository: str, given: str, on: date) -> Verdict:
    """Whether `given` opens this comparison on the day `on`. Only a genuine token can be "expired": a
    forged or foreign one is "invalid" whatever its day says."""
    last_day = _last_day(given)
    if last_day is None:
        return "invalid"
    expected = token(settings, comparison_id, repository, last_day).encode()
    if not hmac.compare_digest(expected, given.encode()):  # as bytes: as text it refuses non-ASCII
        return "invalid"
    return "expired" if on > last_day else "valid"


def _last_day(given: str) -> date | None:
    day = given.partition(".")[0]
    try:
        return datetime.strptime(day, "%Y%m%d").date() if len(day) == 8 else None
    except ValueError:
        return None


def report_url(
    settings: Settings, comparison_id: int, repository: str, report_path: str | None, on: date | None = None
) -> str | None:
    """The link to a comparison's report, issued on the day `on` (today when not given)."""
    if report_path is None:
        return None
    if settings.public_url is None:  # the report's place: a file here, or a store's URL (s3://…)
        return report_path if "://" in report_path else Path(report_path).as_uri()
    until = (on or today()) + timedelta(days=settings.report_link_days)
    base = settings.public_url.rstrip("/")
    return f"{base}/reports/{comparison_id}?token={token(settings, comparison_id, repository, until)}"


def expired_page(settings: Settings, given: str, head_run_id: int) -> str:
    """What an expired link (`given`, checked already) shows: when it expired, and where a fresh one is."""
    return template("report_expired.html.j2", "html").render(
        last_day=_last_day(given), days=settings.report_link_days, run_id=head_run_id
    )
