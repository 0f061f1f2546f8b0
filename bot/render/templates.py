"""The Jinja2 environments of the renderers and the filters that escape and format user data in them.

One environment per flavour: `md` (GitHub Markdown), `html` (autoescaped), `term` (rich markup),
`slack` (Block Kit mrkdwn, autoescaped for Slack) and `yaml` (the tierbot.yaml that `tierbot init`
writes, whose values go through `yaml`). Every filter is registered in all of them (but the
Slack ones, which make markup, in Slack's alone), so templates name what a value is (`code`, `key`,
`share`) and the flavour's escaping stays in one place: here.

User data is hostile until shown otherwise: an output file may be named `<b>x</b>`, `a|b.md`,
"line\nbreak" or carry terminal escape sequences. Every filter that takes text shows control
characters as symbols (`␛`) rather than passing them on, and the autoescaped flavours do the same for
every value they print (`_html_value`, `_slack_value`): a template that forgets a filter shows a value
escaped, never obeyed, and no view has to remember to.
"""

import contextlib
import json
import re
from collections.abc import Mapping
from functools import cache

import yaml
from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined, Template
from jinja2.bccache import Bucket
from markupsafe import Markup
from rich.markup import escape as rich_escape

from bot.compare.numbers import format_number, format_percent, format_signed
from bot.resources import resource_dir
from bot.units import format_size

_NEWLINES = re.compile(r"\r\n|\r|\n")
# C0 and C1 control characters but tab and line feed (a terminal obeys ESC sequences, CR rewrites the
# line), Unicode's line separators and its bidirectional controls, which can reorder or hide text.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _picture(match: re.Match) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # Unicode's control pictures: ␛ for ESC, ␍ for CR
    return "␡" if code == 0x7F else f"\\u{code:04x}"


def shown(text: str) -> str:
    """Control characters as symbols or `\\u202e`, seen and never obeyed; tabs and line feeds kept."""
    return _CONTROLS.sub(_picture, text)


def shown_lines(text: str) -> str:
    """Text of many lines (a log): `\r\n` ends a line as `\n` does; any other control character, a
    lone `\r` too (it would overwrite the line), is shown."""
    return shown(text.replace("\r\n", "\n"))


def _one_line(text: str) -> str:
    """Line breaks shown as `↵`, control characters as symbols."""
    return shown(_NEWLINES.sub("↵", text))


def visible(value: object) -> str:
    """One line: line breaks inside a value shown as `↵`, tabs as spaces, so they cannot break markup."""
    return _one_line(str(value).replace("\t", " "))


