"""PyGithub's retries, made to wait as GitHub asks (see `bot.retry` for the rule).

PyGithub's `GithubRetry` (2.10) on top of urllib3's `Retry` (2.x) falls short in four ways:
- it never adds jitter: every replica refused at once retries at once (`Retry.sleep_for_retry`
  sleeps exactly `Retry-After`);
- `max_rate_limit_wait` caps only the limits it reads off the message body (primary, and secondary
  without `Retry-After`); a 403 or 429 with `Retry-After: 3600` is slept out in the handler, an hour;
- `secondary_rate_wait` was set to our longest wait, so a lower `github_max_wait_seconds` made a
  secondary limit that names no time retry sooner than GitHub's minute;
- when retries run out, urllib3's `MaxRetryError` surfaces as `requests.exceptions.RetryError`, which
  carries no headers: the outbox could not tell how long GitHub asked to wait.
"""

import time
from types import TracebackType

from github import GithubRetry
from urllib3 import BaseHTTPResponse, Retry
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError, ResponseError

from bot.retry import SECONDARY_LIMIT_SECONDS, asked_wait, not_sooner
from bot.settings import Settings


class PatientRetry(GithubRetry):
    """A limit is waited out in-process if it asks for at most `max_rate_limit_wait`, never sooner and
    with jitter after; a longer one is not retried here, so PyGithub raises it with its headers and the
    outbox tries again at the asked time."""

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Retry:
        refused = response is not None and response.status >= 400  # not a redirect that used the last call
        asked = asked_wait(response.headers) if refused else None
        limit = self.max_rate_limit_wait  # None: no longest wait, as in GithubRetry
        if asked is not None and limit is not None and asked > limit:
            # Caught by urllib3, which (raise_on_status=False) hands this answer to PyGithub as is.
            raise MaxRetryError(_pool, url, ResponseError(f"asked to wait {asked:.0f} s"))
        return super().increment(method, url, response, error, _pool, _stacktrace)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        # get_backoff_time: urllib3's exponential backoff, or PyGithub's wait for a limit it read off
        # the body (the reset + 1 s, or the secondary limit's minute).
        asked = asked_wait(response.headers) if response is not None else None
        time.sleep(not_sooner(self.get_backoff_time(), asked))


def github_retry(settings: Settings, methods: frozenset[str]) -> PatientRetry:
    """Retries of `methods` on 5xx and rate limits. When they run out, the last answer reaches PyGithub
    (raise_on_status=False), which raises a GithubException that keeps GitHub's headers."""
    return PatientRetry(
        total=settings.github_retries,
        backoff_factor=0.5,
        allowed_methods=methods,
        secondary_rate_wait=SECONDARY_LIMIT_SECONDS,
        max_rate_limit_wait=settings.github_max_wait_seconds,
        raise_on_status=False,
    )
