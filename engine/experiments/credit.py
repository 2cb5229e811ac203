"""The worker's experiments step: exposures from the log, and the outcomes they earn.

A step of the profile step, after every run of the batch (ProfileProcessor.after_all,
wired in engine.wiring.batch_handlers), so the profiles it reads for consent and
identity include the batch: it takes them from the batch's result and reads only the
rest. Per event:

    server:exposure                 the person enters the experiments it names (once per event id)
    impression, content_click       counts for the experiments of the event's slot (and global)
    add_to_cart                     counts for every experiment the person is in
    purchase (not a claim)          a conversion, and its revenue
    consent withdrawing analytics   the person's exposures are forgotten: they are not counted

Outcomes count within the window of the person's latest exposure (engine.experiments.store).
Left out: events the collector marked `bot`, people without analytics consent, erased
people. The person of an outcome is the verified user its visitor id is linked to, else
the visitor, as the API bucketed them. Times are `received_at` (the engine's clock, as
the exposure's), so a visitor's wrong clock cannot move an outcome out of the window.
"""

from __future__ import annotations

from collections import defaultdict

from engine.experiments.store import ExperimentStore
from engine.profiles import changes, orders
from engine.profiles.model import has_analytics_consent
from engine.profiles.store import BatchResult

OUTCOMES = {"impression": "imp", "content_click": "clk", "add_to_cart": "atc", "purchase": "buy"}
WANTED = {*OUTCOMES, changes.EXPOSURE, changes.ERASE, "consent"}