def _html_value(value: object) -> object:
    """Every value the HTML flavour prints, before autoescaping: one line, control characters shown.
    Markup (a rendered macro, `|safe`) is already built from such values and passes as it is."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _one_line(value)
    return value


def term_text(value: object) -> str:
    """Text in rich markup: `[` cannot open a style, nothing can reach the terminal as a control code."""
    return rich_escape(_one_line(str(value)))


def term_lines(value: object) -> str:
    """Text of many lines (a log, an error) in rich markup: its lines kept, control characters shown."""
    return rich_escape(shown_lines(str(value)))


def clip(value: object, width: int = 120) -> str:
    """At most `width` characters, shortened at the end with `…`: cell values can be whole documents."""
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


# -- GitHub Markdown --------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def md_text(value: object) -> str:
    """Plain text in Markdown: punctuation that could start markup or end a table cell is escaped, and
    `@` is a look-alike: GitHub notifies whoever `@name` names, escaped or not, outside code."""
    text = shown(" ".join(str(value).splitlines()))
    return _MD_SPECIAL.sub(r"\\\1", text).replace("@", "＠")


def md_code(value: object, table: bool = False) -> str:
    """A code span that survives any content: a fence longer than the longest backtick run inside."""
    text = visible(value)
    if table:
        text = text.replace("|", "\\|")  # GitHub splits cells before it parses code spans
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_fence(body: str) -> str:
    """A code fence longer than any backtick run that starts a line of the body."""
    longest = max((len(run) for run in re.findall(r"^\s*(`{3,})", body, re.MULTILINE)), default=0)
    return "`" * max(3, longest + 1)


def md_url(url: str) -> str:
    """A link target that cannot end the link early."""
    return "".join({" ": "%20", "(": "%28", ")": "%29", "<": "%3C", ">": "%3E"}.get(ch, ch) for ch in url)


# -- Slack mrkdwn -----------------------------------------------------------------------------------------
# Slack decodes only `&amp;`, `&lt;` and `&gt;` (mentions, links and `<!channel>` all start with `<`), in
# code spans and blocks too, and has no escape for its formatting characters, so free text gets
# look-alike characters for them (as jsx-slack's <Escape> does), and user data goes in code spans, inside
# which `*`, `_` and `~` are literal and only a backtick needs replacing.

_SLACK_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SLACK_LOOKALIKES = str.maketrans({"`": "ˋ", "*": "∗", "~": "∼"})
_SLACK_EDGE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")  # `_` that could open or close italics


def _slack_entities(text: str) -> str:
    return "".join(_SLACK_ENTITIES.get(ch, ch) for ch in text)


def slack_length(text: str) -> int:
    """Length as Slack counts it, conservatively: UTF-16 code units (an emoji may count twice)."""
    return len(text.encode("utf-16-le")) // 2


class Mrkdwn(Markup):
    """Text that is Slack mrkdwn already, printed as it is. `Mrkdwn.escape` makes plain text mrkdwn
    (entities for `&`, `<`, `>`; control characters shown), for the Slack flavour's finalize and for
    Markup's own operations (`+`, `%`, `.join`). Jinja's `~` and `join` filter escape a plain operand
    for HTML instead: safe, but a quote would show as `&#39;`, so templates filter user data first."""

    @classmethod
    def escape(cls, s: object) -> "Mrkdwn":
        if hasattr(s, "__html__"):
            return cls(s.__html__())
        return cls(_slack_entities(shown(str(s))))


def slack_escaped(text: str) -> str:
    """Text written for every door (an error, a refusal) as mrkdwn that says just that: its `<…>` can
    mention nobody and link nowhere, its control characters show; its backtick code spans stay code."""
    return str(Mrkdwn.escape(text))


def _slack_value(value: object) -> object:
    """Every value the Slack flavour prints: as it is when a filter made it mrkdwn (or it is a macro's
    output), else escaped, control characters shown. The template's own text is its markup."""
    return value if hasattr(value, "__html__") else Mrkdwn.escape(value)


def slack_text(value: object) -> Mrkdwn:
    """Free text in mrkdwn: control characters as entities, formatting characters as look-alikes."""
    text = shown(" ".join(str(value).splitlines())).translate(_SLACK_LOOKALIKES)
    return Mrkdwn(_slack_entities(_SLACK_EDGE_UNDERSCORE.sub("ˍ", text)))


def slack_code(value: object) -> Mrkdwn:
    """User data as an inline code span: one line, no backtick that could end it early."""
    text = visible(value).replace("`", "ˋ")
    return Mrkdwn(f"`{_slack_entities(text)}`" if text.strip() else "_(empty)_")


def slack_block(value: object, limit: int) -> Mrkdwn:
    """The inside of a ``` block: lines kept, no ``` that could end it; the end of the text (a log's
    end matters most) that fits `limit` characters once escaped, cut at a line when one is near."""
    text = shown_lines(str(value)).replace("```", "ˋˋˋ")
    pieces = [_SLACK_ENTITIES.get(ch, ch) for ch in text]
    start, room = len(pieces), limit
    while start and slack_length(pieces[start - 1]) <= room:
        start -= 1
        room -= slack_length(pieces[start])
    kept = "".join(pieces[start:])
    if start:
        line = kept.find("\n")
        kept = kept[line + 1 :] if 0 <= line < len(kept) // 2 else kept
    return Mrkdwn(kept)


def slack_url(url: str) -> Mrkdwn:
    """A link target inside `<url|text>`: nothing in it may end the link or start its label."""
    return Mrkdwn(_slack_entities(md_url(url).replace("|", "%7C")))


def plain(value: object) -> Mrkdwn:
    """A `plain_text` field's text (a header, a button): Slack parses nothing there, so nothing is
    escaped; one line, control characters shown."""
    return Mrkdwn(visible(value))


# -- YAML (the tierbot.yaml `tierbot init` writes) ---------------------------------------------------------
# A scalar is written plain only when YAML reads it back as the same string (`yes`, `1.5`, `~` and
# `null` would not be), else single-quoted (no escapes but `''`: masks keep their backslashes), and
# double-quoted with escapes when it holds characters a single-quoted one cannot carry (line breaks,
# controls).
# Comments show values through `visible`, so a name with a line break cannot end its comment.

