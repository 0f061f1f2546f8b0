"""Validate YAML documents against pydantic models with errors that name the file, the line and the field.

PyYAML's composer keeps the position of every node; pydantic reports the location of every error as a
path of keys and indices. Walking that path through the node tree gives the line to blame.
"""

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bot.errors import SpecInvalid

M = TypeVar("M", bound=BaseModel)


def load_model(model: type[M], text: str, filename: str) -> M:
    """Parse `text` as YAML and validate it as `model`; raise SpecInvalid naming file, line and field."""
    data = yaml_mapping(text, filename)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
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
        data = yaml.safe_load(text)
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
