"""Logs and text: a unified diff after masking the tokens that change on every run.

Two runs of the same code never log the same timestamps, durations, temporary paths or object ids, so
those are replaced by placeholders (`<time>`, `<duration>`, ...) before diffing; the repository can add
its own patterns (`compare.mask`). What is left is what the branch really changed.
"""

import difflib
import re
from collections.abc import Sequence

from bot.compare.files import NotText, Outcome, Pair, Rules, Side, decode_text, size_change
from bot.compare.model import FileProblem, TextDiff
from bot.masks import MaskPattern

MAX_TEXT_BYTES = 8 * 1024 * 1024  # above this a file is summarized by size: difflib is quadratic at worst
MAX_DIFF_LINES = 200
MAX_LINE_CHARS = 500
CONTEXT_LINES = 3

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?"
# Leftmost match wins and, at one position, the first alternative: longer shapes come first.
_BUILTIN_MASKS: Sequence[tuple[str, str]] = (
    ("uuid", r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"),
    # ISO 8601 dates and date-times, RFC 2822 (e-mail, HTTP) dates, asctime.
    ("time", rf"\b\d{{4}}-\d{{2}}-\d{{2}}(?:[T ]{_CLOCK}(?:\s?(?:Z|UTC|[+-]\d{{2}}:?\d{{2}}))?)?"),
    ("time", rf"\b(?:{_DAY},?\s+)?\d{{1,2}}\s+{_MONTH}\s+\d{{4}}\s+{_CLOCK}(?:\s+(?:[+-]\d{{4}}|GMT|UTC))?"),
    ("time", rf"\b{_DAY}\s+{_MONTH}\s+\d{{1,2}}\s+{_CLOCK}(?:\s+\d{{4}})?"),
    ("time", rf"\b{_CLOCK}\b"),  # clock times and h:mm:ss durations
    ("duration", r"\b\d+(?:\.\d+)?\s?(?:ns|us|µs|ms|s|sec|secs|seconds|min|mins|minutes|h|hrs?|hours)\b"),
    ("duration", r"\b\d+(?:\.\d+)?\s?(?:it|s|samples|examples|tokens|steps|batches)/s\b"),  # throughput
    ("tmp", r"(?:/private)?/var/folders/[^\s'\"]+|/(?:var/)?tmp/[^\s'\"]+"),
    ("hex", r"\b0x[0-9a-fA-F]{6,}\b"),
    # A hex id has letters and digits: a long plain number (a row count) is not volatile.
    ("hex", r"\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b"),
)
_BUILTIN = re.compile("|".join(f"(?P<{name}{i}>{regex})" for i, (name, regex) in enumerate(_BUILTIN_MASKS)))


def _placeholder(match: re.Match[str]) -> str:
    name = (match.lastgroup or "masked").rstrip("0123456789")
    return f"<{name}>"


def mask(line: str) -> str:
    """The built-in volatile tokens of one line replaced by placeholders."""
    return _BUILTIN.sub(_placeholder, line)


def masked(lines: list[str], patterns: Sequence[MaskPattern]) -> list[str]:
    """The repository's own patterns first (they know their logs), then the built-in volatile tokens.

    The repository's patterns are RE2 (see `compile_mask`) and run over the whole file at once: a call
    into RE2 costs microseconds, so one per line per pattern would dwarf the matching itself. RE2's
    multi-line mode and `never_nl` keep each match within one line, so the lines stay the lines.
    """
    if patterns and lines:
        text = "\n".join(lines)
        for pattern in patterns:
            text = pattern.sub("<masked>", text)
        lines = text.split("\n")
    return [mask(line) for line in lines]


def unified(path: str, before: list[str], after: list[str]) -> TextDiff:
    """The diff with counts over all of it, and at most MAX_DIFF_LINES lines of it kept."""
    lines = difflib.unified_diff(before, after, f"a/{path}", f"b/{path}", n=CONTEXT_LINES, lineterm="")
    kept: list[str] = []
    added = removed = total = 0
    for index, line in enumerate(lines):
        total += 1
        if index >= 2:  # the two header lines; after them, a leading "+"/"-" is always content
            added += line.startswith("+")
            removed += line.startswith("-")
        if len(kept) < MAX_DIFF_LINES:
            kept.append(line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " …")
    return TextDiff(
        path=path,
        lines_added=added,
        lines_removed=removed,
        diff="\n".join(kept),
        truncated=total > len(kept),
        diff_lines=total,
    )


def line_count_summary(added: int, removed: int) -> str:
    return f"+{added} −{removed} lines"


def _read_lines(pair: Pair, side: Side) -> list[str]:
    return decode_text(pair.read(side, MAX_TEXT_BYTES), pair, side).splitlines()


def _one_side(pair: Pair) -> Outcome:
    """An added or removed text file: how long it is is the useful summary."""
    side: Side = "head" if pair.head is not None else "base"
    lines = len(_read_lines(pair, side))
    word = "new," if side == "head" else "removed, was"
    return Outcome("text", f"{word} {lines} line{'s' if lines != 1 else ''}")


def compare_text(pair: Pair, rules: Rules) -> Outcome:
    """Diff a text file; one that is not UTF-8 is compared by size, with a problem saying so.

    FileUnreadable (a missing blob, a file above MAX_TEXT_BYTES) is left to the caller.
    """
    try:
        if pair.base is None or pair.head is None:
            return _one_side(pair)
        before, after = _read_lines(pair, "base"), _read_lines(pair, "head")
    except NotText as exc:
        return Outcome("binary", size_change(pair), problems=[FileProblem(path=pair.path, message=str(exc))])
    if before == after:
        return Outcome("text", "only line endings differ", volatile_only=True)
    masked_before, masked_after = masked(before, rules.masks), masked(after, rules.masks)
    if masked_before == masked_after:
        return Outcome("text", "only volatile tokens differ", volatile_only=True)
    diff = unified(pair.path, masked_before, masked_after)
    return Outcome("text", line_count_summary(diff.lines_added, diff.lines_removed), text_diff=diff)
