"""Validate YAML documents against pydantic models with errors that name the file, the line and the field.

PyYAML's composer keeps the position of every node; pydantic reports the location of every error as a
path of keys and indices. Walking that path through the node tree gives the line to blame.

These documents come from users, some untrusted (a fork's tierbot.yaml is read before anyone approves it),
so the loader is bounded before it builds anything: a size cap, no aliases, a nesting cap. An alias makes
one node reachable from many places: a few hundred bytes of nested aliases are hundreds of millions of
values to whatever walks them (validation, the spec's fingerprint; benchmarks/bounded_input.py), and deep
nesting overflows PyYAML's recursive composer.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bot.errors import SpecInvalid
from bot.units import format_size

M = TypeVar("M", bound=BaseModel)

MAX_YAML_BYTES = 256 * 1024  # a tierbot.yaml is a few KiB, a tiers file a few dozen
MAX_YAML_DEPTH = 64  # nested collections; a real spec nests about 5 deep


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases and deep nesting as it composes: before any value exists."""

    def __init__(self, text: str, filename: str):
        super().__init__(text)
        self.filename = filename
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._refuse(event, f"aliases (*{event.anchor}) are not allowed: write the value out")
        if self.depth >= MAX_YAML_DEPTH:
            self._refuse(event, f"values nested more than {MAX_YAML_DEPTH} deep are not allowed")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def _refuse(self, event: yaml.Event, problem: str) -> NoReturn:
        raise SpecInvalid(self.filename, [f"{self.filename}:{event.start_mark.line + 1}: {problem}"])


@contextmanager
def _bounded(text: str, filename: str) -> Iterator[_BoundedLoader]:
    """A loader for `text`, once its size is known to be within MAX_YAML_BYTES."""
    size = len(text.encode())
    if size > MAX_YAML_BYTES:
        limit = format_size(MAX_YAML_BYTES)
        said = f"the file is {format_size(size)}; tierbot reads YAML files up to {limit}"
        raise SpecInvalid(filename, [f"{filename}:1: {said}"])
    loader = _BoundedLoader(text, filename)
    try:
        yield loader
    finally:
        loader.dispose()


def load_model(model: type[M], text: str, filename: str) -> M:
    """Parse `text` as YAML and validate it as `model`; raise SpecInvalid naming file, line and field."""
    data = yaml_mapping(text, filename)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        with _bounded(text, filename) as loader:
            node = loader.get_single_node()
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            field = _dotted(loc) or "(top level)"
            line = _line_of(node, loc)
            problems.append(f"{filename}:{line}: {field}: {_message(err)}")
        raise SpecInvalid(filename, problems) from None


def yaml_mapping(text: str, filename: str = "tierbot.yaml") -> dict[str, Any]:
    """The YAML document as a mapping (empty when the document is); SpecInvalid names the line otherwise."""
    try:
        with _bounded(text, filename) as loader:
            data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecInvalid(filename, [f"{filename}:{line}: not valid YAML: {problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecInvalid(filename, [f"{filename}:1: the document must be a mapping of settings"])
    return data


def _message(err: dict[str, Any]) -> str:
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return "unknown field (check the spelling; `tierbot schema` lists the fields)"
    return msg.removeprefix("Value error, ")


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _line_of(node: yaml.Node | None, loc: tuple) -> int:
    """The 1-based line of the deepest node on `loc` that exists in the document."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
