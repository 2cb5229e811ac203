"""Declared shapes (msgspec Structs) checked against loaded YAML, every error with its place.

msgspec checks a value against a type and stops at the first error; a marketer
wants every error of a file at once. So `check` converts an entry one field at a
time (and the fields of nested shapes the same way), collecting an Issue per
problem: its path (("then", "hero", "variants", 0, "weight")) names the place and
finds the line, its message says what was expected in words rather than type names.

A field's `Meta(description=...)` is what a marketer reads when that field is wrong:
    priority: Annotated[int, Meta(ge=-10**6, le=10**6, description="a whole number (higher wins)")] = 0
gives "priority: expected a whole number (higher wins)".
"""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any, ClassVar, NamedTuple, TypeVar, Union

import msgspec

from engine.rules.yaml_lines import parts

S = TypeVar("S", bound="Shape")
Path = tuple  # of str | int
WORDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "nothing",
}
_EXPECTED = re.compile(r"^Expected `([^`]+)`(.*)$")
_CODE = re.compile(r"`([^`]*)`")  # `*`: a key may be empty


class Shape(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A part of a rule file: `what` names it ("unknown rule field ..."), `expects` says what it must be."""

    what: ClassVar[str] = "field"
    expects: ClassVar[str] = "a mapping"


class Issue(NamedTuple):
    path: Path  # where, inside the checked value
    message: str
    line_path: Path | None = None  # where to find the line, when not at `path` (an unknown key)


def _words(names: str) -> str:
    return " or ".join(WORDS.get(t.strip(), t.strip()) for t in names.split("|"))


def plain(message: str) -> str:
    """msgspec's message in a marketer's words: "Expected `int`, got `str`" -> "expected a whole number, got text"."""
    if message.startswith("Object contains unknown field"):
        return "unknown field " + repr(_CODE.search(message).group(1))
    if message.startswith("Object missing required field"):
        return "missing " + _CODE.search(message).group(1)
    if message.startswith("Invalid enum value"):
        return "unknown value " + message[len("Invalid enum value ") :]
    found = _EXPECTED.match(message)
    if found:
        rest = _CODE.sub(lambda m: _words(m.group(1)), found.group(2))
        return f"expected {_words(found.group(1))}{rest}"
    return message[:1].lower() + message[1:]


def explain(exc: msgspec.ValidationError) -> tuple[Path, str]:
    """(path inside the converted value, message) of a msgspec error."""
    message, _, where = str(exc).partition(" - at `")
    path = parts(where.rstrip("`"))
    if "..." in path:  # msgspec does not name a mapping's keys: the mapping is the place
        path = path[: path.index("...")]
    return tuple(path), plain(message)


def description(annotation: Any) -> str | None:
    """The Meta description of an annotated type, looking through `X | None` and `X | UNSET`."""
    if typing.get_origin(annotation) is Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, msgspec.Meta) and meta.description:
                return meta.description
    if typing.get_origin(annotation) in (Union, types.UnionType):
        found = [description(arg) for arg in typing.get_args(annotation)]
        return next((d for d in found if d), None)
    return None


def _shape_of(annotation: Any) -> type[Shape] | None:
    """The Shape a field holds (directly or as `Shape | None`), to check field by field."""
    if isinstance(annotation, type) and issubclass(annotation, Shape):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        shapes = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, Shape)]
        return shapes[0] if len(shapes) == 1 else None
    return None


def check(raw: Any, kind: type[S], errors: list[Issue], at: Path = ()) -> S | None:
    """`raw` as a `kind`, or None; every problem found is appended to `errors`."""
    if not isinstance(raw, dict):
        errors.append(Issue(at, f"expected {kind.expects}"))
        return None
    fields = {f.encode_name: f for f in msgspec.structs.fields(kind)}
    values, ok = {}, True
    for key, value in raw.items():
        info = fields.get(key) if isinstance(key, str) else None
        if info is None:
            errors.append(
                Issue(at, f"unknown {kind.what} field {str(key)[:40]!r}; expected {', '.join(fields)}", at + (key,))
            )
            ok = False
            continue
        nested = _shape_of(info.type)
        if nested is not None and isinstance(value, dict):
            values[info.name] = got = check(value, nested, errors, at + (key,))
            ok = ok and got is not None
            continue
        try:
            values[info.name] = msgspec.convert(value, info.type)
        except msgspec.ValidationError as exc:
            inside, message = explain(exc)
            said = description(info.type)
            errors.append(Issue(at + (key,) + inside, f"expected {said}" if said and not inside else message))
            ok = False
    for key, info in fields.items():
        if info.required and key not in raw:
            said = description(info.type)
            errors.append(Issue(at, f"missing {key}" + (f": {said}" if said else "")))
            ok = False
    if not ok:
        return None
    try:
        return kind(**values)
    except (ValueError, TypeError) as exc:  # the shape's own __post_init__ checks
        errors.append(Issue(at, str(exc)))
        return None


def dotted(path: Path) -> str:
    """["then", "hero", "variants", 0] -> "then.hero.variants[0]"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
