"""The console's tools, their pure parts: the backtest's form and run, the model's age, a pasted profile."""

import asyncio
from pathlib import Path

import pytest

from engine.console.backtest_job import Backtests, BacktestRun, hours_of
from engine.console.views import ago, model_state, prior_state
from engine.errors import InvalidInput
from engine.profiles.model import ProfileConfig
from engine.profiles.pasted import pasted_profile
from engine.rules.commands import recent_events
from engine.rules.live import LiveRules

HOUR_MS = 3_600_000
VID = "0f8fad5bd9cb469fa16570867728950e"
DEMO = Path(__file__).resolve().parents[2] / "engine" / "defaults" / "rules"


def test_the_backtest_hours_are_a_number_within_a_week():
    assert hours_of("6") == 6.0 and hours_of(" 0.5 ") == 0.5 and hours_of("168") == 168.0
    for bad in ("", "0", "-1", "169", "nan", "inf", "six", None):
        with pytest.raises(InvalidInput, match="^hours: expected"):
            hours_of(bad)


async def _batches(*batches):
    for batch in batches:
        yield batch


async def test_the_window_keeps_its_events_oldest_first_and_at_most_the_newest_limit():
    old, *recent = [{"ts": ts, "event_id": str(ts)} for ts in (1, 5, 3, 9, 7)]
    events, left_out = await recent_events(_batches([recent[0], old], recent[1:]), since_ms=2)
    assert [e["ts"] for e in events] == [3, 5, 7, 9] and left_out == 0
    events, left_out = await recent_events(_batches([recent[0], old], recent[1:], [{"ts": "late"}]), 2, limit=1)
    assert [e["ts"] for e in events] == [9] and left_out == 3
    many = [{"ts": 10 + i} for i in range(7)]
    events, left_out = await recent_events(_batches(many[:4], many[4:]), 0, limit=2)  # trimmed on the way, too
    assert [e["ts"] for e in events] == [15, 16] and left_out == 5


def test_a_run_counts_reading_as_the_first_half_and_replaying_as_the_second():
    run = BacktestRun(1, "rules")
    assert run.progress == 0.0 and run.running
    run.read, run.total = 50, 100
    assert run.progress == 0.25
    run.state, run.events, run.fed = "replaying", 10, 5
    assert run.progress == 0.75
    run.state = "done"
    assert run.progress == 1.0 and not run.running


def _shopper_events(now_ms: int) -> list[dict]:
    views = [
        {
            "type": "product_view",
            "visitor_id": VID,
            "ts": now_ms - 60_000 + i,
            "event_id": f"v{i}",
            "props": {"product": {"id": f"shoe-{i}", "category": "shoes", "price": 30}},
        }
        for i in range(3)
    ]
    return views + [{"type": "page_view", "visitor_id": VID, "ts": now_ms - 1_000, "url": "/", "event_id": "p"}]


async def test_one_backtest_at_a_time_and_its_report_is_the_clis(tmp_path):
    import time

    now = int(time.time() * 1000)
    gate = asyncio.Event()

    async def read_log(settings):
        await gate.wait()
        yield [{"type": "page_view", "visitor_id": VID, "ts": now - 2 * HOUR_MS, "url": "/"}], 1, 5
        yield _shopper_events(now), 5, 5

    jobs = Backtests(None, LiveRules(DEMO, half_life_days=14), ProfileConfig(), read_log)
    run = jobs.start(1)
    assert run is not None and jobs.start(6) is None  # the first is still reading
    gate.set()
    await asyncio.wait_for(jobs._task, 10)
    assert run.state == "done" and (run.read, run.total, run.events, run.fed) == (5, 5, 4, 4)
    rows = {row["rule"]: row for row in run.report.summary()}
    assert rows["shoe-fans"]["decided"] == 1 and rows["shoe-fans"]["visitors"] == 1
    assert jobs.start(6) is not None  # once it is done, another may start
    await jobs.stop()


async def test_a_backtest_of_files_with_errors_or_an_unreadable_log_ends_with_its_message(tmp_path):
    (tmp_path / "broken.yaml").write_text(
        "rules:\n  - id: typo-rule\n    when: {segmnt: {name: x}}\n    then: {hero: a}\n"
    )

    async def never_read(settings):
        raise AssertionError("read the log of files with errors")
        yield

    jobs = Backtests(None, LiveRules(tmp_path, half_life_days=14), ProfileConfig(), never_read)
    run = jobs.start(1)
    await asyncio.wait_for(jobs._task, 10)
    assert run.state == "failed" and run.error.startswith("the rule files have errors") and "broken.yaml:3" in run.error

    async def unreachable(settings):
        raise ConnectionError("no broker at 127.0.0.1:1")
        yield

    jobs = Backtests(None, LiveRules(DEMO, half_life_days=14), ProfileConfig(), unreachable)
    run = jobs.start(24)
    await asyncio.wait_for(jobs._task, 10)
    assert run.state == "failed" and run.report is None
    assert run.error == "the event log could not be read (ConnectionError: no broker at 127.0.0.1:1)"


