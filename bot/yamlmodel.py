"""Validate YAML documents against pydantic models with errors that name the file, the line and the field.

PyYAML's composer keeps the position of every node; pydantic reports the location of every error as a
path of keys and indices. Walking that path through the node tree gives the line to blame. Walking it
through the model gives what may be written there, so each message is said in the words of the person who
wrote the file (`bot.yaml_errors`: `must be a mapping with command and outputs, not 'python train.py'`,
`unknown field; did you mean compare?`), never in pydantic's (`instance of RunSection`).

These documents come from users, some untrusted (a fork's tierbot.yaml is read before anyone approves it),
so the loader is bounded before it builds anything: a size cap, no aliases, a nesting cap. An alias makes
one node reachable from many places: a few hundred bytes of nested aliases are hundreds of millions of
values to whatever walks them (validation, the spec's fingerprint; benchmarks/bounded_input.py), and deep
nesting overflows PyYAML's recursive composer.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bot.errors import SpecInvalid
from bot.units import format_size
from bot.yaml_errors import dotted, explain, line_of

M = TypeVar("M", bound=BaseModel)

MAX_YAML_BYTES = 256 * 1024  # a tierbot.yaml is a few KiB, a tiers file a few dozen
MAX_YAML_DEPTH = 64  # nested collections; a real spec nests about 5 deep


class CoreLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading plain scalars as YAML 1.2's core schema does, as the tools that write
    metrics and params files do (DVC, ruamel, Go's yaml.v3): `1e-3` is a number, `yes`, `on` and `no`
    are words, `017` is seventeen and `12:30` is not 750. PyYAML follows YAML 1.1 on all of them."""


_BOOL, _INT, _FLOAT = (f"tag:yaml.org,2002:{kind}" for kind in ("bool", "int", "float"))
CoreLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
CoreLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
CoreLoader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
CoreLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _core_int(loader: CoreLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    base = {"0o": 8, "0x": 16}.get(text[:2], 10)
    return int(text[2:] if base != 10 else text, base)


CoreLoader.add_constructor(_INT, _core_int)


class _BoundedLoader(CoreLoader):
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
        problems = [
            f"{filename}:{line_of(node, path)}: {dotted(path) or '(top level)'}: {message}"
            for path, message in explain(model, data, node, exc.errors(include_url=False))
        ]
        raise SpecInvalid(filename, list(dict.fromkeys(problems))) from None


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
