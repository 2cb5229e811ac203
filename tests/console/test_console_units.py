"""The console's pure parts: the chart's bars, recent events, refusals, rule file states, sessions, the banner."""

from pathlib import Path

from starlette.requests import Request

from engine.console.session import COOKIE, Sessions, key_mark
from engine.console.views import file_states, flow_bars, flow_totals
from engine.embedded import console_line
from engine.ingest.flow import refusals
from engine.rules.ruleset import build_ruleset
from engine.rules.served import totals
from engine.settings import ApiKey, Settings
from engine.stream.recent import entry, merged, summary


def test_bars_scale_to_the_busiest_minute_and_stack_rejected_on_accepted():
    bars, peak = flow_bars(
        [(1, {"accepted": 30, "rejected": 10}), (2, {}), (3, {"accepted": 10})], width=300, height=100
    )
    assert peak == 40 and len(bars) == 3
    assert bars[0].accepted_h == 75.0 and bars[0].rejected_h == 25.0 and bars[1].accepted_h == 0
    assert bars[2].x == 200.0 and "10 accepted, 0 rejected" in bars[2].label
    assert flow_bars([], 100, 100) == ([], 1)


def test_totals_and_the_bot_share():
    minutes = [
        (1, {"accepted": 100, "bot": 25, "rejected": 5}),
        (2, {"accepted": 60, "rejected": 0}),
        (3, {"accepted": 1}),
    ]
    shown = flow_totals(minutes)
    assert shown["accepted"] == 161 and shown["rejected"] == 5 and shown["bots"] == 25
    assert abs(shown["bot_share"] - 25 / 161) < 1e-9 and shown["per_second"] == 1.0  # the last whole minute


def test_recent_events_skip_ids_already_kept_and_stay_bounded():
    old = [{"id": "b", "ts": 2}, {"id": "a", "ts": 1}]
    new = [{"id": "a", "ts": 1}, {"id": "c", "ts": 3}, {"id": "d", "ts": 4}, {"id": "d", "ts": 4}]
    assert [e["id"] for e in merged(old, new, kept=3)] == ["d", "c", "b"]


def test_an_event_summary_names_its_product_or_page_never_its_ids():
    event = {
        "event_id": "e1",
        "visitor_id": "v",
        "type": "product_view",
        "ts": 5,
        "props": {"product": {"id": "shoe-1", "category": "shoes"}},
    }
    assert entry(event) == {"id": "e1", "ts": 5, "type": "product_view", "what": "shoe-1 (shoes)"}
    assert summary({"type": "page_view", "url": "/sale", "title": "Sale"}) == "Sale"
    assert summary({"type": "x", "props": "not an object"}) == ""


def test_a_refusal_keeps_the_type_and_reason_only():
    kept = refusals(
        [{"type": "page_view", "visitor_id": "v"}, "junk"],
        [{"index": 0, "error": "url: bad"}, {"index": 1, "error": "expected an object"}],
        7,
    )
    assert kept == [
        {"at": 7, "type": "page_view", "error": "url: bad"},
        {"at": 7, "type": None, "error": "expected an object"},
    ]


def test_served_counts_add_up_per_slot_rule_and_variant():
    minutes = [(1, {"hero|r1|a": 2, "hero|(default)|welcome": 1}), (2, {"hero|r1|a": 3, "hero|r1|b": 1})]
    assert totals(minutes) == {"hero": {"r1": {"a": 5, "b": 1}, "(default)": {"welcome": 1}}}


