"""POST /v1/decide: reads the person and their choices from Redis, then decides (pure).

Preferences are read from Redis on every call, so a choice made a moment ago
counts on the very next decide. The tracker calls without an API key: then the
person is the one of the visitor's own cookie, so nobody can render another
visitor's profile (their first name, say) into a page. A back end with an API
key may name any visitor_id and user_id.
"""

from __future__ import annotations

import json
import time

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.api.http import _VISITOR_ID, bearer_token, read_body, require_api_key, visitor_cookie
from engine.errors import BadRequest, Forbidden, NotFound
from engine.profiles.segments import derive
from engine.rules.context import build_context, check_context
from engine.rules.decide import Decision, decide
from engine.rules.live import LiveRules
from engine.settings import Settings

DECIDE_MAX_BYTES = 32 * 1024
MAX_SLOTS = 20


def check_request(body: object) -> tuple[str | None, str | None, list[str], dict]:
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object with visitor_id, slots and context")
    visitor_id, user_id = body.get("visitor_id"), body.get("user_id")
    if visitor_id is not None and (not isinstance(visitor_id, str) or not _VISITOR_ID.fullmatch(visitor_id)):
        raise BadRequest("visitor_id: expected up to 64 letters, digits, _ . -")
    if user_id is not None and (not isinstance(user_id, str) or not 0 < len(user_id) <= 128):
        raise BadRequest("user_id: expected text of up to 128 characters")
    slots = body.get("slots")
    if not isinstance(slots, list) or not slots or len(slots) > MAX_SLOTS or not all(isinstance(s, str) and 0 < len(s) <= 64 for s in slots):
        raise BadRequest(f"slots: expected a list of 1 to {MAX_SLOTS} slot names")
    return visitor_id, user_id, list(dict.fromkeys(slots)), check_context(body.get("context"))


class DecideService:
    def __init__(self, settings: Settings, profiles, rules: LiveRules, model=None, weather=None) -> None:
        self.settings = settings
        self.profiles = profiles  # engine.worker.ProfileServices
        self.rules = rules
        self.model = model        # engine.rules.model_slots.ModelSlots, or None
        self.weather = weather    # engine.rules.context.CachedWeather or None

    async def person_and_prefs(self, visitor_id: str | None, user_id: str | None, now_ms: int) -> tuple[dict | None, dict]:
        people = self.profiles.people
        profile_id = user_id or visitor_id
        if profile_id is None:
            return None, {}
        person = await people.person(profile_id)
        if person is None:
            return None, await people.preferences(profile_id, user_id, [visitor_id] if visitor_id else [])
        rs = self.rules.current
        model = await self.profiles.values.model()
        person = derive(person, model, rs.segments, now_ms, self.settings.interest_half_life_days)
        return person, person.get("preferences") or {}

    async def decide(self, visitor_id: str | None, user_id: str | None, slots: list[str], context: dict,
                     now_ms: int | None = None) -> dict[str, Decision]:
        now_ms = now_ms or int(time.time() * 1000)
        person, prefs = await self.person_and_prefs(visitor_id, user_id, now_ms)
        if self.weather is not None and "weather" not in context:
            weather = await self.weather.weather(context)
            if weather:
                context["weather"] = weather
        rs = self.rules.current
        vid = visitor_id or user_id or ""
        model_choices = await self.model.choose(rs, slots, person, prefs, context, vid, now_ms) if self.model else {}
        chooser = (lambda slot, p, c, v: model_choices.get(slot.name)) if model_choices else None
        decisions = decide(rs, slots, person, prefs, context, vid, now_ms, chooser)
        if model_choices:
            await self.model.record(decisions, model_choices, vid)
        return decisions


def decide_routes(settings: Settings, service: DecideService) -> list[Route]:
    async def post_decide(request: Request) -> JSONResponse:
        body = await read_body(request, DECIDE_MAX_BYTES)
        try:
            document = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("malformed JSON") from None
        visitor_id, user_id, slots, site_context = check_request(document)
        if bearer_token(request) is not None:
            require_api_key(request, settings.api_keys)
        else:
            cookie = visitor_cookie(request)
            if visitor_id is not None and cookie is not None and visitor_id != cookie:
                raise Forbidden("visitor_id: a visitor may only decide for their own cookie")
            if user_id is not None:
                raise Forbidden("user_id: needs an API key (the tracker's identity comes from the cookie)")
            visitor_id = cookie if cookie is not None else visitor_id
        context = build_context(site_context, request.headers, settings.country_header)
        decisions = await service.decide(visitor_id, user_id, slots, context)
        return JSONResponse({"visitor_id": visitor_id, "decisions": {slot: d.to_json() for slot, d in decisions.items()}})

    async def slot_report(request: Request) -> JSONResponse:
        require_api_key(request, settings.api_keys)
        name = request.path_params["slot"]
        report = await service.model.report(service.rules.current, name) if service.model else None
        if report is None:
            raise NotFound("no model-driven slot of that name", {"slot": name})
        return JSONResponse(report)

    return [
        Route("/v1/decide", post_decide, methods=["POST"]),
        Route("/v1/slots/{slot}/report", slot_report, methods=["GET"]),
    ]
