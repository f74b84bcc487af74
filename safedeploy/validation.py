"""YAML data against the schema: the Document, or every problem at its dotted key, in words.

msgspec stops at the first problem and says where in its own notation (`$.probes[0]`, and
`[...]` for a mapping's key); this finds the key, words the problem for the YAML, and checks
again without it, so a user fixes every problem in one pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from enum import Enum
from types import UnionType
from typing import (
    Annotated,
    Any,
    Literal,
    NamedTuple,
    Union,
    get_args,
    get_origin,
)

import msgspec

from safedeploy.schema import SHORTHANDS, Document, Invalid, kind
from safedeploy.yaml_lines import join

_PLAIN_TYPES = {  # msgspec's type errors, said plainly: (what, hint); "got ..." is added
    "str": ("expected text", 'quote it, e.g. "8080", so YAML keeps it as text'),
    "int": ("expected a whole number", "write a whole number, like 3 or 8080"),
    "float": ("expected a number", "write a number, e.g. 1.5"),
    "bool": ("expected true or false", "write true or false, unquoted"),
    "array": ("expected a list", "write a list: [a, b], or one `- item` per line"),
    "object": ("expected a mapping", "write `key: value` lines indented under it"),
}
_ANY_HINT = "`safedeploy schema` lists every key and the values it takes"
# msgspec's messages: "<what> - at `$.probes[0].expect`", the path left out at the top level.
# Patterns, not compiled here: `re` compiles them when a manifest first has a problem.
_AT = r"(?s)(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?"
_PART = r"\.([^.\[]+)|\[(\d+|\.\.\.)\]"
_FIELD = r"Object (?P<how>contains unknown|missing required) field `(?P<name>[^`]+)`"
_EXPECTED = r"Expected `(?P<type>[a-z]+)[^`]*`(?P<rest>.*)"


class Problem(NamedTuple):
    """One thing wrong in a manifest, at a dotted key, with what to do."""

    key: str  # dotted
    what: str
    hint: str | None
    unknown_key: bool = False


def check(data: dict[str, Any]) -> Document | list[Problem]:
    """The Document, or every problem; `data` itself is left as it is.

    YAML's shorthands are read first, then msgspec validates the rest, not strictly: a number
    may come as text a ${VAR} filled (`port: ${PORT}`); text never comes from a number, nor a
    number from true/false.
    """
    data = _copy(data)
    problems: list[Problem] = []
    for pattern, (read, _) in SHORTHANDS.items():
        for key, holder, name in _places(data, pattern.split(".")):
            try:
                holder[name] = read(holder[name])
            except Invalid as exc:
                problems.append(Problem(key, exc.what, exc.hint))
                del holder[name]
    cut: set[str] = set()
    while True:
        try:
            document = msgspec.convert(data, Document, strict=False)
        except msgspec.ValidationError as exc:
            problem = _problem(exc, data)
            if problem.key in cut:  # a required key, missing because it was cut: reported
                return problems
            problems.append(problem)
            gone = _cut(data, problem.key)
            if gone is None:
                return problems
            cut.add(gone)
        else:
            return problems or document


def _problem(exc: msgspec.ValidationError, data: dict[str, Any]) -> Problem:
    """One msgspec error in the words of the YAML, at the dotted key it is about.

    msgspec's own words may hold the value (an enum's); only their shape is used here.
    """
    match = re.fullmatch(_AT, str(exc))
    assert match is not None  # every string matches
    parts = _parts(data, match["path"] or "")
    if isinstance(exc.__cause__, Invalid):  # raised by a Struct's __post_init__
        invalid = exc.__cause__
        return Problem(".".join([*parts, invalid.key or ""]).strip("."), invalid.what, invalid.hint)
    named = re.fullmatch(_FIELD, match["what"])
    if named:
        key, name = join(".".join(parts), named["name"]), named["name"]
        if named["how"] == "contains unknown":
            return Problem(key, *_unknown_key(key), unknown_key=True)
        return Problem(key, f"missing required key `{name}`", f"add `{name}:`")
    key, value = ".".join(parts), _value_at(data, parts)
    if match["what"].startswith("Invalid enum value"):
        return Problem(key, f"expected {_choices(_type_at(parts))}", _ANY_HINT)
    expected = re.fullmatch(_EXPECTED, match["what"])
    if expected is None:
        return Problem(key, "not a value it takes", _ANY_HINT)
    if expected["rest"].startswith(", got") and parts[0] == "env" and len(parts) == 2:
        name = parts[1]
        if value is None:
            what = "has no value; env values must be strings"
            return Problem(key, what, f'write {name}: "" for an empty value, or delete the line')
        what = f"YAML read {kind(value)} here; env values must be strings"
        return Problem(key, what, f'quote the value: {name}: "..." keeps it as written')
    what, hint = _PLAIN_TYPES.get(expected["type"], (f"expected {expected['type']}", _ANY_HINT))
    if expected["rest"].startswith(", got"):
        return Problem(key, f"{what}, got {kind(value)}", hint)
    return Problem(key, f"{what}{expected['rest']}", _ANY_HINT)  # a bound: "... >= 1"


def _unknown_key(key: str) -> tuple[str, str]:
    """What and hint for an unknown key, suggesting the closest known key for a typo."""
    parent, _, name = key.rpartition(".")
    known = _known_keys(parent)
    from difflib import get_close_matches  # only when there is an error to word

    close = get_close_matches(name, known, n=1)
    hint = f"did you mean `{close[0]}`?" if close else f"known keys here: {', '.join(known)}"
    return f"unknown key `{name}`", hint


def _copy(value: Any) -> Any:
    """Mappings and lists copied all the way down, so checking one cannot change another."""
    if isinstance(value, dict):
        return {name: _copy(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def _places(value: Any, parts: list[str], key: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, holder, name) of each value at a SHORTHANDS path that `value` has."""
    head, *rest = parts
    names: Iterable[Any] = ()
    if head == "*" and isinstance(value, list):
        names = range(len(value))
    elif head == "*" and isinstance(value, dict):
        names = list(value)
    elif isinstance(value, dict) and head in value:
        names = [head]
    for name in names:
        if rest:
            yield from _places(value[name], rest, join(key, name))
        else:
            yield join(key, name), value, name


