"""The shape of a rule file, declared: what each part may hold, checked by engine.rules.shapes.

These describe the YAML as written; engine.rules.ruleset compiles them into the
rule set the engine serves (conditions into closures, dates into milliseconds).
Checks within one part are declared here too (`__post_init__`: end after start,
weights that add up); checks across parts (a default among its slot's content) are
done there. A default that the compiled form also has (a model's min_impressions)
is left UNSET here, so it is written once.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal

from msgspec import UNSET, Meta, UnsetType

from engine.rules.shapes import Shape

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
Name = Annotated[str, Meta(pattern=NAME, description="a name of letters, digits, _ . : - (up to 64)")]
Text = Annotated[str, Meta(description="text")]
ContentId = Annotated[str, Meta(description="a content id")]
Number = float  # msgspec takes whole numbers for floats, never true/false


class Variant(Shape):
    what: ClassVar[str] = "variant"
    expects: ClassVar[str] = "{content: ID, weight: N}"
    content: ContentId
    weight: Annotated[Number, Meta(ge=0, le=10**6, description="a number from 0 to 1000000")] = 1.0


class Choice(Shape):
    """What `then` does to one slot (or just a content id, written as text)."""

    what: ClassVar[str] = "then"
    expects: ClassVar[str] = "a content id, or variants with weights"
    content: ContentId | None = None
    variants: Annotated[list[Variant], Meta(min_length=1, description="a list of {content: ID, weight: N}")] | None = (
        None
    )
    control: Annotated[Number, Meta(ge=0, le=100, description="a share of visitors from 0 to 100 (percent)")] = 0.0

    def __post_init__(self) -> None:
        if (self.content is None) == (self.variants is None):
            raise ValueError("expected either content or a list of variants")
        if self.variants is not None and sum(v.weight for v in self.variants) <= 0:
            raise ValueError("the variant weights add up to 0")


WHEN = "a date or time such as 2026-12-01 or 2026-12-01T08:00:00Z"


def timestamp(text: str) -> int:
    """Milliseconds of an ISO date or time written in a rule file; UTC unless it says otherwise."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


class Schedule(Shape):
    what: ClassVar[str] = "schedule"
    expects: ClassVar[str] = "start and/or end"
    start: Annotated[str, Meta(description=WHEN)] | None = None
    end: Annotated[str, Meta(description=WHEN)] | None = None

    def __post_init__(self) -> None:
        moments = []
        for key in ("start", "end"):
            try:
                moments.append(timestamp(getattr(self, key)) if getattr(self, key) is not None else None)
            except (ValueError, OverflowError, OSError):
                raise ValueError(f"{key}: expected {WHEN}") from None
        if None not in moments and moments[1] <= moments[0]:
            raise ValueError("end is not after start")


class Rule(Shape, kw_only=True):
    what: ClassVar[str] = "rule"
    expects: ClassVar[str] = "a mapping with id, when and then"
    id: Name
    description: Text = ""
    priority: Annotated[int, Meta(ge=-(10**6), le=10**6, description="a whole number (higher wins)")] = 0
    enabled: Annotated[bool, Meta(description="true or false")] = True
    schedule: Schedule | None = None
    when: Annotated[Any, Meta(description="a condition tree, or always")]
    then: Annotated[dict[str, Any], Meta(min_length=1, description="a mapping of slot name to content or variants")]


class Count(Shape):
    what: ClassVar[str] = "count"
    expects: ClassVar[str] = "{event, days, category?}"
    event: Annotated[str, Meta(min_length=1, description="an event type such as add_to_cart")]
    days: Annotated[int, Meta(ge=1, le=90, description="a whole number of days from 1 to 90")]
    category: str | None = None


class ScoreBy(Shape):
    what: ClassVar[str] = "score"
    expects: ClassVar[str] = "{interest: CATEGORY} or {count: {event, days, category?}}"
    interest: Annotated[str, Meta(min_length=1, description="a category")] | None = None
    count: Count | None = None

    def __post_init__(self) -> None:
        if (self.interest is None) == (self.count is None):
            raise ValueError("score: expected exactly one of interest, count")