def test_the_model_age_reads_in_the_largest_unit_that_fits():
    now = 1_800_000_000_000
    assert ago(now - 5_000, now) == "just now" and ago(now + 5_000, now) == "just now"
    assert ago(now - 125_000, now) == "2 min ago" and ago(now - 3 * HOUR_MS - 1, now) == "3 h ago"
    assert ago(now - 30 * HOUR_MS, now) == "30 h ago" and ago(now - 72 * HOUR_MS, now) == "3 days ago"
    shown = model_state({"version": "1799-ab", "trained_at": now - 3 * HOUR_MS, "persons": 10, "items": 4}, now)
    assert shown["age"] == "3 h ago" and shown["version"] == "1799-ab" and shown["trained"].endswith(":00")
    assert model_state(None, now) is None and model_state({}, now) is None
    assert model_state({"version": "v1"}, now)["age"] is None


def test_the_prior_state_shows_the_chosen_m_its_age_and_the_rates():
    now = 1_800_000_000_000
    info = {"m": 64.0, "hit_rates": {16.0: 0.31, 0.0: 0.3, 64.0: 0.32}, "queries": 900, "orders": 300}
    shown = prior_state(dict(info, chosen_at=now - 2 * HOUR_MS), now)
    assert shown == {
        "m": "64",
        "age": "2 h ago",
        "orders": 300,
        "queries": 900,
        "rates": [("0", "0.3000"), ("16", "0.3100"), ("64", "0.3200")],
    }
    assert prior_state(None, now) is None and prior_state(dict(info, chosen_at=0), now)["age"] is None


def test_a_pasted_profile_is_completed_and_bucketed_under_its_own_id():
    person = pasted_profile('{"id": "%s", "traits": {"first_name": "Ada"}, "commerce": {"orders": 2}}' % VID)
    assert person["visitor_ids"] == [VID] and person["traits"] == {"first_name": "Ada"}
    assert (
        person["commerce"]["orders"] == 2 and person["commerce"]["order_log"] == [] and person["sessions"]["count"] == 0
    )
    user = pasted_profile(
        '{"id": "u-1", "visitor_ids": ["%s"], "interests": {"shoes": [3.5, 1]}, "extra": {"a": 1}}' % VID
    )
    assert user["visitor_ids"] == [VID] and user["extra"] == {"a": 1} and user["preferences"] == {}
    assert pasted_profile('{"id": "u-2"}')["visitor_ids"] == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("{nope", "profile_json: not JSON this engine reads: malformed JSON"),
        ("[1, 2]", "profile_json: expected a JSON object"),
        ('"just text"', "profile_json: expected a JSON object"),
        ("{}", "profile_json: id: expected the visitor id or user id"),
        ('{"id": 7}', "profile_json: id: expected"),
        ('{"id": "u", "commerce": {"orders": "many"}}', "profile_json: commerce.orders: expected a whole number"),
        (
            '{"id": "u", "commerce": {"order_log": [[1, 2, "o"], ["x"]]}}',
            "profile_json: commerce.order_log[1]: expected",
        ),
        ('{"id": "u", "interests": {"shoes": 3}}', "profile_json: interests.shoes: expected [score, since in ms]"),
        (
            '{"id": "u", "daily": {"20000": {"product_view": "3"}}}',
            "profile_json: daily.20000: expected an object of counts",
        ),
        ('{"id": "u", "daily": {"monday": {}}}', "profile_json: daily.monday: expected a day number"),
        ('{"id": "u", "sessions": []}', "profile_json: sessions: expected an object"),
        ('{"id": "u", "counts": {"page_view": true}}', "profile_json: counts.page_view: expected a number"),
        ('{"id": "u", "value": [1]}', "profile_json: value: expected an object"),
        ('{"id": "u", "preferences": {"hide": "rain"}}', "profile_json: preferences.hide: expected a list"),
        ('{"id": "u", "first_seen": "yesterday"}', "profile_json: first_seen: expected a time in ms"),
        ("[" * 40 + "]" * 40, "profile_json: not JSON this engine reads: nesting deeper than"),
    ],
)
def test_a_pasted_profile_of_the_wrong_shape_is_refused_naming_the_place(text, message):
    with pytest.raises(InvalidInput) as refused:
        pasted_profile(text)
    assert refused.value.error.startswith(message), refused.value.error


async def test_events_of_one_moment_keep_the_order_of_the_log():
    batch = [{"ts": 5, "event_id": eid, "n": n} for n, eid in enumerate(["zz", "aa", "mm"])]
    events, _ = await recent_events(_batches([{"ts": 9, "event_id": "0"}], batch), 0)
    assert [e.get("n") for e in events] == [0, 1, 2, None]


def test_the_model_state_keeps_only_counts_it_can_show():
    shown = model_state({"version": "v1", "persons": "many", "items": 3, "interactions": True}, 0)
    assert (shown["persons"], shown["items"], shown["interactions"]) == (None, 3, None)
