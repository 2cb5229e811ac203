"""Property, over every route the app describes (engine.api.openapi.OPERATIONS): whatever a
client sends (path values, query parameters, bodies, with a key, a wrong key or none),
the answer is a success, a redirect or a 4xx that says what is wrong, never a 5xx.

A route added to OPERATIONS is fuzzed here without more code. The engine is this
module's own, so the writes a key allows (catalog, preferences, erasures) touch no other test.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from engine.api.openapi import OPERATIONS
from helpers import Engine, started

KEY = "test-key"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["slots", "visitor_id", "user_id", "context", "items", "show", "key", "csrf", "id"]),
        json_values,
        max_size=4,
    ).map(lambda v: json.dumps(v).encode()),
)
path_values = st.one_of(
    st.text(min_size=1, max_size=60), st.uuids().map(str), st.sampled_from(["hero", "shoe-lovers", "0"])
)
query_values = st.one_of(
    st.text(max_size=30), st.integers(-5, 5000).map(str), st.sampled_from(["", "a", "csv", "jsonl"])
)
credentials = st.sampled_from([None, f"Bearer {KEY}", "Bearer wrong-key", "Basic eA==", "Bearer"])
PARAM = re.compile(r"\{(\w+)\}")
FUZZ = hsettings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
async def own_engine(settings_for, tmp_session):
    running = await started(Engine(settings_for(), tmp_session / "every-route-fuzz"))
    yield running
    running.stop()


def request_for(op, values: dict, query: dict, body: bytes, authorization: str | None) -> dict:
    path = PARAM.sub(lambda m: quote(values[m.group(1)], safe="").replace(".", "%2E"), op.path)
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    options = {"headers": headers, "params": {name: query[name] for name, _, _ in op.query if name in query}}
    if op.method in ("POST", "PUT"):
        options["content"] = body
    return {"method": op.method, "url": path, **options}


@FUZZ
@given(
    op=st.sampled_from(OPERATIONS),
    values=st.dictionaries(st.sampled_from(["slot", "experiment_id", "profile_id", "name"]), path_values, min_size=4),
    query=st.dictionaries(
        st.sampled_from(sorted({q for op in OPERATIONS for q, _, _ in op.query})), query_values, max_size=4
    ),
    body=bodies,
    authorization=credentials,
)
async def test_no_route_answers_a_5xx(own_engine, op, values, query, body, authorization):
    async with own_engine.client() as client:
        response = await client.request(**request_for(op, values, query, body, authorization))
    where = f"{op.method} {op.path}"
    assert response.status_code < 500, (where, response.status_code, response.text[:300])
    if response.status_code >= 400 and not op.path.startswith("/console"):  # the console answers with pages
        error = response.json().get("error")
        assert isinstance(error, str) and error, (where, response.text[:300])