SCORES = ("clv", "revenue", "orders", "sessions")


class Segment(Shape, kw_only=True):
    what: ClassVar[str] = "segment"
    expects: ClassVar[str] = "a mapping with name, when and score"
    name: Name
    description: Text = ""
    when: Annotated[Any, Meta(description="a condition tree, or always")]
    score: (
        Annotated[
            Literal[SCORES] | ScoreBy,
            Meta(
                description="clv, revenue, orders, sessions, {interest: CATEGORY} or {count: {event, days, category?}}"
            ),
        ]
        | None
    ) = None


CHANGES = ("entered", "exited")
ALERTS = ("back_in_stock", "price_drop")
PURPOSES = ("marketing", "analytics")


class Destination(Shape, kw_only=True):
    """A webhook that hears segment changes and alerts (engine.destinations)."""

    what: ClassVar[str] = "destination"
    expects: ClassVar[str] = "a mapping with name, url, secret and segments and/or alerts"
    name: Name
    url: Annotated[str, Meta(pattern=r"^https?://[^\s]+$", max_length=2048, description="an http(s) URL")]
    secret: Annotated[str, Meta(min_length=16, description="a signing secret of at least 16 characters")]
    segments: Annotated[list[Name], Meta(description="a list of segment names")] = ()
    events: Annotated[list[Literal[CHANGES]], Meta(min_length=1, description="a list of entered, exited")] = CHANGES
    alerts: Annotated[list[Literal[ALERTS]], Meta(description="a list of alert kinds: back_in_stock, price_drop")] = ()
    purpose: Annotated[
        Literal[PURPOSES], Meta(description="marketing (only people with marketing consent) or analytics")
    ] = "marketing"

    def __post_init__(self) -> None:
        if not self.segments and not self.alerts:
            raise ValueError("a destination needs segments and/or alerts")


class Content(Shape):
    what: ClassVar[str] = "content"
    expects: ClassVar[str] = "text or a mapping with html"
    html: Annotated[str, Meta(description="the HTML to show, as text (content needs html or text)")] | None = None
    text: Annotated[str, Meta(description="the text to show (content needs html or text)")] | None = None
    topics: Annotated[list[str] | str, Meta(description="a list of topic names")] = ()
    language: Annotated[str, Meta(description="a language tag such as nb or en")] | None = None
    data: Any = None

    def __post_init__(self) -> None:
        if self.html is None and self.text is None:
            raise ValueError("needs html (or text)")


class Model(Shape):
    what: ClassVar[str] = "model"
    expects: ClassVar[str] = "a mapping with variants"
    variants: Annotated[list[ContentId], Meta(min_length=2, description="a list of at least two content ids")]
    min_impressions: (
        Annotated[int, Meta(ge=0, le=10**9, description="a whole number from 0 to 1000000000")] | UnsetType
    ) = UNSET
    exploration: Annotated[Number, Meta(ge=0, le=1, description="a number from 0 to 1")] | UnsetType = UNSET
    holdout: (
        Annotated[Number, Meta(ge=0, le=50, description="a share of visitors from 0 to 50 (percent)")] | UnsetType
    ) = UNSET
    reward: Literal["click", "add_to_cart", "purchase", "revenue"] | UnsetType = UNSET
    reward_cap: Annotated[Number, Meta(gt=0, le=10**9, description="a positive amount")] | UnsetType = UNSET


class Slot(Shape):
    what: ClassVar[str] = "slot"
    expects: ClassVar[str] = "default and content"
    default: ContentId
    content: Annotated[dict[str, Any], Meta(min_length=1, description="a mapping of content ids to content")]
    model: Model | None = None


class File(Shape):
    what: ClassVar[str] = "top-level"
    expects: ClassVar[str] = "a mapping with rules, slots, segments and/or destinations"
    rules: Annotated[list[Any], Meta(description="a list of rules")] = ()
    slots: Annotated[dict[Any, Any], Meta(description="a mapping of slot name to its default and content")] = {}
    segments: Annotated[list[Any], Meta(description="a list of segments")] = ()
    destinations: Annotated[list[Any], Meta(description="a list of destinations (webhooks)")] = ()