_YAML_PLAIN = re.compile(r"[A-Za-z0-9_./][\w./=+,-]*(?: [\w./=+,-]+)*")


def _reads_back(text: str) -> bool:
    try:
        return yaml.safe_load(text) == text
    except yaml.YAMLError:
        return False


def yaml_scalar(value: object) -> str:
    """One value as a YAML flow scalar that reads back as exactly that value."""
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    text = str(value)
    if _YAML_PLAIN.fullmatch(text) and _reads_back(text):
        return text
    if text.isprintable():
        return "'" + text.replace("'", "''") + "'"
    return '"' + "".join(_yaml_char(ch) for ch in text) + '"'


def _yaml_char(ch: str) -> str:
    """One character of a double-quoted YAML scalar: itself when printable, else a YAML escape (not a
    JSON one: YAML reads `\\ud83d\\ude00` as two lone surrogates, and `\\U0001f600` as the character)."""
    if ch in '\\"':
        return "\\" + ch
    if ch.isprintable():
        return ch
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


# -- numbers and names ------------------------------------------------------------------------------------


def fit(value: object, width: int, right: bool = False) -> str:
    """Exactly `width` characters for a terminal column: padded, or shortened from the left with `…`."""
    text = " ".join(str(value).splitlines())
    if len(text) > width:
        text = "…" + text[len(text) - width + 1 :]
    return text.rjust(width) if right else text.ljust(width)


def size(value: int | None) -> str:
    return "—" if value is None else format_size(value)


def amount(value: int) -> str:
    """A count of rows, cells or pixels, with thousands separated: `1,204,311`."""
    return f"{value:,}"


def share(value: float) -> str:
    """A share as a percentage that never rounds a real difference to 0: `3.2%`, `0.0015%`."""
    percent = value * 100
    if percent == 0:
        return "0%"
    return f"{percent:.3g}%" if percent >= 0.01 else f"{percent:.2g}%"


def dimensions(value: tuple[int, int] | None) -> str:
    return "—" if value is None else f"{value[0]}×{value[1]}"


def key_text(key: Mapping[str, str]) -> str:
    """A row's key: `id=3`, or `fold=2, id=3` for a composite key."""
    return ", ".join(f"{column}={value}" for column, value in key.items())


FILTERS = {
    "num": format_number,
    "signed": format_signed,
    "pct": format_percent,
    "size": size,
    "amount": amount,
    "share": share,
    "dims": dimensions,
    "key": key_text,
    "visible": visible,
    "shown": shown,
    "shown_lines": shown_lines,
    "clip": clip,
    "md": md_text,
    "code": md_code,
    "fence": md_fence,
    "url": md_url,
    "esc": term_text,
    "fit": fit,
    "yaml": yaml_scalar,
}
# Only where Slack's escaping is the flavour's: mrkdwn is markup, which the HTML flavour would not escape.
SLACK_FILTERS = {
    "sl": slack_text,
    "slcode": slack_code,
    "slurl": slack_url,
    "slblock": slack_block,
    "plain": plain,
}


_FINALIZE = {"html": _html_value, "slack": _slack_value}


class _CompiledBeside(FileSystemBytecodeCache):
    """Compiled templates kept beside the templates, in `__pycache__/FLAVOUR/`, as Python keeps a module's
    bytecode beside it: the same place, so the same trust, as the code itself (never a shared temporary
    directory, where another user could plant code). Compiling the report's templates costs a command
    line a few hundred milliseconds every time; loading them, a few. Each entry is checked against its
    template's source. A read-only installation just compiles every time."""

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # a damaged entry (Jinja lets a truncated checksum through): compile again
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _compiled(flavour: str) -> _CompiledBeside | None:
    # One directory per flavour: an entry is keyed by the template's name, and a flavour compiles it
    # its own way (autoescaping, finalize).
    directory = resource_dir("templates") / "__pycache__" / flavour
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return _CompiledBeside(str(directory))


@cache
def environment(flavour: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(resource_dir("templates")),
        bytecode_cache=_compiled(flavour),
        autoescape=flavour in _FINALIZE,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.do"],
        finalize=_FINALIZE.get(flavour),
    )
    env.filters.update(FILTERS | (SLACK_FILTERS if flavour == "slack" else {}))
    return env


def template(name: str, flavour: str) -> Template:
    return environment(flavour).get_template(name)
