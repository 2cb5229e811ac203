"""Recommendation routes.

    GET /v1/recommendations/also-bought?item=ID&k=10[&visitor_id=V][&category=C][&max_per_category=N]
    GET /v1/recommendations/for-you?visitor_id=V&k=10[&category=C][&max_per_category=N]
    GET /v1/recommendations/recently-viewed?visitor_id=V&k=10

Also-bought without a visitor_id is the shop-wide aggregate a product page shows, so
a page may ask without a key; filtering by what someone bought needs their cookie or
a key (engine.api.access). Bad parameters are a 400 naming the field.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from engine.api.access import Access, guarded, query_param
from engine.api.params import int_param, text_param
from engine.api.responses import JSONResponse
from engine.recommend.request import ListRequest
from engine.recommend.service import RecommendService

K_MAX = 100
ID_MAX = 64
CATEGORY_MAX = 256


def list_request(request: Request, item: str | None, visitor_id: str | None) -> ListRequest:
    """The list asked for, with the parameters both lists share."""
    cap = int_param(request, "max_per_category", -1, 0, K_MAX)
    return ListRequest(
        item,
        visitor_id,
        k=int_param(request, "k", 10, 1, K_MAX),
        category=text_param(request, "category", CATEGORY_MAX),
        max_per_category=None if cap < 0 else cap,
    )


def recommend_routes(access: Access, service: RecommendService) -> list[Route]:
    async def also_bought(request: Request) -> JSONResponse:
        item = text_param(request, "item", ID_MAX, required=True)
        visitor_id = text_param(request, "visitor_id", ID_MAX)
        return JSONResponse(await service.also_bought_list(list_request(request, item, visitor_id)))

    async def for_you(request: Request) -> JSONResponse:
        visitor_id = text_param(request, "visitor_id", ID_MAX, required=True)
        return JSONResponse(await service.for_you_list(list_request(request, None, visitor_id)))

    async def recently_viewed(request: Request) -> JSONResponse:
        visitor_id = text_param(request, "visitor_id", ID_MAX, required=True)
        return JSONResponse(await service.recently_viewed(visitor_id, int_param(request, "k", 10, 1, K_MAX)))

    visitor = query_param("visitor_id")
    return [
        Route("/v1/recommendations/also-bought", guarded(access, "also_bought", also_bought, visitor), methods=["GET"]),
        Route("/v1/recommendations/for-you", guarded(access, "for_you", for_you, visitor), methods=["GET"]),
        Route(
            "/v1/recommendations/recently-viewed",
            guarded(access, "recently_viewed", recently_viewed, visitor),
            methods=["GET"],
        ),
    ]
