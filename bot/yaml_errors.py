"""Errors in a YAML document, in the words of the person who wrote it (`bot.yamlmodel` loads it).

Walking pydantic's error location through the model gives what may be written there, so each message
is rebuilt from it (`must be a mapping with command and outputs, not 'python train.py'`, `unknown
field; did you mean compare?`), never pydantic's own (`instance of RunSection`, `max_regression.float`);
walking it through PyYAML's node tree gives the line to blame.
"""

import difflib
import re
from collections.abc import Iterator
from types import UnionType
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

Location = tuple[str | int, ...]  # keys and indices from the document's root


def explain(
    model: type[BaseModel], data: Any, node: yaml.Node | None, errors: list[Any]
) -> Iterator[tuple[Location, str]]:
    """(field path, what is wrong in the user's words) for each of pydantic's errors.

    Pydantic's own messages name its types (`instance of RunSection`) and put the branch of a union it
    tried into the location (`max_regression.float`), one error a branch. The model knows what the user
    may write at each place, so the message is rebuilt from it: the branches of a union are one place and
    one message, and a misspelt key is compared with the keys that place allows.
    """
    places = [(_place(model, tuple(err["loc"])), err) for err in errors]
    meant = {
        place.path[:-1] + (key,)
        for place, err in places
        if err["type"] == "extra_forbidden" and (key := _meant(str(place.path[-1]), place.owner))
    }
    for place, err in places:
        if err["type"] == "missing" and place.path in meant:
            continue  # the unknown key's message says where it belongs: `runn:` for `run:`
        yield place.path, _message(place, err, data, _node_at(node, place.path))


class _Place(NamedTuple):
    path: Location  # the location in the document, without the names of union branches
    expects: Any  # the type the user may write there; None when the model does not say
    owner: type[BaseModel] | None  # the model whose field the last key names, if a model's
    field: FieldInfo | None  # that field
    union: bool  # the location stopped at a union: every branch failed


def _place(model: type[BaseModel], loc: tuple) -> _Place:
    """Walk `loc` through the model's annotations, to learn what the user may write where it ends."""
    expects: Any = model
    owner: type[BaseModel] | None = None
    field: FieldInfo | None = None
    for i, part in enumerate(loc):
        expects = _unwrap(expects)
        if len(_members(expects)) > 1:  # the rest of `loc` is a branch pydantic tried, not the user's
            return _Place(loc[:i], expects, owner, field, union=True)
        owner, field = None, None
        if _is_model(expects):
            owner = expects
            field = _field(expects, part)
            expects = field.annotation if field else None
        elif get_origin(expects) in (list, tuple, set, frozenset):
            expects = (get_args(expects) or (None,))[0]
        elif get_origin(expects) is dict:
            expects = (get_args(expects) or (None, None))[1]
        else:
            expects = None
    if field is not None:  # the place is a field's own value: what may be written there, more than kept
        expects = _input_type(field)
    return _Place(loc, _unwrap(expects), owner, field, union=False)


def _message(place: _Place, err: Any, data: Any, node: yaml.Node | None) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    value = _value_at(data, place.path) if place.union else err.get("input")
    got = _describe(value, node)
    if kind == "extra_forbidden":
        return _unknown_key(str(place.path[-1]), place.owner)
    if kind == "missing":
        return "required, but missing"
    if kind in ("value_error", "assertion_error"):
        return err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in _BOUNDS:
        words, name = _BOUNDS[kind]
        limit = ctx[name]
        return f"must be {words} {int(limit) if limit == int(limit) else limit}, not {got}"
    if kind in _SIZES:
        words, name, unit = _SIZES[kind]
        if ctx[name] == 1 and words == "at least":
            return "must not be empty"
        return f"must have {words} {ctx[name]} {unit}"
    if kind == "string_pattern_mismatch":
        return f"must {_pattern_in_words(ctx['pattern'])}, not {got}"
    wrong_kind = kind.endswith(("_type", "_parsing")) or kind in ("int_from_float", "literal_error")
    if place.expects is None or not (place.union or wrong_kind):
        return err["msg"]  # pydantic's words, for errors that these models cannot make today
    examples = place.field.examples if place.field else None
    such = f" (examples: {', '.join(map(repr, examples))})" if examples else ""
    return f"must be {expected(place.expects)}{such}, not {got}{_hint(place.expects, value, node)}"


