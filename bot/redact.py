"""Secrets never leave: one redactor for every text that goes to a door (GitHub, Slack, a served report,
`tierbot show`) and for what is stored (run logs, reasons, comparisons), so no later view can leak.

Two sources. (a) Values: every secret the bot itself knows (each `SecretStr` setting, the report key,
the database password, cloud credentials, `TIERBOT_REDACT`, tiers' secret options); a value shorter than
`MIN_VALUE` is not redacted by value, since it would mask ordinary words. (b) Shapes of well-known
credentials, whoever's they are. The shapes follow detect-secrets' plugins (GitHub, Slack, AWS, private
key, basic auth) and close their gaps: `github_pat_` and `xapp-` tokens, unquoted AWS secret keys, PEM
bodies rather than their first line, `Authorization:`/`Bearer` values. detect-secrets itself is not used:
its plugins scan line by line in Python and it imports `requests` for verification; a 10 MB log must be
redacted in well under a second (benchmarks/redaction.py).

Every match becomes a visible marker (`‹redacted:github-token›`) on the same line: line structure is
kept, and redaction happens before any view cuts text to a door's limits.
"""

import re
from collections.abc import Callable, Iterable
from typing import Any

import re2

from bot import signed_links
from bot.settings import Settings
from bot.tiers import TierSet

MIN_VALUE = 8
_PEM_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")
_BASE64_LINE = re.compile(r"[A-Za-z0-9+/=]{16,}")
_PEM_MAX_LINES = 200  # a 16k-bit RSA key is ~120 lines; past that, a BEGIN line was just a line

