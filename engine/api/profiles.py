"""Profile routes: read, export, erase, preferences.

Back ends use an API key. A visitor holding their own cookie may export or erase
their own data and set their own preferences, without a key.
"""

from __future__ import annotations

import json
import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.api.http import read_body, require_api_key, require_key_or_own_cookie
from engine.errors import BadRequest, NotFound
from engine.profiles.model import interest_scores
from engine.profiles.segments import derive
from engine.rules.live import LiveRules
from engine.settings import Settings
from engine.worker import ProfileServices

PREFERENCES_MAX_BYTES = 16 * 1024
TOPIC_LIST_MAX = 50


def check_preferences(body: object) -> dict:
    """The preference document a visitor may set; errors name the field."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object of preferences")
    out = {}
    for key, value in body.items():
        if key in ("show", "hide"):
            if not isinstance(value, list) or len(value) > TOPIC_LIST_MAX or not all(isinstance(t, str) and 0 < len(t) <= 64 for t in value):
                raise BadRequest(f"{key}: expected a list of up to {TOPIC_LIST_MAX} topic names")
        elif key == "language":
            if not isinstance(value, str) or not 1 < len(value) <= 16:
                raise BadRequest("language: expected a language tag such as 'nb' or 'en-GB'")
        elif key == "do_not_personalize":
            if not isinstance(value, bool):
                raise BadRequest("do_not_personalize: expected true or false")
        elif not isinstance(key, str) or len(key) > 64 or not isinstance(value, (str, int, float, bool, type(None))):
            raise BadRequest(f"{key}: custom preferences take a short name and a plain value")
        out[key] = value
    return out


def profile_routes(settings: Settings, services: ProfileServices, rules: LiveRules) -> list[Route]:
    people = services.people

    async def public_view(person: dict) -> dict:
        """The person as the API shows it: interests decayed to now, value and segments current."""
        now_ms = int(time.time() * 1000)
        view = derive(person, await services.values.model(), rules.current.segments, now_ms, settings.interest_half_life_days)
        view["interest_scores"] = interest_scores(person, now_ms, settings.profile_config())
        return view

    async def authorize(request: Request, profile_id: str, visitor_may: bool) -> None:
        """An API key, or (where allowed) the visitor's own cookie."""
        if not visitor_may:
            require_api_key(request, settings.api_keys)
            return
        await require_key_or_own_cookie(request, settings.api_keys, people, profile_id,
                                        "a visitor may only reach their own profile")

    async def get_profile(request: Request) -> JSONResponse:
        profile_id = request.path_params["profile_id"]
        await authorize(request, profile_id, visitor_may=False)
        person = await people.person(profile_id)
        if person is None:
            raise NotFound("no such profile", {"id": profile_id})
        return JSONResponse(await public_view(person))

    async def export(request: Request) -> JSONResponse:
        profile_id = request.path_params["profile_id"]
        await authorize(request, profile_id, visitor_may=True)
        data = await people.export(profile_id)
        if data is None:
            raise NotFound("no such profile", {"id": profile_id})
        if data["person"] is not None:
            data["person"] = await public_view(data["person"])
        return JSONResponse(data, headers={"Content-Disposition": 'attachment; filename="clickstream-export.json"'})

    async def erase(request: Request) -> JSONResponse:
        profile_id = request.path_params["profile_id"]
        await authorize(request, profile_id, visitor_may=True)
        return JSONResponse(await people.erase(profile_id))

    async def put_preferences(request: Request) -> JSONResponse:
        profile_id = request.path_params["profile_id"]
        await authorize(request, profile_id, visitor_may=True)
        body = await read_body(request, PREFERENCES_MAX_BYTES)
        try:
            document = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("malformed JSON") from None
        preferences = await people.set_preferences(profile_id, check_preferences(document))
        return JSONResponse({"id": profile_id, "preferences": preferences})

    async def list_segments(request: Request) -> JSONResponse:
        require_api_key(request, settings.api_keys)
        segments = rules.current.segments
        sizes = await services.segments.sizes([s.name for s in segments])
        return JSONResponse({"segments": [
            {"name": s.name, "description": s.description, "size": sizes.get(s.name, 0),
             "condition": s.condition.describe, "score": ":".join(map(str, s.score))}
            for s in segments
        ]})

    async def segment_members(request: Request) -> JSONResponse:
        require_api_key(request, settings.api_keys)
        name = request.path_params["name"]
        if name not in {s.name for s in rules.current.segments}:
            raise NotFound("no such segment", {"name": name})
        limit = request.query_params.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise BadRequest("limit: expected a number from 1 to 1000")
        members = await services.segments.members(name, int(limit))
        return JSONResponse({"name": name, "members": [{"id": m, "score": sc} for m, sc in members]})

    return [
        Route("/v1/segments", list_segments, methods=["GET"]),
        Route("/v1/segments/{name}", segment_members, methods=["GET"]),
        Route("/v1/profiles/{profile_id}", get_profile, methods=["GET"]),
        Route("/v1/profiles/{profile_id}", erase, methods=["DELETE"]),
        Route("/v1/profiles/{profile_id}/export", export, methods=["GET"]),
        Route("/v1/profiles/{profile_id}/preferences", put_preferences, methods=["PUT"]),
    ]
