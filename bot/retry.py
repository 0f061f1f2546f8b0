"""How long an external API asked us to wait before trying again, read off its error."""

import time


def retry_after(exc: Exception) -> float | None:
    """`Retry-After` (secondary rate limits, 429s) or a rate limit's reset time, when the error carries
    its response headers (PyGithub's and slack_sdk's errors do)."""
    headers = getattr(exc, "headers", None) or getattr(getattr(exc, "response", None), "headers", None) or {}
    headers = {str(k).lower(): v for k, v in dict(headers).items()}
    try:
        if "retry-after" in headers:
            return float(headers["retry-after"])
        if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            return max(0.0, float(headers["x-ratelimit-reset"]) - time.time())
    except ValueError:
        return None
    return None


def transient(exc: Exception) -> bool:
    """Worth trying again later: a server error, a rate limit or a dropped connection (of GitHub, Slack
    or the database), as opposed to a bad payload or a bug, which would fail the same way again."""
    status = getattr(exc, "status", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return status >= 500 or status == 429 or retry_after(exc) is not None
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectionError", "TimeoutError", "RetryError", "OperationalError", "URLError"})
