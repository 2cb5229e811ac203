from hypothesis import given, strategies as st

from engine.profiles.model import PAGES_KEPT, apply_event, fold, new_profile


def page(ts, session="s1", url=None, kind="page_view"):
    return {"event_id": f"e{ts}", "type": kind, "visitor_id": "v", "session_id": session, "ts": ts, "url": url or f"/p{ts}"}


def test_counts_first_last_seen_and_sessions():
    profile = fold(new_profile("v"), [page(1000), page(2000, kind="page_ping"), page(5000, session="s2"), page(6000, session="s2")])
    assert profile["counts"] == {"page_view": 3, "page_ping": 1}
    assert profile["first_seen"] == 1000 and profile["last_seen"] == 6000
    assert profile["sessions"]["count"] == 2
    assert profile["sessions"]["current"] == "s2" and profile["sessions"]["last_start"] == 5000
    assert profile["sessions"]["total_ms"] == 1000 + 1000


def test_keeps_the_last_pages_newest_last():
    profile = fold(new_profile("v"), [page(ts) for ts in range(1, 31)])
    assert len(profile["pages"]) == PAGES_KEPT
    assert [p["url"] for p in profile["pages"]][-1] == "/p30"
    assert profile["pages"][0]["url"] == f"/p{31 - PAGES_KEPT}"


def test_out_of_order_timestamps_keep_min_and_max():
    profile = fold(new_profile("v"), [page(5000), page(1000)])
    assert profile["first_seen"] == 1000 and profile["last_seen"] == 5000


@given(st.lists(st.tuples(st.integers(1, 10**12), st.sampled_from(["s1", "s2", "s3"])), max_size=40))
def test_counts_add_up(events):
    profile = fold(new_profile("v"), [page(ts, session) for ts, session in events])
    assert sum(profile["counts"].values()) == len(events)
    assert len(profile["pages"]) == min(len(events), PAGES_KEPT)
    if events:
        assert profile["first_seen"] == min(ts for ts, _ in events)
        assert profile["last_seen"] == max(ts for ts, _ in events)
        assert 1 <= profile["sessions"]["count"] <= len(events)
