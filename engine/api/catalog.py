"""PUT /v1/catalog/items: a JSON list of {id, category, available, title?, price?} (write key)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.api.access import Access, guarded
from engine.api.body import json_body
from engine.recommend.catalog import check_items
from engine.recommend.service import RecommendService

CATALOG_MAX_BYTES = 8 << 20


def catalog_routes(access: Access, service: RecommendService) -> list[Route]:
    async def put_catalog_items(request: Request) -> JSONResponse:
        items = check_items(await json_body(request, CATALOG_MAX_BYTES))
        return JSONResponse({"stored": await service.put_catalog(items)})

    return [Route("/v1/catalog/items", guarded(access, "catalog", put_catalog_items), methods=["PUT"])]
