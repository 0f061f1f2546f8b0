"""How numbers read, the same in reasons, Markdown, HTML and the terminal.

Floating-point noise (`0.95 - 0.9 == 0.04999999999999993`) is rounded away once, where deltas are
computed, so that stored JSON and every render agree to the digit.
"""

import math

SIGNIFICANT = 6


def denoise(value: float | int) -> float | int:
    """Round away binary floating-point noise: 12 significant digits are far beyond any metric's meaning."""
    if isinstance(value, int) or not math.isfinite(value):
        return value
    return float(f"{value:.12g}")


def format_number(value: float | int | None) -> str:
    """A metric value: integers as they are, floats to 6 significant digits."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.{SIGNIFICANT}g}"


def format_signed(value: float | int | None) -> str:
    """A delta with its sign always shown: `+0.05`, `-3`, `0`."""
    if value is None:
        return "—"
    text = format_number(value)
    return text if text.startswith("-") or value == 0 or text == "NaN" else "+" + text


def format_percent(value: float | int | None) -> str:
    """A relative change in percent, signed, to 3 significant digits: `+5.56%`."""
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return format_signed(value) + "%"
    if value == 0:
        return "0%"
    if abs(value) < 1:
        return f"{value:+.2g}%"  # `-0.0082%`: two digits say enough of a tiny change
    return f"{value:+.3g}%" if abs(value) < 1000 else f"{value:+.0f}%"
