"""GET /v1/profiles/{id}: the profile of a visitor id (back ends, with an API key)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.api.http import require_api_key
from engine.errors import NotFound
from engine.profiles.store import ProfileStore
from engine.settings import Settings


def profile_routes(settings: Settings, store: ProfileStore) -> list[Route]:
    async def get_profile(request: Request) -> JSONResponse:
        require_api_key(request, settings.api_keys)
        profile_id = request.path_params["profile_id"]
        profile = await store.get(profile_id)
        if profile is None:
            raise NotFound("no such profile", {"id": profile_id})
        return JSONResponse(profile)

    return [Route("/v1/profiles/{profile_id}", get_profile, methods=["GET"])]
