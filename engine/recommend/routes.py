"""Recommendation and catalog routes.

    GET /v1/recommendations/also-bought?item=ID&k=10[&visitor_id=V][&category=C][&max_per_category=N]
    GET /v1/recommendations/for-you?visitor_id=V&k=10[&category=C][&max_per_category=N]
    PUT /v1/catalog/items          a JSON list of {id, category, available, title?, price?}

Back ends use an API key. A visitor holding their own cookie may ask for their own
lists without one (as for their profile: engine.api.profiles); also-bought without a
visitor_id is the shop-wide aggregate and needs neither. Bad
parameters are a 400 naming the field; Redis out of reach is a 503.
"""

from __future__ import annotations

import functools
import json
import re

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.api.http import bearer_token, read_body, require_api_key, require_key_or_own_cookie
from engine.errors import BadRequest, Unavailable
from engine.recommend.catalog import check_items
from engine.recommend.service import RecommendService
from engine.settings import Settings

K_MAX = 100
ID_MAX = 64
CATEGORY_MAX = 256
CATALOG_MAX_BYTES = 8 << 20
_NUMBER = re.compile(r"[0-9]{1,6}")  # not str.isdigit: it accepts '²', which int() refuses


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not _NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadRequest(f"{name}: expected a number from {low} to {high}", {"got": raw[:64]})
    return int(raw)


def text_param(request: Request, name: str, max_len: int, required: bool = False) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise BadRequest(f"{name}: is required")
        return None
    if len(raw) > max_len:
        raise BadRequest(f"{name}: longer than {max_len} characters")
    return raw


def list_params(request: Request) -> dict:
    """The parameters both lists share."""
    return {
        "k": int_param(request, "k", 10, 1, K_MAX),
        "category": text_param(request, "category", CATEGORY_MAX),
        "max_per_category": int_param(request, "max_per_category", -1, 0, K_MAX),
    }


def _unavailable_on_redis_error(handler):
    @functools.wraps(handler)
    async def wrapped(request: Request):
        try:
            return await handler(request)
        except RedisError:
            raise Unavailable("recommendations are unavailable (the store cannot be reached)") from None
    return wrapped


def recommend_routes(settings: Settings, service: RecommendService) -> list[Route]:
    async def authorize_visitor(request: Request, visitor_id: str | None) -> None:
        await require_key_or_own_cookie(request, settings.api_keys, service.people, visitor_id,
                                        "visitor_id: a visitor may only ask for their own recommendations")

    @_unavailable_on_redis_error
    async def also_bought(request: Request) -> JSONResponse:
        item = text_param(request, "item", ID_MAX, required=True)
        visitor_id = text_param(request, "visitor_id", ID_MAX)
        # Without a visitor the list is the shop-wide aggregate a product page shows, so
        # a page may ask without a key; filtering by what someone bought needs theirs.
        if visitor_id is not None or bearer_token(request) is not None:
            await authorize_visitor(request, visitor_id)
        params = list_params(request)
        cap = params.pop("max_per_category")
        body = await service.also_bought(item, visitor_id=visitor_id, max_per_category=None if cap < 0 else cap, **params)
        return JSONResponse(body)

    @_unavailable_on_redis_error
    async def for_you(request: Request) -> JSONResponse:
        visitor_id = text_param(request, "visitor_id", ID_MAX, required=True)
        await authorize_visitor(request, visitor_id)
        params = list_params(request)
        cap = params.pop("max_per_category")
        body = await service.for_you(visitor_id, max_per_category=None if cap < 0 else cap, **params)
        return JSONResponse(body)

    @_unavailable_on_redis_error
    async def put_catalog_items(request: Request) -> JSONResponse:
        require_api_key(request, settings.api_keys)
        raw = await read_body(request, CATALOG_MAX_BYTES)
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("malformed JSON") from None
        items = check_items(document)
        stored = await service.put_catalog(items)
        return JSONResponse({"stored": stored})

    return [
        Route("/v1/recommendations/also-bought", also_bought, methods=["GET"]),
        Route("/v1/recommendations/for-you", for_you, methods=["GET"]),
        Route("/v1/catalog/items", put_catalog_items, methods=["PUT"]),
    ]
