"""GET /openapi.json (the public contract as OpenAPI 3.1) and GET /docs (the same, readable).

Each operation names its access action, so who may call it is read from the one
access table (engine.api.access.RULES), never written twice. A test checks that the
operations listed here are exactly the routes the app serves.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from engine.api.access import RULES, Access, Reach, guarded

ERROR = {"$ref": "#/components/schemas/Error"}
OBJECT = {"type": "object"}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    action: str
    query: tuple[tuple[str, str, bool], ...] = ()  # (name, description, required)
    body: str | None = None  # what the JSON body holds
    returns: str = "JSON"
    statuses: tuple[int, ...] = field(default=(200,))


VISITOR = ("visitor_id", "a visitor id (own cookie's without a key)", False)
LIST = (
    ("k", "how many items, 1-100 (10)", False),
    ("category", "only this category", False),
    ("max_per_category", "items per category, 0: no cap (3)", False),
)

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/v1/events",
        'Collect one event or {"events": [...]}',
        "collect",
        body='an event object or {"events": [event, ...]} (docs/contract.md, Event)',
        returns="{accepted, rejected: [{index, error}]}",
        statuses=(202, 400, 413, 429, 503),
    ),
    Operation(
        "GET",
        "/v1/pixel.gif",
        "Collect one event from query parameters (no JavaScript)",
        "collect",
        query=(("type", "event type", True), ("props.NAME", "a prop", False)),
        returns="a 1x1 GIF",
    ),
    Operation(
        "POST",
        "/v1/decide",
        "Decide what a visitor sees in each slot",
        "decide",
        body="{visitor_id?, user_id? (key only), slots: [...], context: {...}}",
        returns="{visitor_id, decisions: {slot: {content, content_id, variant, source, reason, decision_id}}}",
        statuses=(200, 400, 401, 403, 503),
    ),
    Operation(
        "GET",
        "/v1/slots/{slot}/report",
        "A model-driven slot's report",
        "reports",
        returns="impressions, clicks and click rate per variant and for the holdout",
        statuses=(200, 401, 404),
    ),
    Operation(
        "GET",
        "/v1/experiments",
        "Every experiment (rule splits, model slots, the global holdout) and its state",
        "experiments",
        returns="{experiments: [{id, kind, state, ...}]}",
        statuses=(200, 401, 403),
    ),
    Operation(
        "GET",
        "/v1/experiments/{experiment_id}",
        "An experiment's report: per arm, lift with always-valid intervals, CUPED, sample-ratio check",
        "experiments",
        returns="{id, method, arms: {arm: {people, exposures, clicks, conversions, revenue, conversion_rate, "
        "revenue_per_person}}, comparisons, srm}",
        statuses=(200, 401, 403, 404),
    ),
    Operation(
        "GET",
        "/v1/recommendations/also-bought",
        "Customers who bought this also bought",
        "also_bought",
        query=(("item", "the item id", True), VISITOR, *LIST),
        returns="{item, items: [{id, score, because}], source}",
        statuses=(200, 400, 401, 403, 503),
    ),
    Operation(
        "GET",
        "/v1/recommendations/for-you",
        "A list for the visitor",
        "for_you",
        query=(VISITOR[:2] + (True,), *LIST),
        returns="{visitor_id, items: [{id, score, because}], source}",
        statuses=(200, 400, 401, 403, 503),
    ),
    Operation(
        "GET",
        "/v1/recommendations/recently-viewed",
        "What the person viewed lately, on any device",
        "recently_viewed",
        query=(VISITOR[:2] + (True,), LIST[0]),
        returns="{visitor_id, items: [{id, viewed_at, category?}]}",
        statuses=(200, 400, 401, 403, 503),
    ),
    Operation(
        "PUT",
        "/v1/catalog/items",
        "Add or replace catalog items",
        "catalog",
        body="[{id, category?, available?, title?, price?}] or {items: [...]}",
        returns="{stored}",
        statuses=(200, 400, 401, 403, 413),
    ),
    Operation(
        "GET",
        "/v1/profiles/{profile_id}",
        "The profile of a visitor id or user id",
        "profile",
        statuses=(200, 401, 403, 404, 503),
    ),
    Operation(
        "DELETE",
        "/v1/profiles/{profile_id}",
        "Erase every trace of the person",
        "erase",
        returns="{erased, visitor_ids}",
        statuses=(200, 401, 403, 503),
    ),
    Operation(
        "GET",
        "/v1/profiles/{profile_id}/export",
        "Everything stored about the person",
        "export",
        statuses=(200, 401, 403, 404, 503),
    ),
    Operation(
        "PUT",
        "/v1/profiles/{profile_id}/preferences",
        "The visitor's own choices",
        "preferences",
        body="{show?, hide?, language?, do_not_personalize?, NAME: value}",
        returns="{id, preferences}",
        statuses=(200, 400, 401, 403, 503),
    ),
    Operation("GET", "/v1/segments", "Every segment with its size", "segments", statuses=(200, 401, 403)),
    Operation(
        "GET",
        "/v1/segments/{name}",
        "A segment's members, highest score first, page by page",
        "segments",
        query=(("limit", "1-1000 (100)", False), ("cursor", "the next_cursor of the previous page", False)),
        returns="{name, members: [{id, score}], next_cursor}",
        statuses=(200, 400, 401, 403, 404),
    ),
    Operation(
        "GET",
        "/v1/segments/{name}/export",
        "A segment's identified members with marketing consent, for a mailing",
        "segment_export",
        query=(
            ("format", "csv or jsonl (jsonl)", False),
            ("limit", "members read, 1-1000 (1000)", False),
            ("cursor", "the X-Next-Cursor header of the previous page", False),
        ),
        returns="CSV or JSON lines of {id, email, first_name, language, score}; X-Next-Cursor when more follow",
        statuses=(200, 400, 401, 403, 404),
    ),
    Operation(
        "POST",
        "/demo/login",
        "The demo shop's login: the user hash its back end would compute",
        "demo_login",
        body="{user_id}",
        returns="{user_id, user_hash}",
        statuses=(200, 400),
    ),
    Operation("GET", "/console", "The console (to /console/)", "console_signin", returns="a redirect", statuses=(308,)),
    Operation("GET", "/console/signin", "The console's sign-in page", "console_signin", returns="HTML"),
    Operation(
        "POST",
        "/console/signin",
        "Sign in to the console with an API key of read scope",
        "console_signin",
        body="a form: key, csrf",
        returns="a redirect to /console/ with the session cookie",
        statuses=(303, 401, 403),
    ),
    Operation(
        "POST",
        "/console/signout",
        "Sign out of the console",
        "console_signin",
        body="a form: csrf",
        returns="a redirect to the sign-in page",
        statuses=(303, 403),
    ),
    Operation(
        "GET",
        "/console/",
        "Console: events per minute, refusals, health, log resets",
        "console",
        query=(("part", "live: only the part that updates itself", False),),
        returns="HTML",
        statuses=(200, 303),
    ),
    Operation(
        "GET",
        "/console/people",
        "Console: a person by visitor id or user id",
        "console",
        query=(("q", "a visitor id or user id", False), ("part", "live: only the recent events", False)),
        returns="HTML",
        statuses=(200, 303, 400),
    ),
    Operation(
        "POST",
        "/console/people/erase",
        "Console: erase the person",
        "console_erase",
        body="a form: id, csrf",
        returns="HTML",
        statuses=(200, 400, 401, 403),
    ),
    Operation(
        "GET",
        "/console/people/export",
        "Console: everything stored about the person, as a download",
        "console_export",
        query=(("q", "a visitor id or user id", True),),
        returns="JSON",
        statuses=(200, 303, 400, 403, 404),
    ),
    Operation(
        "GET",
        "/console/rules/preview",
        "Console: each slot's decision for a person and a context, as decide answers",
        "console",
        query=(
            ("profile", "a visitor id or user id", False),
            ("country", "", False),
            ("weather", "", False),
            ("device", "", False),
            ("day_of_week", "", False),
            ("time", "HH:MM, UTC", False),
        ),
        returns="HTML",
        statuses=(200, 303, 400),
    ),
    Operation(
        "POST",
        "/console/rules/preview",
        "Console: each slot's decision for a person or a pasted profile, and a context, as decide answers",
        "console",
        body="a form: profile or profile_json (a profile as GET /v1/profiles/ID answers), country, weather, "
        "device, day_of_week, time, csrf",
        returns="HTML",
        statuses=(200, 400, 401, 403, 413),
    ),
    Operation(
        "GET",
        "/console/segments",
        "Console: every segment with its size",
        "console",
        returns="HTML",
        statuses=(200, 303),
    ),
    Operation(
        "GET",
        "/console/segments/{name}",
        "Console: a segment's definition and top members",
        "console",
        returns="HTML",
        statuses=(200, 303, 404),
    ),
    Operation(
        "GET",
        "/console/segments/{name}/export",
        "Console: the segment's export (identified members with marketing consent), every page, as a CSV download",
        "console_members",
        returns="CSV (id, email, first_name, language, score)",
        statuses=(200, 303, 403, 404),
    ),
    Operation(
        "GET",
        "/console/rules",
        "Console: the rule files, their state, and decisions served",
        "console",
        query=(("part", "live: only the part that updates itself", False),),
        returns="HTML",
        statuses=(200, 303),
    ),
    Operation(
        "POST",
        "/console/rules/backtest",
        "Console: start a backtest of the rule files over the last hours of the event log (one at a time)",
        "console_backtest",
        body="a form: hours (more than 0, at most 168), csrf",
        returns="a redirect to the rules page",
        statuses=(303, 400, 401, 403, 409),
    ),
    Operation(
        "GET",
        "/console/rules/backtest",
        "Console: the backtest's progress, then its report",
        "console",
        returns="HTML",
        statuses=(200, 303),
    ),
    Operation(
        "GET",
        "/console/recommendations",
        "Console: an item's also-bought list and its evidence; a visitor's for-you list",
        "console",
        query=(("item", "the item id", False), ("visitor", "a visitor id: their for-you list", False)),
        returns="HTML",
        statuses=(200, 303, 400),
    ),
    Operation(
        "GET",
        "/console/experiments",
        "Console: every experiment, and one's report per arm with the lift's interval and the sample-ratio check",
        "console",
        query=(("id", "the experiment to report", False),),
        returns="HTML",
        statuses=(200, 303, 400, 404),
    ),
    Operation("GET", "/healthz", "Ready only when broker, Redis and a worker are", "public", statuses=(200, 503)),
    Operation("GET", "/metrics", "Prometheus text", "public", returns="text/plain"),
    Operation("GET", "/openapi.json", "This description", "public"),
    Operation("GET", "/docs", "This description, readable", "public", returns="HTML"),
)


def who_may(action: str) -> str:
    """The access rule of an action in words, from the one table."""
    rule = RULES[action]
    if rule.visitor is Reach.EVERYONE and rule.scope is None:
        return "anyone"
    parts = [f"an API key with the {rule.scope} scope"] if rule.scope else []
    if rule.visitor is Reach.OWN_VISITOR:
        parts.append("the visitor with their own cookie")
    elif rule.visitor is Reach.OWN_PERSON:
        parts.append("the visitor with their own cookie, for themselves or the user they are linked to")
    elif rule.visitor is Reach.EVERYONE:
        parts.append("anyone")
    if rule.anonymous and rule.visitor is not Reach.EVERYONE:
        parts.append("anyone without a visitor id (as a new visitor)")
    return "; ".join(parts)


def spec(operations=OPERATIONS) -> dict:
    paths: dict = {}
    for op in operations:
        params = [
            {"name": name, "in": "query", "required": required, "description": text, "schema": {"type": "string"}}
            for name, text, required in op.query
        ]
        params += [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_names(op.path)
        ]
        operation = {
            "summary": op.summary,
            "description": f"Who may call: {who_may(op.action)}. Returns {op.returns}.",
            "parameters": params,
            "responses": {
                str(s): (
                    {"description": op.returns}
                    if s < 300
                    else {"description": "error", "content": {"application/json": {"schema": ERROR}}}
                )
                for s in op.statuses
            },
        }
        if RULES[op.action].scope:
            operation["security"] = [{"apiKey": []}, {"visitorCookie": []}, {}]
        if op.body:
            operation["requestBody"] = {"description": op.body, "content": {"application/json": {"schema": OBJECT}}}
        paths.setdefault(op.path, {})[op.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "clickstream-engine",
            "version": "1",
            "description": "Collector and API of the engine; docs/contract.md has the event fields in full.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "detail": {}},
                }
            },
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer"},
                "visitorCookie": {"type": "apiKey", "in": "cookie", "name": "clickstream_vid"},
            },
        },
    }


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def docs_page(document: dict) -> str:
    rows = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            params = ", ".join(p["name"] for p in op["parameters"])
            rows.append(
                f"<tr><td><code>{method.upper()} {html.escape(path)}</code></td><td>{html.escape(op['summary'])}"
                f"</td><td>{html.escape(op['description'])}</td><td>{html.escape(params)}</td></tr>"
            )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        "<title>clickstream-engine API</title><style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem;"
        "max-width:72rem}td{vertical-align:top;padding:.4rem .6rem;border-bottom:1px solid #ddd}"
        "code{white-space:nowrap}</style><h1>clickstream-engine API</h1>"
        "<p>Machine-readable: <a href=/openapi.json>/openapi.json</a>. Errors are JSON "
        '<code>{"error", "detail"}</code>.</p><table><tr><th>route<th>does<th>who and what<th>parameters'
        + "".join(rows)
        + "</table></html>"
    )


def openapi_routes(access: Access, served: list[tuple[str, str]]) -> list[Route]:
    """`served`: the (method, path) pairs of the app, so the description lists only what runs."""
    wanted = {(m, p) for m, p in served} | {("GET", "/openapi.json"), ("GET", "/docs")}
    document = spec(tuple(op for op in OPERATIONS if (op.method, op.path) in wanted))

    async def openapi_json(request: Request) -> JSONResponse:
        return JSONResponse(document)

    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(docs_page(document))

    return [
        Route("/openapi.json", guarded(access, "public", openapi_json), methods=["GET"]),
        Route("/docs", guarded(access, "public", docs), methods=["GET"]),
    ]
