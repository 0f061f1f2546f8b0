"""When to try an external API again: never sooner than it asked, a little later at random.

One rule for every retry: in-process (PyGithub's, `bot.github.retry`; slack_sdk's, `bot.slack.retry`)
and in the outbox (reports and deliveries). A wait is our own backoff or the API's `Retry-After` /
rate-limit reset, whichever is longer, and jitter is only ever added to it: replicas refused together
come back spread out, and none comes back early.
"""

import math
import random
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime

JITTER = 0.1  # the most a wait is lengthened at random, as a share of it
MAX_BACKOFF_SECONDS = 300.0  # the longest the outbox backs off on its own (an API may ask for longer)
# GitHub's rule for a secondary rate limit whose answer names no time: "wait for at least one minute".
SECONDARY_LIMIT_SECONDS = 60.0


def not_sooner(wait: float, asked: float | None) -> float:
    """`wait`, or what the API asked when that is longer, plus jitter after it (never before)."""
    wait = max(wait, asked or 0.0)
    return wait + random.uniform(0, JITTER * wait)


def backoff(failures: int, asked: float | None = None) -> float:
    """The outbox's wait after `failures` failed attempts in a row: 2 s, 4 s, … up to five minutes, or
    longer if the API asked."""
    return not_sooner(min(2.0**failures, MAX_BACKOFF_SECONDS), asked)


def asked_wait(headers: Mapping, now: float | None = None) -> float | None:
    """The seconds from `now` that an answer's headers ask us to wait: `Retry-After` (seconds, or an
    HTTP date), else the rate limit's `x-ratelimit-reset` (epoch seconds) when none remain; None when
    they ask nothing. Header values may be lists (slack_sdk's retry handlers see them so)."""
    now = time.time() if now is None else now
    found = {str(k).lower(): v[0] if isinstance(v, list | tuple) else v for k, v in dict(headers).items()}
    if "retry-after" in found:
        return _retry_after_seconds(str(found["retry-after"]).strip(), now)
    if str(found.get("x-ratelimit-remaining")) == "0" and "x-ratelimit-reset" in found:
        try:
            return _finite(float(found["x-ratelimit-reset"]) - now)
        except ValueError:
            return None
    return None


def _retry_after_seconds(value: str, now: float) -> float | None:
    try:
        return _finite(float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _finite((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() - now)


def _finite(seconds: float) -> float | None:
    return max(0.0, seconds) if math.isfinite(seconds) else None


def retry_after(exc: Exception) -> float | None:
    """How long the API that raised `exc` asked us to wait, when its error carries the answer's headers
    (PyGithub's and slack_sdk's errors do); a GitHub secondary rate limit that names no time asks for
    a minute."""
    response = getattr(exc, "response", None)
    headers = getattr(exc, "headers", None) or getattr(response, "headers", None) or {}
    asked = asked_wait(headers)
    if asked is None and "secondary rate limit" in str(exc).lower():
        return SECONDARY_LIMIT_SECONDS
    return asked


def transient(exc: Exception) -> bool:
    """Worth trying again later: a server error, a rate limit or a dropped connection (of GitHub, Slack
    or the database), as opposed to a bad payload or a bug, which would fail the same way again."""
    status = getattr(exc, "status", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return status >= 500 or status == 429 or retry_after(exc) is not None
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectionError", "TimeoutError", "RetryError", "OperationalError", "URLError"})