def test_a_file_with_errors_is_shown_refused_with_file_line_and_rule_id(tmp_path: Path):
    (tmp_path / "good.yaml").write_text("slots:\n  hero:\n    default: a\n    content:\n      a: {html: A}\n")
    (tmp_path / "bad.yaml").write_text(
        "rules:\n  - id: broken\n    when: {nonsense: 1}\n    then: {hero: {variants: [{content: a}]}}\n"
    )
    sources = [(p.name, p.read_bytes()) for p in sorted(tmp_path.iterdir())]
    rs = build_ruleset(sources, 0, half_life_days=14)
    states = {s["file"]: s for s in file_states(tmp_path, rs, rs.problems)}
    assert states["good.yaml"]["state"] == "live"
    bad = states["bad.yaml"]
    assert bad["state"] == "errors" and bad["errors"][0].line >= 2 and bad["errors"][0].rule_id == "broken"


def _request(cookie: str | None) -> Request:
    headers = [(b"cookie", f"{COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/console/", "headers": headers, "query_string": b""})


def test_a_session_names_its_key_by_a_mark_and_any_change_to_it_signs_nobody_in():
    keys = (ApiKey("reader", frozenset({"read"})), ApiKey("admin"))
    sessions = Sessions("s" * 32, keys)
    cookie = sessions.serializer.dumps(sessions.fresh(keys[1]))
    assert "admin" not in cookie and sessions.fresh(keys[1])["key"] == key_mark("s" * 32, keys[1])
    assert sessions.key_of(sessions.read(_request(cookie))) is keys[1]
    payload, _, signature = cookie.rpartition(".")
    forged = (
        payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    )  # not the last character: padding bits
    assert sessions.read(_request(forged)) == {}
    other = Sessions("t" * 32, keys)
    assert other.key_of(other.read(_request(cookie))) is None
    assert sessions.key_of({"key": key_mark("s" * 32, ApiKey("removed"))}) is None


def test_the_banner_shows_the_key_made_for_the_run_and_never_a_configured_one():
    made = Settings(api_keys=("dev-abc",))
    assert (
        console_line("http://h:1", made, True) == "  console  http://h:1/console/  (sign in with the api key dev-abc)"
    )
    assert "dev-abc" not in console_line("http://h:1", made, False)


def test_a_sparkline_scales_to_the_largest_size_and_skips_steps_without_a_sample():
    from engine.console.views import size_series, sparkline

    history = [(0, {"a": 2}), (600, {}), (1200, {"a": 4})]
    assert size_series(history, "a") == [2, None, 4]
    assert sparkline([2, None, 4], width=100, height=12) == "0.0,6.0 100.0,1.0"
    assert sparkline([None, None]) == ""
    assert sparkline([None, 3, None], width=100, height=12) == "42.0,1.0 50.0,1.0"
    assert sparkline([None, None, 3], width=100, height=12) == "92.0,1.0 100.0,1.0"
    assert size_series(history, "a", now_size=7) == [2, None, 7]


async def test_segment_sizes_are_kept_per_step_and_read_back_in_order(redis_client):
    import uuid

    from engine.profiles.segment_sizes import SAMPLE_S, SegmentSizes

    sizes = SegmentSizes(redis_client, f"t{uuid.uuid4().hex[:8]}")
    now = 1_800_000_000
    await sizes.record({"shoe-lovers": 3}, now - SAMPLE_S)
    await sizes.record({"shoe-lovers": 5, "buyers": 1}, now)
    history = await sizes.history(1, now)
    assert len(history) == 3600 // SAMPLE_S and history[-1][1] == {"shoe-lovers": 5, "buyers": 1}
    assert history[-2][1] == {"shoe-lovers": 3} and history[0][1] == {}
    assert 0 < await redis_client.ttl(sizes.key(now // SAMPLE_S)) <= 48 * 3600


def test_without_a_console_secret_the_data_folder_keeps_one_that_outlives_a_restart(tmp_path):
    from engine.console.session import SECRET_FILE, console_secret

    first = console_secret(Settings(data_dir=tmp_path))
    assert len(first) == 64 and console_secret(Settings(data_dir=tmp_path)) == first
    assert (tmp_path / SECRET_FILE).stat().st_mode & 0o077 == 0
    assert console_secret(Settings(data_dir=tmp_path, console_secret="chosen")) == "chosen"
