"""Withdrawn marketing consent, told to the destinations that mail people.

A person who withdraws marketing consent stays in their segments (their conditions
still hold), but a marketing destination must stop mailing them, and it heard of them
only while they had consent. After each batch, every person with a consent or identify
event in it is read again: with marketing consent they join `{prefix}:marketing`; without
it, one script takes them out of that set and, if they were in it, records an `exited`
change with reason `consent_withdrawn` for each segment they are in
(engine.profiles.segments_index). The set is the "before": a redelivered batch finds
them out of it already and tells no one twice; a replay (`emit=False`) rebuilds the set
and records nothing. Someone whose consent predates the set (no consent event since)
is not in it, so their withdrawal is not told.
"""

from __future__ import annotations

from engine.destinations.webhook import has_marketing_consent
from engine.profiles.people import People
from engine.profiles.segments_index import SegmentIndex
from engine.profiles.store import BatchResult

WATCHED = ("consent", "identify")  # identify: the consent of the person a visitor now belongs to


class ConsentWatch:
    def __init__(self, people: People, index: SegmentIndex, emit: bool = True) -> None:
        self.people = people
        self.index = index
        self.emit = emit

    async def __call__(self, events: list[dict], result: BatchResult) -> None:
        touched: dict[str, int] = {}  # person id -> the latest watched event's time
        anonymous: dict[str, dict] = {}  # visitor id -> its profile, for people not identified
        for event in events:
            if type(event) is not dict or event.get("type") not in WATCHED:
                continue
            piece = result.profiles.get(event.get("visitor_id"))
            if piece is None:
                continue  # erased, or not applied
            person_id = piece.get("user_id") or event["visitor_id"]
            if not piece.get("user_id"):
                anonymous[person_id] = piece
            touched[person_id] = max(touched.get(person_id, 0), int(event.get("ts") or 0))
        if not touched:
            return
        users = sorted(person_id for person_id in touched if person_id not in anonymous)
        # Every identified person of the batch in two round trips (as the segments step reads them), not a few each.
        people = await self.people.users(users, result.profiles) if users else {}
        given, without = [], []
        for person_id, at in sorted(touched.items()):
            person = anonymous.get(person_id) or people.get(person_id)
            if person is None:
                continue
            (given if has_marketing_consent(person) else without).append(person_id)
        # Most people without consent never gave it: one round trip finds the few who had it and withdrew,
        # and only they pay for the script that tells their segments (it finds every segment set).
        for person_id in await self.index.had_consent(without):
            await self.index.consent_withdrawn(person_id, at=touched[person_id] or None, emit=self.emit)
        await self.index.consent_given(given)
