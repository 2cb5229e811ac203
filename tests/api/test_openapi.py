"""The OpenAPI description lists exactly the routes the app serves, each with its access rule."""

import httpx
from starlette.routing import Route

from engine.api.access import RULES
from engine.api.openapi import OPERATIONS, who_may
from engine.settings import Settings
from engine.wiring import create_app


def served_routes(app) -> set[tuple[str, str]]:
    return {
        (method, route.path) for route in app.routes if isinstance(route, Route) for method in route.methods - {"HEAD"}
    }


def test_every_route_is_described_and_every_description_is_served():
    app = create_app(
        Settings(kafka="127.0.0.1:1", redis="redis://127.0.0.1:6379/0", demo_login=True, identity_secret="s" * 32)
    )
    described = {(op.method, op.path) for op in OPERATIONS}
    assert served_routes(app) == described


def test_each_operation_names_who_may_call_it_from_the_access_table():
    app = create_app(
        Settings(kafka="127.0.0.1:1", redis="redis://127.0.0.1:6379/0", demo_login=True, identity_secret="s" * 32)
    )
    actions = {
        (method, route.path): route.endpoint.access_action
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods - {"HEAD"}
    }
    for op in OPERATIONS:
        assert op.action in RULES and actions[(op.method, op.path)] == op.action, op
    assert who_may("profile") == "an API key with the read scope"
    assert "own cookie" in who_may("export") and "erase scope" in who_may("export")
    assert who_may("public") == "anyone"


async def test_openapi_json_and_the_readable_page_are_served():
    app = create_app(Settings(kafka="127.0.0.1:1", redis="redis://127.0.0.1:6379/0"), {"api"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        document = (await client.get("/openapi.json")).json()
        page = await client.get("/docs")
    assert document["openapi"].startswith("3.")
    assert "/v1/decide" in document["paths"] and "/v1/events" not in document["paths"]  # the api role has no collector
    assert "erase scope" in document["paths"]["/v1/profiles/{profile_id}"]["delete"]["description"]
    assert page.status_code == 200 and "/v1/decide" in page.text and "<script" not in page.text
