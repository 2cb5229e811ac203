"""The collector's trust rules (pure): who may send which event, and the fields only the server sets."""

import pytest

from engine.ingest.collector import RequestInfo, collect
from engine.ingest.trust import SENSITIVE, scrubbed, user_hash, verified_hash

NOW = 1_795_400_000_000
MINE = "6f1c2a4e-8b3d-4c7a-9e21-0a5b6c7d8e9f"
THEIRS = "0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70"
SECRET = "s3cret"


def info(**kw) -> RequestInfo:
    return RequestInfo(
        **{"received_at": NOW, "visitor_id": MINE, "user_agent": "UA", "ip": None, "identity_secret": SECRET, **kw}
    )


def run(events, **kw):
    return collect(events, info(**kw), max_events=500, new_id=lambda: "id")


def test_the_user_hash_is_hex_hmac_sha256_of_the_user_id():
    # echo -n ada@example.com | openssl dgst -sha256 -hmac s3cret
    assert user_hash(SECRET, "ada@example.com") == "02499ca50786c7344cb6060012cb26cef23df47a15e968f558eed4652b0a0330"
    good = user_hash(SECRET, "ada")
    assert verified_hash(SECRET, "ada", good) and verified_hash(SECRET, "ada", good.upper())
    for wrong in (None, "", good[:-1], good[:-1] + "0" if good[-1] != "0" else good[:-1] + "1", "é" * 64, 12):
        assert not verified_hash(SECRET, "ada", wrong)
    assert not verified_hash(None, "ada", good) and not verified_hash("", "ada", good)


def test_identify_is_verified_by_the_hash_or_a_key_and_the_hash_is_not_kept():
    events = [
        {"type": "identify", "user_id": "ada", "props": {"user_hash": user_hash(SECRET, "ada")}},
        {"type": "identify", "user_id": "ada", "props": {"user_hash": user_hash("other", "ada")}},
        {"type": "identify", "user_id": "ada"},
    ]
    batch = run(events, from_cookie=True)
    assert [e["verified"] for e in batch.accepted] == [True, False, False]
    assert all("user_hash" not in e["props"] for e in batch.accepted)
    assert run(events[2:], trusted=True).accepted[0]["verified"] is True
    assert run(events[:1], identity_secret=None, from_cookie=True).accepted[0]["verified"] is False


def test_server_fields_cannot_be_forged_by_the_client():
    forged = {
        "type": "identify",
        "user_id": "ada",
        "verified": True,
        "trusted": True,
        "bot": False,
        "props": {"verified": True, "trusted": True},
    }
    event = run([forged], from_cookie=True, bot=True).accepted[0]
    assert (event["verified"], event["trusted"], event["bot"]) == (False, False, True)
    assert event["props"] == {"verified": True, "trusted": True, "bot": False}  # the client's props, read by nothing
    keyed = run([forged], trusted=True, bot=True).accepted[0]
    assert (keyed["verified"], keyed["trusted"], keyed["bot"]) == (True, True, False)


def test_with_a_cookie_only_the_cookies_visitor_and_403_when_nothing_else_came():
    batch = run(
        [{"type": "page_view"}, {"type": "page_view", "visitor_id": THEIRS}, {"type": "page_view", "visitor_id": MINE}],
        from_cookie=True,
    )
    assert [e["visitor_id"] for e in batch.accepted] == [MINE, MINE]
    assert batch.rejected == [
        {"index": 1, "error": "visitor_id: differs from the cookie's (a visitor sends only their own events)"}
    ]
    assert batch.denied == {1}


@pytest.mark.parametrize("kind", sorted(SENSITIVE))
def test_without_a_cookie_a_named_visitor_gets_no_sensitive_event(kind):
    props = {
        "consent": {"consent": {"analytics": False}},
        "preference": {"preferences": {}},
        "identify": {},
        "purchase": {"order": {"id": "o", "items": [{"id": "a"}]}},
    }[kind]
    event = {"type": kind, "visitor_id": THEIRS, "user_id": "u", "props": props}
    batch = run([event, {"type": "page_view", "visitor_id": THEIRS}])  # no cookie: MINE was just issued
    assert batch.denied == {0} and batch.rejected[0]["error"].startswith("visitor_id: a ")
    assert [e["type"] for e in batch.accepted] == ["page_view"]
    assert run([{**event, "visitor_id": MINE}]).accepted  # the id just issued is the sender's own
    assert run([event], trusted=True).accepted  # a back end may


def test_visitor_ids_must_be_issued_by_the_engine():
    for bad in ("12345", "ada@example.com", MINE.upper(), MINE[:-1] + "g", "6f1c2a4e-8b3d-1c7a-9e21-0a5b6c7d8e9f"):
        batch = run([{"type": "page_view", "visitor_id": bad}], trusted=True)
        assert batch.rejected[0]["error"] == "visitor_id: expected a visitor id issued by the engine (a UUID)"
        assert batch.denied == set()
    assert run([{"type": "page_view", "visitor_id": MINE.replace("-", "")}], trusted=True).accepted


def test_rejected_input_keeps_no_user_hash():
    raw = {"type": "identify", "user_hash": "a" * 64, "props": {"user_hash": "b" * 64, "traits": {"x": 1}}}
    assert scrubbed(raw) == {"type": "identify", "props": {"traits": {"x": 1}}}
    assert scrubbed([1]) == [1] and raw["props"]["user_hash"] == "b" * 64
