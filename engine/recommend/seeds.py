"""What a person (engine.profiles.people.People.person) gives a list, pure: its seeds, its cart,
its consent, and its recently viewed items."""

from __future__ import annotations


def seeds_of(person: dict, limit: int) -> tuple[list[str], list[str]]:
    """(bought, viewed) seed items of a person, newest first; an anonymous visitor's views are this session's."""
    bought = [item for item, _ in sorted(person["commerce"]["items"].items(), key=lambda p: (-p[1], p[0]))]
    viewed = sorted(person.get("viewed") or [], key=lambda v: -v["ts"])
    if not person.get("user_id"):
        start = (person.get("sessions") or {}).get("last_start")
        viewed = [v for v in viewed if start is not None and v["ts"] >= start]
    return bought[:limit], [v["id"] for v in viewed][:limit]


def bought_items(person: dict | None) -> list[str]:
    """Everything the person bought (unlimited: every one of them is filtered out of a list)."""
    return list(person["commerce"]["items"]) if person else []


def cart_of(person: dict | None, limit: int) -> list[str]:
    """The items in a person's cart, in the order they went in."""
    return list((person or {}).get("commerce", {}).get("cart") or {})[:limit]


def wants_personalization(person: dict) -> bool:
    if (person.get("preferences") or {}).get("do_not_personalize") is True:
        return False
    return (person.get("consent") or {}).get("personalization", True) is not False


def recently_viewed(person: dict, k: int) -> list[dict]:
    """What the person viewed on any of their devices, newest first, without what they bought."""
    bought = set(person["commerce"]["items"])
    viewed = sorted(person.get("viewed") or [], key=lambda v: (-v["ts"], v["id"]))
    out = []
    for v in viewed:
        if v["id"] not in bought and all(v["id"] != seen["id"] for seen in out):
            entry = {"id": v["id"], "viewed_at": v["ts"]}
            if v.get("category"):
                entry["category"] = v["category"]
            out.append(entry)
            if len(out) >= k:
                break
    return out
