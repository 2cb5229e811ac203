import json

import msgpack
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from engine.ingest.jsondoc import INT_MAX, INT_MIN, MAX_DEPTH, InvalidJson, loads


def nested(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * depth + close * depth).encode()


def nested_objects(depth: int) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"type": "page_view"', "malformed JSON"),
        (b'{"a": 1,}', "malformed JSON"),
        (b"", "malformed JSON"),
        (b'{"a": 1} {"b": 2}', "malformed JSON"),
        (b"\xff\xfe", "body is not UTF-8 text"),
        (b'{"title": "\xc3"}', "body is not UTF-8 text"),
        (b'"\\ud800"', "malformed JSON"),  # a lone surrogate cannot become UTF-8 text again
        (b"[NaN]", "NaN and Infinity are not JSON"),
        (b'{"engaged_ms": Infinity}', "NaN and Infinity are not JSON"),
        (b"[-Infinity]", "NaN and Infinity are not JSON"),
        (b"[1e400]", "a number is too large"),
        (b"[-1e400]", "a number is too large"),
        (b"[" + b"9" * 5000 + b"]", "a number is too large"),
        (str(INT_MAX + 1).encode(), "a number is too large"),
        (f'{{"props": {{"qty": {INT_MIN - 1}}}}}'.encode(), "a number is too large"),
        (f"[{2**64}]".encode(), "a number is too large"),
        (nested(MAX_DEPTH + 1), f"nesting deeper than {MAX_DEPTH}"),
        (nested_objects(MAX_DEPTH + 1), f"nesting deeper than {MAX_DEPTH}"),
        (b'{"events": [' + nested(MAX_DEPTH - 1) + b"]}", f"nesting deeper than {MAX_DEPTH}"),
        (nested(100_000), f"nesting deeper than {MAX_DEPTH}"),
        (b"[" * 100_000, f"nesting deeper than {MAX_DEPTH}"),
    ],
)
def test_refused_with_a_message_that_says_why(body, message):
    with pytest.raises(InvalidJson) as caught:
        loads(body)
    assert caught.value.message == message == str(caught.value)
    assert isinstance(caught.value, ValueError)
    json.dumps({"error": caught.value.message, "detail": caught.value.detail}, allow_nan=False)


def test_malformed_json_says_where():
    with pytest.raises(InvalidJson) as caught:
        loads(b'{"a" 1}')
    assert caught.value.detail == "byte 5: expected ':'"


@pytest.mark.parametrize(
    "body, value",
    [
        (nested(MAX_DEPTH), json.loads(nested(MAX_DEPTH))),
        (nested_objects(MAX_DEPTH - 1), json.loads(nested_objects(MAX_DEPTH - 1))),
        (f"[{INT_MIN}, {INT_MAX}, 0, -0, 1.5e308, 5e-324]".encode(), [INT_MIN, INT_MAX, 0, 0, 1.5e308, 5e-324]),
        (
            b'{"id": "12345678901234567890123", "n": 1.2345678901234567890}',
            {"id": "12345678901234567890123", "n": 1.2345678901234567},
        ),
        (json.dumps(["[[[[" * 50, "{" * 100]).encode(), ["[[[[" * 50, "{" * 100]),  # brackets in strings are text
        (json.dumps({"events": [{"type": "page_view"}] * 500}).encode(), {"events": [{"type": "page_view"}] * 500}),
        (b'\xef\xbb\xbf{"a": "\\ud83d\\ude00 \xc3\xa9"}', {"a": "\U0001f600 é"}),
        ('{"a": "é"}', {"a": "é"}),
        (b"42", 42),
    ],
)
def test_accepted_as_the_standard_library_reads_it(body, value):
    assert loads(body) == value


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@hsettings(max_examples=300, deadline=None)
@given(json_values)
def test_what_it_returns_is_what_was_sent_and_every_later_step_can_carry(value):
    body = json.dumps(value).encode()  # NaN and Infinity as the standard library writes them
    try:
        decoded = loads(body)
    except InvalidJson:
        return
    assert decoded == json.loads(body)
    msgpack.packb(decoded)
    json.dumps(decoded, allow_nan=False).encode()


@hsettings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_give_a_value_or_invalid_json(body):
    try:
        loads(body)
    except InvalidJson as exc:
        assert exc.message


def depth_of(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


tricky_text = st.text(alphabet='[]{}"\\ab:,', max_size=6)  # brackets, quotes and escapes inside strings


@st.composite
def nested_values(draw):
    value = draw(tricky_text | st.integers(-5, 5) | st.just([]) | st.just({}))
    for _ in range(draw(st.integers(0, MAX_DEPTH + 4))):
        sibling = draw(tricky_text)
        shape = draw(st.sampled_from(["list", "dict", "list after", "dict of two"]))
        value = {
            "list": [sibling, value],
            "dict": {sibling: value},
            "list after": [value, sibling],
            "dict of two": {"a": sibling, "b": value, "c": [sibling]},
        }[shape]
    return value


@hsettings(max_examples=400, deadline=None)
@given(nested_values())
def test_depth_is_counted_on_the_structure_not_on_brackets_in_strings(value):
    body = json.dumps(value).encode()
    if depth_of(value) > MAX_DEPTH:
        with pytest.raises(InvalidJson, match="nesting deeper"):
            loads(body)
    else:
        assert loads(body) == value