def _when(event: dict) -> int | None:
    for field in ("received_at", "ts"):
        value = event.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _revenue(event: dict) -> float:
    order = ((event.get("props") or {}).get("order")) or {}
    value = order.get("revenue") if isinstance(order, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e12:
        return 0.0
    return float(value)


def _withdraws(event: dict) -> bool:
    consent = (event.get("props") or {}).get("consent")
    return isinstance(consent, dict) and consent.get("analytics") is False


def outcome_op(event: dict) -> dict | None:
    """The credit operation of one outcome event, or None when it is no outcome (pure)."""
    what = OUTCOMES.get(event.get("type"))
    at = _when(event)
    if what is None or at is None or not isinstance(event.get("event_id"), str):
        return None
    if what == "buy" and not orders.counts(event):
        return None  # a claimed order converts nothing (engine.profiles.orders)
    op = {"id": event["event_id"], "k": "o", "ts": at, "w": what, "rev": _revenue(event) if what == "buy" else 0}
    if what in ("imp", "clk"):
        slot = (event.get("props") or {}).get("slot")
        if not isinstance(slot, str) or not slot:
            return None
        op["slot"] = slot
    return op


def exposure_op(event: dict) -> tuple[str, dict] | None:
    try:
        props = changes.check(event)
    except Exception:
        return None  # the profile step dead-letters it
    at = _when(event)
    if at is None:
        return None
    items = [
        {"e": x["experiment"], "a": x["arm"], "p": float(x["propensity"]), "c": str(x.get("context") or "*")}
        for x in props["exposures"]
    ]
    return props["person"], {
        "id": event["event_id"],
        "k": "x",
        "ts": at,
        "pre": float(props.get("pre") or 0),
        "xs": items,
    }


class ExperimentCredit:
    def __init__(self, store: ExperimentStore, profiles, people) -> None:
        self.store = store
        self.profiles = profiles  # engine.profiles.store.ProfileStore
        self.people = people  # engine.profiles.people.People

    async def __call__(self, events: list[dict], done: BatchResult | None = None) -> None:
        """Credits the batch; `done` is the profile step's result for it (its profiles are not read again)."""
        wanted = [  # one pass: most of a batch is page views and pings, which concern no experiment
            e
            for e in events
            if type(e) is dict
            and e.get("type") in WANTED
            and e.get("bot") is not True  # as people_events
            and isinstance(e.get("visitor_id"), str)
            and (e["type"] != "consent" or _withdraws(e))
        ]
        if not wanted:
            return
        visitors = sorted({e["visitor_id"] for e in wanted})
        profiles = await self._profiles(visitors, done.profiles if done is not None else {})
        persons = await self._persons(profiles)
        erased = await self._erased([e for e in wanted if e["type"] == changes.EXPOSURE], profiles)
        ops: dict[str, list[dict]] = defaultdict(list)
        withdrawn: set[str] = set()
        for event in wanted:
            vid = event["visitor_id"]
            profile = profiles.get(vid)
            if event["type"] == changes.ERASE:
                # The profile step ran the erasure hooks at its place in the batch, before this step:
                # what came before it here must not be written after them.
                user = (event.get("props") or {}).get("user")
                for person in {
                    vid,
                    persons.get(vid, vid),
                    *([changes.user_key(user)] if isinstance(user, str) else []),
                }:
                    ops.pop(person, None)
                continue
            if event["type"] == changes.EXPOSURE:
                if profile is not None and not has_analytics_consent(profile):
                    continue
                found = exposure_op(event)
                if found is not None and not {vid, found[0]} & erased:  # an erased person enters nothing again
                    ops[found[0]].append(found[1])
                continue
            if profile is None:
                continue  # erased, or never counted (no consent before any profile)
            person = persons.get(vid, vid)
            if event["type"] == "consent":
                withdrawn.update({person, vid})
                continue
            if not has_analytics_consent(profile):
                continue
            op = outcome_op(event)
            if op is not None:
                ops[person].append(op)
        if ops:
            await self.store.apply(dict(ops))
        if withdrawn:
            await self.store.forget(sorted(withdrawn))

    async def _profiles(self, visitors: list[str], known: dict[str, dict | None]) -> dict[str, dict]:
        """The visitors' profiles as get_many reads them: the batch's own (None: erased) and the rest from Redis."""
        profiles = {vid: known[vid] for vid in visitors if known.get(vid) is not None}
        hidden = await self.profiles.hidden(list(profiles))  # an erasure requested, not yet reached in the log
        for vid in hidden:
            del profiles[vid]
        unknown = [vid for vid in visitors if vid not in known]
        if unknown:
            profiles.update(await self.profiles.get_many(unknown))
        return profiles

    async def _erased(self, exposures: list[dict], profiles: dict[str, dict]) -> set[str]:
        """The visitor ids and "u:<digest>" people of these exposures that an erasure left a tombstone for."""
        names = {e["visitor_id"] for e in exposures if profiles.get(e["visitor_id"]) is None}
        for event in exposures:
            person = (event.get("props") or {}).get("person")
            if isinstance(person, str) and person.startswith("u:"):
                names.add(person)
        if not names:
            return set()
        ordered = sorted(names)
        async with self.profiles.redis.pipeline(transaction=False) as pipe:
            for name in ordered:
                if name.startswith("u:"):
                    pipe.exists(self.people.tombstone_key(name[2:]))
                else:
                    pipe.hexists(self.profiles.profile_key(name), "t")
            found = await pipe.execute()
        return {name for name, hit in zip(ordered, found) if hit}

    async def _persons(self, profiles: dict[str, dict]) -> dict[str, str]:
        """visitor id -> "u:<digest>" for visitors linked to a verified user."""
        claimed = {
            vid: p["user_id"] for vid, p in profiles.items() if isinstance(p.get("user_id"), str) and p["user_id"]
        }
        if not claimed:
            return {}
        linked = await self.people.verified(claimed)
        return {vid: f"u:{self.people.digest(uid)}" for vid, uid in claimed.items() if linked.get(vid)}


def erasure_hook(store: ExperimentStore, digest):
    """People.erasure_hooks entry: the person's exposures, under their user and every visitor id."""

    async def forget(person_id: str, pieces: list[dict]) -> None:
        people = {person_id, *(p.get("id") for p in pieces)}
        users = {person_id, *(p.get("user_id") for p in pieces)}
        people |= {f"u:{digest(u)}" for u in users if isinstance(u, str) and u}
        await store.forget(sorted(p for p in people if isinstance(p, str) and p))

    return forget