_PEM, _PEM_LABEL, _NL = "-----", r"[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----", r"\r?\n[+\- ]?"
# kind → patterns. `(?P<keep>…)` and `(?P<tail>…)`: text around the secret that stays (a header's name).
SHAPES: dict[str, tuple[str, ...]] = {
    # The whole block, END line or not (a cut log), each line possibly led by a diff's +/-; a body line
    # shorter than 16 characters only just before the END line (a key's last line may be that short).
    "private-key": (
        rf"{_PEM}BEGIN{_PEM_LABEL}(?:{_NL}[A-Za-z0-9+/=]{{16,}})*"
        rf"(?:{_NL}[A-Za-z0-9+/=]{{0,15}}(?:{_NL})?{_PEM}END{_PEM_LABEL})?",
    ),
    "github-token": (r"\bgh[pousr]_[A-Za-z0-9_]{20,255}", r"\bgithub_pat_[A-Za-z0-9_]{20,255}"),
    "slack-token": (
        r"\bxox[abpors]-[A-Za-z0-9-]{8,}",
        r"\bxapp-[A-Za-z0-9-]{8,}",
        r"https://hooks\.slack\.com/services/[A-Za-z0-9_/]+",
    ),
    "aws-access-key-id": (r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",),
    "aws-secret": (
        r"(?P<keep>(?i:aws_?secret_?access_?key|aws_?session_?token)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{16,}",
    ),
    "url-credentials": (r"(?P<keep>://)[^\s/@:\"'<>]+:[^\s/@\"'<>]+(?P<tail>@)",),
    "authorization": (
        r"(?P<keep>(?i:authorization)[\"']?\s*[:=]\s*[\"']?(?:(?i:token|bearer|basic)\s+)?)[^\s\"',;]+",
        r"(?P<keep>\b(?i:bearer)\s+)[A-Za-z0-9\-._~+/]{8,}=*",
    ),
}


_SECRET_OPTION = re.compile(r"secret|token|password|passwd|credential", re.IGNORECASE)


def marker(kind: str) -> str:
    return f"‹redacted:{kind}›"


def _diff_sign(line: str) -> str:
    """A diff's +/-/space in front of a line; a key's own `-----END` line has none."""
    if line.startswith(_PEM) and not line.startswith("-" + _PEM):
        return ""
    return line[:1] if line[:1] in ("+", "-", " ") else ""


class Redactor:
    """Replaces known secret values and credential shapes in text. One RE2 pattern does all of it in a
    single linear pass (Python's `re` took 1.2 s on 10 MB, one pass per shape); thread-safe."""

    def __init__(self, values: dict[str, Iterable[str]] | None = None):
        """`values`: marker kind → secret values (each line of a multi-line value also counts alone)."""
        found: dict[str, str] = {}
        for kind, items in (values or {}).items():
            for value in items:
                for part in [value, *value.splitlines()]:
                    part = part.strip()
                    if len(part) >= MIN_VALUE:
                        found.setdefault(part, kind)
        self._kinds: list[str] = []
        alternatives = []
        # Values first and longest first: a value that contains another is replaced whole.
        for value, kind in sorted(found.items(), key=lambda item: -len(item[0])):
            alternatives.append(self._group(kind, re2.escape(value)))
        for kind, patterns in SHAPES.items():
            alternatives += [self._group(kind, pattern) for pattern in patterns]
        self._pattern = re2.compile("|".join(alternatives))

    def _group(self, kind: str, pattern: str) -> str:
        n = len(self._kinds)
        self._kinds.append(kind)
        pattern = pattern.replace("(?P<keep>", f"(?P<k{n}>").replace("(?P<tail>", f"(?P<t{n}>")
        return f"(?P<s{n}>{pattern})"

    def _replace(self, match) -> str:
        groups = match.groupdict()
        n = next(n for n in range(len(self._kinds)) if groups[f"s{n}"] is not None)
        whole, kept, tail = groups[f"s{n}"], groups.get(f"k{n}") or "", groups.get(f"t{n}") or ""
        lines = whole[len(kept) : len(whole) - len(tail)].split("\n")
        # A marker a line, each keeping a diff's leading +/-: a key block keeps its shape in logs and diffs.
        shown = marker(self._kinds[n])
        return kept + "\n".join([shown] + [_diff_sign(line) + shown for line in lines[1:]]) + tail

    def __call__(self, text: str) -> str:
        if not text or not self._pattern.search(text):
            return text
        return self._pattern.sub(self._replace, text)

    def data(self, value: Any) -> Any:
        """Every string in a JSON-like structure (dicts, lists, tuples) redacted; keys too."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.data(v) for v in value)
        return value

    def lines(self) -> Callable[[list[str]], list[str]]:
        """A filter for a stream of lines in batches (a run's log as it is written): one RE2 pass a
        batch, and a private key's lines are followed across batches."""
        inside = 0  # lines of a key block seen so far; 0: not in one

        def redact(lines: list[str]) -> list[str]:
            nonlocal inside
            out = []
            for line in lines:
                if inside:
                    stripped = line.strip()
                    ended = _PEM_END.search(stripped) is not None
                    if ended or (_BASE64_LINE.fullmatch(stripped) and inside < _PEM_MAX_LINES):
                        inside = 0 if ended else inside + 1
                        out.append(marker("private-key"))
                        continue
                    inside = 0
                if "PRIVATE KEY" in line and _PEM_BEGIN.search(line) and not _PEM_END.search(line):
                    inside = 1
                out.append(line)
            return self("\n".join(out)).split("\n")

        return redact


def redactor_for(settings: Settings, tiers: TierSet) -> Redactor:
    """The redactor of everything this bot knows to be secret: its settings, the report key, and the
    tiers' backend options whose names say they are secret (`api_token`, `password`, ...)."""
    values: dict[str, list[str]] = settings.secret_values()
    values["report key"] = [signed_links.key(settings).decode()]
    for tier in tiers.tiers:
        for option, value in tier.backend_options.items():
            if _SECRET_OPTION.search(option) and isinstance(value, str):
                values[f"tier {tier.name}: {option}"] = [value]
    return Redactor(values)
