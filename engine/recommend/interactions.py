"""The training set of the ALS model, pure: events in topic order -> person x item confidences.

A purchase weighs more than an add to cart, which weighs more than a view
(`AlsParams.weights`, DEFAULT_WEIGHTS). A person is the user id where a visitor
logged in (first user per cookie, as the profiles do), else the visitor id. Visitors
without analytics consent at the time of an event are left out here; erased visitors
are left out by the training job (engine.recommend.als_retrain), which knows the profiles.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from engine.profiles import orders
from engine.profiles.user_ids import is_identity_id
from engine.recommend import cooccur

DEFAULT_WEIGHTS = {"purchase": 5.0, "add_to_cart": 3.0, "product_view": 1.0}


class Interactions:
    """Person x item confidences from events in topic order.

    Consent follows the profile model: an event counts only while the visitor's
    analytics consent (default `consent_default`) holds. Trust follows the worker:
    bots' events count nothing; only a verified identify makes a visitor one user's;
    a browser's purchase counts as `untrusted_orders` says (engine.profiles.orders),
    once per visitor and order id, and gives way to the back end's order of the same
    id; a back end's order id counts once, whatever event ids carried it.
    """

    def __init__(
        self,
        weights: dict[str, float] | None = None,
        consent_default: bool = True,
        blocked_user_ids: Iterable[str] = (),
        untrusted_orders: str = "until-trusted",
    ) -> None:
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.consent_default = consent_default
        self.blocked = tuple(blocked_user_ids)
        self.untrusted_orders = untrusted_orders
        self.trusted_seen = False
        self.cells: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))  # visitor -> item -> weight
        self.user_of: dict[str, str] = {}
        self.consent: dict[str, bool] = {}
        self.orders: set[str] = set()  # trusted order ids
        self.browser_orders: dict[str, list[str]] = {}  # 'visitor:order id' -> items, until a trusted order replaces it
        self.events = 0

    def add(self, event: dict) -> None:
        self.events += 1
        kind, vid = event.get("type"), event.get("visitor_id")
        if not vid or event.get("bot") is True:
            return
        props = event.get("props") or {}
        if kind == "consent":
            analytics = (props.get("consent") or {}).get("analytics")
            if isinstance(analytics, bool):
                self.consent[vid] = analytics
            return
        if not self.consent.get(vid, self.consent_default):
            return
        user_id = event.get("user_id")
        if (
            kind == "identify"
            and event.get("verified") is True
            and vid not in self.user_of
            and is_identity_id(user_id, self.blocked)
        ):
            self.user_of[vid] = user_id  # the first user to log in on a cookie owns it
        weight = self.weights.get(kind)
        if not weight:
            return
        if kind == "purchase":
            order = props.get("order") or {}
            self.trusted_seen = orders.mark_claims([event], self.untrusted_orders, self.trusted_seen)
            if order.get("id") is None or not orders.counts(event) or str(order["id"]) in self.orders:
                return
            items = cooccur.order_items(
                str(line.get("id", "")) for line in order.get("items") or [] if isinstance(line, dict)
            )
            copy = f"{vid}:{order['id']}"
            if event.get("trusted") is not True:
                if copy in self.browser_orders:
                    return
                self.browser_orders[copy] = items
            else:
                self.orders.add(str(order["id"]))
                for item in self.browser_orders.pop(copy, ()):  # the browser's copy gives way
                    self.cells[vid][item] -= weight
        else:
            product = props.get("product") or {}
            items = [str(product["id"])] if product.get("id") is not None else []
        row = self.cells[vid]
        for item in items:
            row[item] += weight

    def visitors(self) -> list[str]:
        return list(self.cells)

    def rows(self, skip: set[str] = frozenset()) -> Iterable[tuple[str, str, float]]:
        """(person, item, weight); visitors of one user become one person."""
        for vid, items in self.cells.items():
            if vid in skip:
                continue
            person = self.user_of.get(vid, vid)
            for item, weight in items.items():
                if weight > 0:  # a browser's order replaced by the back end's leaves zeros
                    yield person, item, weight
