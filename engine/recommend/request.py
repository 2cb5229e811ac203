"""One list asked for, as a value: what the routes and the console ask the service for.

The service passes it along instead of the list's arguments, and turns it into the
`Filters` of engine.recommend.ranking once it knows what to exclude.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from engine.recommend.ranking import Filters


@dataclass(frozen=True)
class ListRequest:
    """ "Also bought" with `item` (for `visitor_id`, when given), else "for you" of `visitor_id`."""

    item: str | None = None
    visitor_id: str | None = None
    k: int = 10
    category: str | None = None  # only items of this category
    max_per_category: int | None = None  # None: RecommendConfig.max_per_category; 0: no cap

    def filters(self, exclude: Iterable[str], default_cap: int) -> Filters:
        cap = default_cap if self.max_per_category is None else self.max_per_category
        return Filters(self.k, frozenset(exclude), self.category, cap)
