"""slack_sdk's retries, made to wait as Slack asks (see `bot.retry` for the rule).

slack_sdk's own `RateLimitErrorRetryHandler` (3.48) sleeps `int(Retry-After) + random()`: never sooner
for whole seconds, but it sleeps out any wait (a `Retry-After: 3600` blocks the worker for an hour) and
raises on a fractional or HTTP-date value; its `ServerErrorRetryHandler` ignores `Retry-After` on a 503.
"""

import time

from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.retry import asked_wait, not_sooner

RETRIED = frozenset({429, 500, 503})  # a rate limit, or Slack failing before it acted
FIRST_WAIT_SECONDS = 1.0  # then 2 s, 4 s, …, unless Slack asked for longer
MAX_WAIT_SECONDS = 60.0  # a longer wait is the outbox's, not a blocked worker's (as github_max_wait_seconds)


class WaitAsAsked(RetryHandler):
    """Rate limits and server errors, again after at least `Retry-After` (or an exponential backoff),
    with jitter after; an answer that asks for more than `max_wait` raises, for the outbox to retry."""

    def __init__(self, max_retry_count: int, max_wait: float = MAX_WAIT_SECONDS):
        super().__init__(max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code not in RETRIED:
            return False
        return (asked_wait(response.headers) or 0.0) <= self.max_wait

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        asked = asked_wait(response.headers) if response is not None else None
        time.sleep(not_sooner(FIRST_WAIT_SECONDS * 2**state.current_attempt, asked))
        state.next_attempt_requested = True
        state.increment_current_attempt()
