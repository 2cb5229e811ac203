"""Profile routes: read, export, erase, preferences.

Back ends use an API key; a visitor holding their own cookie may export or erase
their own data and set their own preferences (engine.api.access has the rules).
Erasures and preferences go on the log before Redis shows them (engine.profiles.people).
"""

from __future__ import annotations

import time
from typing import Callable

from starlette.requests import Request
from starlette.routing import Route

from engine.api.access import Access, guarded, path_param
from engine.api.body import json_body
from engine.api.responses import JSONResponse
from engine.errors import InvalidInput, NotFound
from engine.ingest.schema import USER_ID_MAX  # the events' bound on user_id; a visitor id is shorter
from engine.profiles.model import ProfileConfig, interest_scores
from engine.profiles.people import People
from engine.profiles.preferences import PREFERENCES_MAX_BYTES, check_preferences
from engine.profiles.segments import derive
from engine.profiles.value_store import ValueStore
from engine.rules.live import LiveRules


def person_view(values: ValueStore, rules: LiveRules, config: ProfileConfig) -> Callable:
    async def view(person: dict) -> dict:
        """The person as the API shows it: interests decayed to now, value and segments current."""
        now_ms = int(time.time() * 1000)
        shown = derive(person, await values.model(), rules.current.segments, now_ms, config.interest_half_life_days)
        shown["interest_scores"] = interest_scores(person, now_ms, config)
        return shown

    return view


def without_claims(export: dict) -> dict:
    """An export as a cookie's holder sees it: no user id a browser merely claimed (only key holders see those)."""

    def strip(profile: dict | None) -> dict | None:
        return None if profile is None else {k: v for k, v in profile.items() if k != "claimed_user_id"}

    return dict(
        export,
        person=strip(export["person"]),
        profiles={vid: strip(piece) for vid, piece in export["profiles"].items()},
    )


def profile_routes(access: Access, people: People, public_view: Callable) -> list[Route]:
    async def get_profile(request: Request) -> JSONResponse:
        profile_id = request.path_params["profile_id"]
        person = await people.person(profile_id)
        if person is None:
            raise NotFound("no such profile", {"id": profile_id})
        return JSONResponse(await public_view(person))

    async def export(request: Request) -> JSONResponse:
        profile_id = request.path_params["profile_id"]
        data = await people.export(profile_id)
        if data is None:
            raise NotFound("no such profile", {"id": profile_id})
        if data["person"] is not None:
            data["person"] = await public_view(data["person"])
        if not request.state.caller.trusted:
            data = without_claims(data)
        return JSONResponse(data, headers={"Content-Disposition": 'attachment; filename="clickstream-export.json"'})

    async def erase(request: Request) -> JSONResponse:
        return JSONResponse(await people.request_erasure(request.path_params["profile_id"]))

    async def put_preferences(request: Request) -> JSONResponse:
        profile_id = request.path_params["profile_id"]
        if len(profile_id) > USER_ID_MAX:
            raise InvalidInput(f"id: longer than {USER_ID_MAX} characters (a visitor id or a user id)")
        document = check_preferences(await json_body(request, PREFERENCES_MAX_BYTES))
        preferences = await people.set_preferences(profile_id, document)
        return JSONResponse({"id": profile_id, "preferences": preferences})

    profile_id = path_param("profile_id")
    return [
        Route("/v1/profiles/{profile_id}", guarded(access, "profile", get_profile), methods=["GET"]),
        Route("/v1/profiles/{profile_id}", guarded(access, "erase", erase, profile_id), methods=["DELETE"]),
        Route("/v1/profiles/{profile_id}/export", guarded(access, "export", export, profile_id), methods=["GET"]),
        Route(
            "/v1/profiles/{profile_id}/preferences",
            guarded(access, "preferences", put_preferences, profile_id),
            methods=["PUT"],
        ),
    ]