_BOUNDS = {
    "greater_than": ("more than", "gt"),
    "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("at most", "le"),
}
_SIZES = {
    "too_short": ("at least", "min_length", "items"),
    "too_long": ("at most", "max_length", "items"),
    "string_too_short": ("at least", "min_length", "characters"),
    "string_too_long": ("at most", "max_length", "characters"),
}


def _unknown_key(key: str, owner: type[BaseModel] | None) -> str:
    meant = _meant(key, owner)
    field = _field(owner, meant) if meant else None
    if field and key in _keys(_model_in(field)):
        items = "[]" if get_origin(_unwrap(field.annotation)) is list else ""
        return f"unknown field here; it belongs under {meant} ({meant}{items}.{key})"
    if meant:
        return f"unknown field; did you mean {meant}?"
    keys = _keys(owner)
    return f"unknown field; the fields here are {_listing(keys, 'and')}" if keys else "unknown field"


def _meant(key: str, owner: type[BaseModel] | None) -> str | None:
    """The field of `owner` that an unknown key stands for: the one it belongs under (`tables:` written
    beside `compare:` rather than under it, which is no misspelling of `tiers:`), else the closest."""
    keys = _keys(owner)
    under = next((parent for parent in keys if key in _keys(_model_in(_field(owner, parent)))), None)
    return under or _closest(key, keys)


def _closest(word: object, choices: list[str]) -> str | None:
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def _hint(expects: Any, value: Any, node: yaml.Node | None) -> str:
    """What to write instead, when the mistake is a usual one."""
    written = node.value if isinstance(node, yaml.ScalarNode) else None
    if isinstance(written, str) and isinstance(value, bool | int | float) and str in _members(expects):
        return f" (write '{written}' in quotes)"
    if get_origin(expects) is Literal and isinstance(value, str):
        close = _closest(value, [str(choice) for choice in get_args(expects)])
        return f"; did you mean {close!r}?" if close else ""
    texts = any(get_origin(m) is list and get_args(m) == (str,) for m in _members(expects))
    if texts and isinstance(value, str):
        return f" (a list of one is written [{value!r}])"
    return ""


def expected(expects: Any) -> str:
    """What `expects` accepts, in a YAML writer's words."""
    members = _members(expects)
    if len(members) > 1:
        return _listing(list(dict.fromkeys(expected(m) for m in members)), "or")
    expects = members[0]
    origin = get_origin(expects) or expects
    if origin is Literal:
        return _listing([repr(choice) for choice in get_args(expects)], "or")
    if origin in (list, tuple, set, frozenset):
        item = _unwrap((get_args(expects) or (None,))[0])
        if _is_model(item):
            return f"a list of mappings, each with {_fields_of(item)}"
        noun = {str: "text", int: "whole numbers", float: "numbers"}.get(item)
        return f"a list of {noun}" if noun else "a list"
    if origin is dict:
        names = _is_model(_unwrap((get_args(expects) or (None, None))[1]))
        return "a mapping of names to their settings" if names else "a mapping"
    if _is_model(expects):
        return f"a mapping with {_fields_of(expects)}"
    return {str: "text", bool: "true or false", int: "a whole number", float: "a number"}.get(
        expects, "something else"
    )


def _fields_of(model: type[BaseModel]) -> str:
    keys = _keys(model)
    return _listing(keys if len(keys) <= 6 else [*keys[:5], f"{len(keys) - 5} more"], "and")


def _describe(value: Any, node: yaml.Node | None) -> str:
    """The user's value as they wrote it."""
    if value is None:
        return "empty"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    written = node.value if isinstance(node, yaml.ScalarNode) else None
    if isinstance(value, int | float):
        return written if isinstance(written, str) else repr(value)
    text = str(value)
    return repr(text if len(text) <= 40 else text[:39] + "…")


