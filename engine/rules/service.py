"""Deciding for a visitor: reads the person and their choices from Redis, then decides (pure).

Preferences are read from Redis on every call, so a choice made a moment ago
counts on the very next decide. Who may decide for whom is the access layer's
(engine.api.access); this service decides for the ids it is given.
"""

from __future__ import annotations

import logging
import time
import uuid

from engine.errors import InvalidInput, Unavailable
from engine.experiments import exposures as xp
from engine.metrics import EXPOSURES_UNLOGGED
from engine.profiles import changes
from engine.ingest.visitor_ids import is_visitor_id
from engine.profiles.segments import derive
from engine.rules.context import check_context
from engine.rules.decide import Decision, decide
from engine.rules.live import LiveRules
from engine.settings import Settings

MAX_SLOTS = 20

log = logging.getLogger("engine.rules")


def check_request(body: object) -> tuple[str | None, str | None, list[str], dict]:
    if not isinstance(body, dict):
        raise InvalidInput("body: expected a JSON object with visitor_id, slots and context")
    visitor_id, user_id = body.get("visitor_id"), body.get("user_id")
    if visitor_id is not None and not is_visitor_id(visitor_id):
        raise InvalidInput("visitor_id: expected a visitor id issued by the engine (a UUID)")
    if user_id is not None and (not isinstance(user_id, str) or not 0 < len(user_id) <= 128):
        raise InvalidInput("user_id: expected text of up to 128 characters")
    slots = body.get("slots")
    if (
        not isinstance(slots, list)
        or not slots
        or len(slots) > MAX_SLOTS
        or not all(isinstance(s, str) and 0 < len(s) <= 64 for s in slots)
    ):
        raise InvalidInput(f"slots: expected a list of 1 to {MAX_SLOTS} slot names")
    return visitor_id, user_id, list(dict.fromkeys(slots)), check_context(body.get("context"))


class DecideService:
    def __init__(self, settings: Settings, people, values, rules: LiveRules, model=None, weather=None) -> None:
        self.settings = settings
        self.people = people  # engine.profiles.people.People
        self.values = values  # engine.profiles.value_store.ValueStore
        self.rules = rules
        self.model = model  # engine.rules.model_slots.ModelSlots, or None
        self.weather = weather  # engine.rules.context.CachedWeather or None
        self.publish = None  # puts exposures on the log (engine.profiles.changelog.ChangeLog.publish)
        self.unlogged = 0  # decisions served while the log could not take their exposures

    def person_key(self, person: dict | None, visitor_id: str | None, user_id: str | None) -> str:
        """Who is bucketed: the verified user (a linked person, or a key's user_id), else the visitor."""
        if person is not None and person.get("id") and person["id"] not in (person.get("visitor_ids") or ()):
            return xp.person_key(self.people.digest(person["id"]), None)
        if user_id:
            return xp.person_key(self.people.digest(user_id), None)
        return xp.person_key(None, visitor_id)

    def held_out(self, person_key: str) -> bool:
        return xp.in_global_holdout(person_key, self.settings.global_holdout)

    async def person_and_prefs(
        self, visitor_id: str | None, user_id: str | None, now_ms: int
    ) -> tuple[dict | None, dict]:
        people = self.people
        profile_id = user_id or visitor_id
        if profile_id is None:
            return None, {}
        person = await people.person(profile_id)
        if person is None:
            return None, await people.preferences(profile_id, user_id, [visitor_id] if visitor_id else [])
        return await self.derived(person, now_ms)

    async def derived(self, person: dict, now_ms: int) -> tuple[dict, dict]:
        """The person with value and segments as of now, and their choices."""
        model = await self.values.model()
        person = derive(person, model, self.rules.current.segments, now_ms, self.settings.interest_half_life_days)
        return person, person.get("preferences") or {}

    async def decide(
        self, visitor_id: str | None, user_id: str | None, slots: list[str], context: dict, now_ms: int | None = None
    ) -> dict[str, Decision]:
        decisions, model_choices, vid, (rs, held_out, who, person, now_ms) = await self._decide(
            visitor_id, user_id, slots, context, now_ms
        )
        if model_choices:
            await self.model.record(decisions, model_choices, vid)
        await self._log_exposures(rs, decisions, model_choices, held_out, vid, who, person, now_ms)
        return decisions

    async def preview(
        self,
        visitor_id: str | None,
        user_id: str | None,
        slots: list[str],
        context: dict,
        now_ms: int | None = None,
        person: dict | None = None,
    ) -> dict[str, Decision]:
        """What decide answers, recording nothing (the console's preview: no impression for the model slots).

        `person`: a whole profile to decide for instead of the stored one (engine.profiles.pasted);
        it is derived and bucketed as a stored one is."""
        return (await self._decide(visitor_id, user_id, slots, context, now_ms, person))[0]

    async def _decide(
        self, visitor_id, user_id, slots, context, now_ms, given=None
    ) -> tuple[dict[str, Decision], dict, str, tuple]:
        """(decisions, the model's choices, the visitor, what the exposures are logged with)."""
        now_ms = now_ms or int(time.time() * 1000)
        if given is None:
            person, prefs = await self.person_and_prefs(visitor_id, user_id, now_ms)
        else:
            person, prefs = await self.derived(given, now_ms)
        if self.weather is not None and "weather" not in context:
            weather = await self.weather.weather(context)
            if weather:
                context["weather"] = weather
        rs = self.rules.current
        vid = visitor_id or user_id or ""
        who = self.person_key(person, visitor_id, user_id)
        held_out = self.held_out(who)
        model_choices = {}
        if self.model and not held_out:
            model_choices = await self.model.choose(rs, slots, person, prefs, context, who, now_ms)
        chooser = (lambda slot, p, c, v: model_choices.get(slot.name)) if model_choices else None
        decisions = decide(rs, slots, person, prefs, context, who, now_ms, chooser, held_out=held_out)
        return decisions, model_choices, vid, (rs, held_out, who, person, now_ms)

    async def _log_exposures(self, rs, decisions, model_choices, held_out, vid, who, person, now_ms) -> None:
        """On the log before the answer goes out, so the visitor's impressions come after it in their partition.

        A broker out of reach does not stop decisions: they are served unmeasured, and counted."""
        items = xp.exposures(rs, decisions, model_choices, held_out, self.settings.global_holdout)
        if not items or self.publish is None:
            return
        event = changes.exposure(vid or who, who, items, xp.pre_activity(person), now_ms, lambda: uuid.uuid4().hex)
        try:
            await self.publish([event])
        except Unavailable:
            self.unlogged += len(items)
            EXPOSURES_UNLOGGED.inc(len(items))
            log.warning("exposures of %d decisions not logged: the event log is unavailable", len(items))
