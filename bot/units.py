"""Human units in configuration: durations (`90s`, `30m`, `2h`) and sizes (`512MiB`, `4GB`)."""

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_duration(value: int | float | str) -> float:
    """Seconds from a number (seconds) or a string such as `45m`."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a duration (examples: 90s, 30m, 2h)")
    return float(match.group(1)) * _SECONDS[(match.group(2) or "s").lower()]


def parse_size(value: int | str) -> int:
    """Bytes from a number (bytes) or a string such as `4GiB` or `512M` (both binary multiples)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a size (examples: 512MiB, 4GiB, 2TB)")
    unit = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * 1024 ** _POWERS[unit])


def format_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def positive_duration(value: float | str, name: str) -> float:
    """Seconds of a duration that must be more than none (a limit, a timeout); ValueError naming it."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{name} must be positive")
    return seconds