_CLASS = re.compile(r"\[((?:[^\]\\]|\\.)+)\]")
_RANGES = {"A-Za-z": "letter", "a-z": "lower-case letter", "A-Z": "upper-case letter", "0-9": "digit"}


def _pattern_in_words(pattern: str) -> str:
    """`^[a-z0-9][a-z0-9_-]*$`, the shape of every name pattern here, as a sentence; others as they are."""
    shape = re.fullmatch(r"\^(\[[^\]]+\])(\[[^\]]+\])\*\$", pattern)
    if not shape:
        return f"match the pattern {pattern}"
    first, rest = (_class_in_words(_CLASS.fullmatch(part).group(1)) for part in shape.groups())
    starts = [f"a {word}" for word in first[0]] + first[1]
    contains = [f"{word}s" for word in rest[0]] + rest[1]
    return f"start with {_listing(starts, 'or')} and contain only {_listing(contains, 'and')}"


def _class_in_words(members: str) -> tuple[list[str], list[str]]:
    """A character class as the kinds of character it spans and the characters it lists: `A-Za-z0-9_`
    is (['letter', 'digit'], ["'_'"])."""
    kinds = []
    for span, kind in _RANGES.items():
        if span in members:
            members = members.replace(span, "", 1)
            kinds.append(kind)
    return kinds, [repr(char) for char in members.replace("\\", "")]


def _listing(words: list[str], last: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _unwrap(expects: Any) -> Any:
    """The type without Annotated's metadata and without None (an empty value is never the mistake)."""
    while get_origin(expects) is Annotated:
        expects = get_args(expects)[0]
    members = _members(expects)
    return members[0] if len(members) == 1 else expects


def _members(expects: Any) -> list[Any]:
    if get_origin(expects) in (Union, UnionType):
        return [_unwrap(m) for m in get_args(expects) if m is not type(None)]
    return [expects]


def _is_model(expects: Any) -> bool:
    return isinstance(expects, type) and issubclass(expects, BaseModel)


def _field(model: type[BaseModel] | None, key: object) -> FieldInfo | None:
    if model is None:
        return None
    fields = model.model_fields
    return next((f for name, f in fields.items() if key in (name, f.alias or name)), None)


def _keys(model: type[BaseModel] | None) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()] if model else []


def _model_in(field: FieldInfo | None) -> type[BaseModel] | None:
    """The model a field holds, alone or as the items of a list."""
    if field is None:
        return None
    expects = _unwrap(field.annotation)
    if get_origin(expects) is list:
        expects = _unwrap(get_args(expects)[0])
    return expects if _is_model(expects) else None


def _input_type(field: FieldInfo) -> Any:
    """What the user may write for the field: a before-validator's declared input, else the annotation."""
    for meta in field.metadata:
        declared = getattr(meta, "json_schema_input_type", PydanticUndefined)
        if isinstance(meta, BeforeValidator) and declared is not PydanticUndefined and declared is not Any:
            return declared
    return field.annotation


def _value_at(data: Any, path: Location) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def line_of(node: yaml.Node | None, loc: tuple) -> int:
    """The 1-based line of the deepest node on `loc` that exists in the document."""
    return _walk(node, loc)[0]


def _node_at(node: yaml.Node | None, loc: tuple) -> yaml.Node | None:
    """The node at `loc`, None when the document has none there."""
    return _walk(node, loc)[1]


def _walk(node: yaml.Node | None, loc: tuple) -> tuple[int, yaml.Node | None]:
    if node is None:
        return 1, None
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
            return line, None
        node = child
    return line, node


def in_words(model: type[BaseModel], data: Any, exc: ValidationError) -> list[str]:
    """Each of a validation's errors as `path: what is wrong`, in the user's words, for values that come
    from no YAML file of their own (a tier's backend_options, command-line options)."""
    explained = explain(model, data, None, exc.errors(include_url=False))
    return list(dict.fromkeys(f"{dotted(path)}: {message}" for path, message in explained))