def _cut(data: dict[str, Any], key: str) -> str | None:
    """Delete the deepest mapping key on the way to `key`, and say which (None: nothing to cut).

    A list item is never deleted: the items after it would take its place and its lines.
    """
    holder: dict[str, Any] | None = None
    value: Any = data
    at = gone = ""
    for part in key.split("."):
        if isinstance(value, dict) and part in value:
            holder, gone = value, join(at, part)
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            break
        at = join(at, part)
    if holder is None:
        return None
    del holder[gone.rpartition(".")[2]]
    return gone


def _parts(data: dict[str, Any], path: str) -> list[str]:
    """The keys of a msgspec path (`.probes[0].headers[...]`), naming the mapping key it hides."""
    parts: list[str] = []
    value: Any = data
    for name, index in re.findall(_PART, path):
        part = name or index
        if part == "...":  # the first entry that fails alone is the one msgspec stopped at
            value_type = _type_at([*parts, "*"])
            part = next((k for k, v in value.items() if not _fits(v, value_type)), part)
        parts.append(part)
        value = _value_at(value, [part])
    return parts


def _fits(value: Any, value_type: Any) -> bool:
    try:
        msgspec.convert(value, value_type, strict=False)
    except msgspec.ValidationError:
        return False
    return True


def _value_at(value: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            value = value.get(part) if isinstance(value, dict) else None
    return value


def _type_at(parts: list[str]) -> Any:
    """The type a dotted key holds, from Document down; None where the manifest has no such key."""
    held: Any = Document
    for part in parts:
        held = _bare(held)
        if isinstance(held, type) and issubclass(held, msgspec.Struct):
            held = {f.encode_name: f.type for f in msgspec.structs.fields(held)}.get(part)
        else:  # list[X] and dict[str, X] hold X
            held = (get_args(held) or (None,))[-1]
        if held is None:
            return None
    return _bare(held)


def _bare(held: Any) -> Any:
    """X, from `Annotated[X, ...]` and from `X | None`."""
    if get_origin(held) is Annotated:
        return _bare(get_args(held)[0])
    if get_origin(held) in (Union, UnionType):
        return _bare(next(arg for arg in get_args(held) if arg is not type(None)))
    return held


def _choices(held: Any) -> str:
    """'a', 'b' or 'c': the values a Literal or an Enum allows."""
    if isinstance(held, type) and issubclass(held, Enum):
        values = [member.value for member in held]
    else:
        values = list(get_args(held)) if get_origin(held) is Literal else []
    quoted = [repr(value) for value in values]
    return " or ".join([", ".join(quoted[:-1]), quoted[-1]]) if len(quoted) > 1 else "".join(quoted)


def _known_keys(parent: str) -> list[str]:
    """The YAML keys allowed under a dotted key, for typo suggestions."""
    held = _type_at(parent.split(".") if parent else [])
    if not (isinstance(held, type) and issubclass(held, msgspec.Struct)):
        return []
    keys = [f.encode_name for f in msgspec.structs.fields(held)]
    return [*keys, "environments"] if held is Document else keys
