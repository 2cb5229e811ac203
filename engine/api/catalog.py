"""PUT /v1/catalog/items: a JSON list of {id, category, available, title?, price?} (write key).

The items go on the log first (server:catalog, engine.profiles.changes), so a replay
restores them, then into Redis at once; the worker writes the same bytes again.
"""

from __future__ import annotations

import time
import uuid
from typing import Awaitable, Callable

from starlette.requests import Request
from starlette.routing import Route

from engine.api.access import Access, guarded
from engine.api.body import json_body
from engine.api.responses import JSONResponse
from engine.profiles import changes
from engine.recommend.catalog import check_items
from engine.recommend.service import RecommendService

CATALOG_MAX_BYTES = 8 << 20


def catalog_routes(
    access: Access, service: RecommendService, publish: Callable[[list[dict]], Awaitable[None]] | None = None
) -> list[Route]:
    """`publish`: the change log's (engine.wiring passes it; without one, Redis alone, as in unit tests)."""

    async def put_catalog_items(request: Request) -> JSONResponse:
        items = check_items(await json_body(request, CATALOG_MAX_BYTES))
        if publish is not None:
            await publish(
                changes.catalog(
                    [dict(id=item.id, **item.to_json()) for item in items],
                    int(time.time() * 1000),
                    lambda: uuid.uuid4().hex,
                )
            )
        return JSONResponse({"stored": await service.put_catalog(items)})

    return [Route("/v1/catalog/items", guarded(access, "catalog", put_catalog_items), methods=["PUT"])]
