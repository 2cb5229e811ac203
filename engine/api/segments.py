"""Segment routes: every segment with its size, and a segment's top members (API key)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from engine.api.access import Access, guarded
from engine.api.params import int_param
from engine.api.responses import JSONResponse
from engine.errors import NotFound
from engine.profiles.segments_index import SegmentIndex
from engine.rules.live import LiveRules

MEMBERS_MAX = 1000


def segment_routes(access: Access, index: SegmentIndex, rules: LiveRules) -> list[Route]:
    async def list_segments(request: Request) -> JSONResponse:
        segments = rules.current.segments
        sizes = await index.sizes([s.name for s in segments])
        return JSONResponse({"segments": [
            {"name": s.name, "description": s.description, "size": sizes.get(s.name, 0),
             "condition": s.condition.describe, "score": ":".join(map(str, s.score))}
            for s in segments
        ]})

    async def segment_members(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        if name not in {s.name for s in rules.current.segments}:
            raise NotFound("no such segment", {"name": name})
        limit = int_param(request, "limit", 100, 1, MEMBERS_MAX)
        members = await index.members(name, limit)
        return JSONResponse({"name": name, "members": [{"id": m, "score": sc} for m, sc in members]})

    return [
        Route("/v1/segments", guarded(access, "segments", list_segments), methods=["GET"]),
        Route("/v1/segments/{name}", guarded(access, "segments", segment_members), methods=["GET"]),
    ]
