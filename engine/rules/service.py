"""Deciding for a visitor: reads the person and their choices from Redis, then decides (pure).

Preferences are read from Redis on every call, so a choice made a moment ago
counts on the very next decide. Who may decide for whom is the access layer's
(engine.api.access); this service decides for the ids it is given.
"""

from __future__ import annotations

import time

from engine.errors import InvalidInput
from engine.ingest.visitor_ids import is_visitor_id
from engine.profiles.segments import derive
from engine.rules.context import check_context
from engine.rules.decide import Decision, decide
from engine.rules.live import LiveRules
from engine.settings import Settings

MAX_SLOTS = 20


def check_request(body: object) -> tuple[str | None, str | None, list[str], dict]:
    if not isinstance(body, dict):
        raise InvalidInput("body: expected a JSON object with visitor_id, slots and context")
    visitor_id, user_id = body.get("visitor_id"), body.get("user_id")
    if visitor_id is not None and not is_visitor_id(visitor_id):
        raise InvalidInput("visitor_id: expected a visitor id issued by the engine (a UUID)")
    if user_id is not None and (not isinstance(user_id, str) or not 0 < len(user_id) <= 128):
        raise InvalidInput("user_id: expected text of up to 128 characters")
    slots = body.get("slots")
    if not isinstance(slots, list) or not slots or len(slots) > MAX_SLOTS or not all(isinstance(s, str) and 0 < len(s) <= 64 for s in slots):
        raise InvalidInput(f"slots: expected a list of 1 to {MAX_SLOTS} slot names")
    return visitor_id, user_id, list(dict.fromkeys(slots)), check_context(body.get("context"))


class DecideService:
    def __init__(self, settings: Settings, people, values, rules: LiveRules, model=None, weather=None) -> None:
        self.settings = settings
        self.people = people      # engine.profiles.people.People
        self.values = values      # engine.profiles.value_store.ValueStore
        self.rules = rules
        self.model = model        # engine.rules.model_slots.ModelSlots, or None
        self.weather = weather    # engine.rules.context.CachedWeather or None

    async def person_and_prefs(self, visitor_id: str | None, user_id: str | None, now_ms: int) -> tuple[dict | None, dict]:
        people = self.people
        profile_id = user_id or visitor_id
        if profile_id is None:
            return None, {}
        person = await people.person(profile_id)
        if person is None:
            return None, await people.preferences(profile_id, user_id, [visitor_id] if visitor_id else [])
        rs = self.rules.current
        model = await self.values.model()
        person = derive(person, model, rs.segments, now_ms, self.settings.interest_half_life_days)
        return person, person.get("preferences") or {}

    async def decide(self, visitor_id: str | None, user_id: str | None, slots: list[str], context: dict,
                     now_ms: int | None = None) -> dict[str, Decision]:
        decisions, model_choices, vid = await self._decide(visitor_id, user_id, slots, context, now_ms)
        if model_choices:
            await self.model.record(decisions, model_choices, vid)
        return decisions

    async def preview(self, visitor_id: str | None, user_id: str | None, slots: list[str], context: dict,
                      now_ms: int | None = None) -> dict[str, Decision]:
        """What decide answers, recording nothing (the console's preview: no impression for the model slots)."""
        return (await self._decide(visitor_id, user_id, slots, context, now_ms))[0]

    async def _decide(self, visitor_id, user_id, slots, context, now_ms) -> tuple[dict[str, Decision], dict, str]:
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
        return decide(rs, slots, person, prefs, context, vid, now_ms, chooser), model_choices, vid
