"""Property: whatever a client sends, the answer is a JSON 4xx or a success, never a 5xx."""

import json
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
event_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["page_view", "purchase", "product_view", "identify", "consent", "impression", "custom:x", "?"]
        )
    },
    optional={
        k: json_values for k in ("ts", "props", "event_id", "visitor_id", "user_id", "url", "session_id", "title")
    },
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    event_like.map(lambda v: json.dumps(v).encode()),
    st.lists(event_like, max_size=8).map(lambda v: json.dumps({"events": v}).encode()),
)
ids = st.text(min_size=1, max_size=80).filter(lambda s: s not in (".", "..")).map(lambda s: quote(s, safe=""))
FUZZ = hsettings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def assert_no_5xx(response):
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("error"), str) and body["error"]


@FUZZ
@given(
    body=bodies,
    content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
)
async def test_events_endpoint(engine, body, content_type):
    async with engine.client() as client:
        assert_no_5xx(await client.post("/v1/events", content=body, headers={"Content-Type": content_type}))


@FUZZ
@given(profile_id=ids, body=bodies)
async def test_profile_endpoints(engine, profile_id, body):
    auth = {"Authorization": "Bearer test-key"}
    async with engine.client() as client:
        assert_no_5xx(await client.get(f"/v1/profiles/{profile_id}", headers=auth))
        assert_no_5xx(await client.get(f"/v1/profiles/{profile_id}/export", headers=auth))
        assert_no_5xx(await client.put(f"/v1/profiles/{profile_id}/preferences", content=body, headers=auth))


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["type", "ts", "visitor_id", "props.x", "url", "event_id", "user_id"]),
        st.text(max_size=20),
        max_size=5,
    )
)
async def test_pixel(engine, params):
    async with engine.client() as client:
        assert_no_5xx(await client.get("/v1/pixel.gif", params=params))
