"""Links to the full HTML reports that `tierbot serve` hands out at /reports/ID?token=…

A report shows a repository's outputs, so its link carries a token: an HMAC of the comparison id, keyed
by TIERBOT_REPORT_SECRET or else by a random key created once in the data dir. Without
TIERBOT_PUBLIC_URL (a local CLI run) the link is the report file itself.
"""

import hashlib
import hmac
import secrets
from pathlib import Path

from bot.settings import Settings


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


def token(settings: Settings, comparison_id: int) -> str:
    return hmac.new(key(settings), f"comparison:{comparison_id}".encode(), hashlib.sha256).hexdigest()[:32]


def valid(settings: Settings, comparison_id: int, given: str) -> bool:
    return hmac.compare_digest(token(settings, comparison_id), given)


def report_url(settings: Settings, comparison_id: int, report_path: str | None) -> str | None:
    if report_path is None:
        return None
    if settings.public_url is None:
        return Path(report_path).as_uri()
    base = settings.public_url.rstrip("/")
    return f"{base}/reports/{comparison_id}?token={token(settings, comparison_id)}"
