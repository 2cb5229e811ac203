"""Segment routes (API key, read scope): every segment with its size, a segment's members
page by page, and the export of its identified members with marketing consent.

A page ends with `next_cursor` when more members follow: pass it as `cursor` for the
next page. The cursor names the last member served (score and id), so a page never
repeats one, and members who join or leave meanwhile do not shift the pages.
"""

from __future__ import annotations

import base64
import json
import math

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.api.access import Access, guarded
from engine.api.params import int_param, text_param
from engine.api.responses import JSONResponse
from engine.errors import InvalidInput, NotFound
from engine.profiles.segment_export import FORMATS, MEDIA, export_page, render
from engine.profiles.segments_index import SegmentIndex
from engine.rules.live import LiveRules

MEMBERS_MAX = 1000


def encode_cursor(score: float, member: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([score, member]).encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> tuple[float, str] | None:
    if text is None:
        return None
    try:
        score, member = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if isinstance(score, (int, float)) and not isinstance(score, bool) and isinstance(member, str):
            if not math.isnan(float(score)):  # NaN is no score to page from (and a huge integer no float)
                return float(score), member
    except (ValueError, TypeError, OverflowError):
        pass
    raise InvalidInput("cursor: expected the next_cursor of a previous page")


def segment_routes(access: Access, index: SegmentIndex, rules: LiveRules, people=None) -> list[Route]:
    def segment_named(request: Request) -> str:
        name = request.path_params["name"]
        if name not in {s.name for s in rules.current.segments}:
            raise NotFound("no such segment", {"name": name})
        return name

    async def list_segments(request: Request) -> JSONResponse:
        segments = rules.current.segments
        sizes = await index.sizes([s.name for s in segments])
        return JSONResponse(
            {
                "segments": [
                    {
                        "name": s.name,
                        "description": s.description,
                        "size": sizes.get(s.name, 0),
                        "condition": s.condition.describe,
                        "score": ":".join(map(str, s.score)),
                    }
                    for s in segments
                ]
            }
        )

    async def segment_members(request: Request) -> JSONResponse:
        name = segment_named(request)
        limit = int_param(request, "limit", 100, 1, MEMBERS_MAX)
        after = decode_cursor(text_param(request, "cursor", 512))
        members = await index.page(name, after, limit + 1)
        more = len(members) > limit
        members = members[:limit]
        body = {
            "name": name,
            "members": [{"id": m, "score": sc} for m, sc in members],
            "next_cursor": encode_cursor(members[-1][1], members[-1][0]) if more else None,
        }
        return JSONResponse(body)

    async def segment_export(request: Request) -> Response:
        name = segment_named(request)
        form = text_param(request, "format", 8) or "jsonl"
        if form not in FORMATS:
            raise InvalidInput("format: expected csv or jsonl", {"got": form})
        limit = int_param(request, "limit", MEMBERS_MAX, 1, MEMBERS_MAX)
        after = decode_cursor(text_param(request, "cursor", 512))
        page = await export_page(index, people, name, after, limit)
        text, media = render(page.rows, form), MEDIA[form]
        headers = {"X-Members-Read": str(page.read)}
        if page.after is not None:  # a page may hold fewer rows than members read (the others are not exported)
            headers["X-Next-Cursor"] = encode_cursor(*page.after)
        return Response(text, media_type=media, headers=headers)

    return [
        Route("/v1/segments", guarded(access, "segments", list_segments), methods=["GET"]),
        Route("/v1/segments/{name}", guarded(access, "segments", segment_members), methods=["GET"]),
        Route("/v1/segments/{name}/export", guarded(access, "segment_export", segment_export), methods=["GET"]),
    ]
