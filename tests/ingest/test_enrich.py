import pytest

from engine.ingest.enrich import enrich, truncate_ip


@pytest.mark.parametrize(
    "address, expected",
    [
        ("203.0.113.77", "203.0.113.0"),
        ("10.1.2.3", "10.1.2.0"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::"),
        ("::ffff:198.51.100.9", "198.51.100.0"),
        ("not-an-ip", None),
        ("", None),
        (None, None),
    ],
)
def test_ip_is_truncated(address, expected):
    assert truncate_ip(address) == expected


def test_full_ip_never_kept():
    event = enrich({"type": "page_view"}, received_at=5, user_agent="x" * 1000, truncated_ip=truncate_ip("192.0.2.201"))
    assert "192.0.2.201" not in repr(event)
    assert event["ip"] == "192.0.2.0" and len(event["ua"]) == 512 and event["received_at"] == 5
