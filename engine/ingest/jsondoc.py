"""Bounded JSON: the one decoder for request bodies. Pure.

`loads` returns plain values (dict, list, str, int, float, bool, None) that every
later step can carry: nesting at most MAX_DEPTH deep (msgpack refuses more than
511 levels, the renderer recurses), integers inside int64 (what msgpack and the
stores hold), no NaN or Infinity (the JSON renderer refuses them), strings that
are Unicode text (a lone surrogate cannot be encoded as UTF-8). Anything else
raises InvalidJson with a message a client can act on.

msgspec parses (it refuses NaN, Infinity and lone surrogates, as JSON does); the
two checks it lacks run on the text, in C-speed bytes operations, once it is known
to be JSON. Depth: drop escaped quotes and backslashes, keep only quotes and
brackets, drop the strings; what is left is the brackets of the structure, and
each pass of removing "()" takes one level off. Integers: looked at only when the
text holds a run of 19 digits, the shortest integer that can leave int64.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

MAX_DEPTH = 32
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
BOM = b"\xef\xbb\xbf"

_decoder = msgspec.json.Decoder()
_CONTAINERS = frozenset({dict, list})
# Digits become 0, quotes and brackets stay, every other byte becomes a blank.
_SHAPE = bytes(ord("0") if ord("0") <= b <= ord("9") else b if b in b'"[]{}' else ord(" ") for b in range(256))
_TO_PARENS = bytes.maketrans(b"[{]}", b"(())")
_LONG_DIGIT_RUN = b"0" * 19
_BYTE = re.compile(r"JSON is malformed: (.*) \(byte (\d+)\)")


class InvalidJson(ValueError):
    """A body that is not JSON this engine takes; `message` says why, `detail` where."""

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


def loads(data: bytes | str) -> Any:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if data[:3] == BOM:
        data = data[3:]
    try:
        value = _decoder.decode(data)
    except RecursionError:
        raise _too_deep() from None
    except msgspec.ValidationError:  # msgspec's only one for untyped input: a number out of range
        raise _too_large() from None
    except msgspec.DecodeError as exc:
        raise _malformed(data, str(exc)) from None
    if type(value) not in _CONTAINERS:
        if type(value) is int and not INT_MIN <= value <= INT_MAX:
            raise _too_large()
        return value
    if b"\\" in data:  # escaped quotes and backslashes are text, not structure
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    shape = data.translate(_SHAPE)
    if _LONG_DIGIT_RUN in shape:
        _check_integers(value)
    _check_depth(shape.translate(None, b" 0"))
    return value


def _too_deep() -> InvalidJson:
    return InvalidJson(f"nesting deeper than {MAX_DEPTH}", {"limit": MAX_DEPTH})


def _too_large() -> InvalidJson:
    return InvalidJson("a number is too large", "integers must fit in 64 bits, other numbers in a double")


def _malformed(data: bytes, text: str) -> InvalidJson:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidJson("body is not UTF-8 text", f"byte {exc.start}")
    found = _BYTE.fullmatch(text)
    if not found:
        return InvalidJson("malformed JSON", text[:1].lower() + text[1:])
    reason, at = found[1], int(found[2])
    if data.startswith((b"NaN", b"Infinity"), at):
        return InvalidJson("NaN and Infinity are not JSON", f"byte {at}")
    return InvalidJson("malformed JSON", f"byte {at}: {reason}")


def _check_depth(marks: bytes) -> None:
    """`marks`: the quotes and brackets of valid JSON, escapes gone, so quotes pair up around strings."""
    structure = marks.replace(b'""', b"")  # strings without brackets in them: the usual case
    if b'"' in structure:
        structure = b"".join(marks.split(b'"')[::2])
    structure = structure.translate(_TO_PARENS)
    for _ in range(MAX_DEPTH):
        structure = structure.replace(b"()", b"")
        if not structure:
            return
    raise _too_deep()


def _check_integers(value: dict | list) -> None:
    stack = [value]
    while stack:
        current = stack.pop()
        for child in current.values() if type(current) is dict else current:
            kind = type(child)
            if kind is int:
                if not INT_MIN <= child <= INT_MAX:
                    raise _too_large()
            elif kind is dict or kind is list:
                stack.append(child)
