"""PR comment commands, parsed: `/run experiment [on TIER]`, `/run cancel`, `/run approve`, `/run help`.

Pure text in, commands out. Only what a person typed as prose counts: text in fenced or indented code
blocks, inline code, quotes and HTML comments is ignored, so quoting a command never runs it.
"""

import re
from dataclasses import dataclass

MAX_COMMANDS = 5  # per comment; more is a paste accident, not intent
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_COMMAND = re.compile(r"^\s*/run(?=\s|$)(.*)$", re.IGNORECASE)
USAGE = "/run experiment [on TIER] · /run cancel · /run approve · /run help"


@dataclass(frozen=True)
class Command:
    verb: str  # experiment | cancel | approve | help | invalid
    line: str  # as typed, for quoting in a reply
    tier: str | None = None
    problem: str | None = None  # why an invalid line was not understood


def prose_lines(body: str) -> list[str]:
    """The comment's lines outside code blocks, quotes and HTML comments, inline code removed."""
    lines, fence = [], None
    for line in _HTML_COMMENT.sub("", body).splitlines():
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        if line.startswith(("    ", "\t")) or line.lstrip().startswith(">"):
            continue
        lines.append(_INLINE_CODE.sub("", line))
    return lines


def parse(body: str) -> list[Command]:
    """The commands in a comment, in order, each once."""
    commands: dict[tuple, Command] = {}
    for line in prose_lines(body):
        found = _COMMAND.match(line)
        if found:
            command = _parse_words(line.strip(), found.group(1).split())
            commands.setdefault((command.verb, command.tier, command.problem), command)
    return list(commands.values())[:MAX_COMMANDS]


def _parse_words(line: str, words: list[str]) -> Command:
    verb, rest = (words[0].lower(), words[1:]) if words else ("help", [])
    if verb in ("help", "cancel", "approve") and not rest:
        return Command(verb, line)
    if verb == "experiment":
        if not rest:
            return Command("experiment", line)
        if len(rest) == 2 and rest[0].lower() == "on":
            return Command("experiment", line, tier=rest[1])
        return Command("invalid", line, problem="Write `/run experiment` or `/run experiment on TIER`.")
    if verb in ("help", "cancel", "approve"):
        return Command("invalid", line, problem=f"`/run {verb}` takes nothing after it.")
    return Command("invalid", line, problem=f"tierbot does not know `/run {verb}`.")
