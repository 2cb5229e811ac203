"""What each slot shows: pure code over the rule set, the person, their choices and the context.

Per slot, the first source that has an answer decides:

0. consent: a person who withheld personalization consent (consent.personalization
   false) gets the default content, filled without their profile: no rule, no model,
   no token from their traits, and the reason says so. Likewise for a visitor who
   chose "do_not_personalize".
1. preference: the visitor's own choice. "do_not_personalize" means the default only;
   a preference named after the slot picks that content; `show` topics pick the
   first content of the slot with such a topic.
2. rule: the highest-priority live rule whose condition matches. Its A/B split is a
   stable hash of visitor and rule, so a visitor keeps their variant; the control
   share sees the default.
3. model: a model-driven slot asks the bandit (engine.rules.bandit).
4. default: the slot's default content.

Content whose topic the visitor hid, or in another language than the one they
chose, is never shown: that rule or model choice is passed over. Every decision says where it came from and why.
"""

from __future__ import annotations

import hashlib
import html
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from engine.rules.ruleset import Content, Rule, RuleSet, Slot

TOKEN = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]{0,63})(?:\|([^{}]{0,200}))?\}")
BUCKETS = 10_000


@dataclass
class Decision:
    slot: str
    content_id: str | None
    content: str | None
    variant: str | None
    source: str
    reason: str
    decision_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    rule_id: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {
            "content": self.content,
            "variant": self.variant,
            "source": self.source,
            "reason": self.reason,
            "decision_id": self.decision_id,
            "content_id": self.content_id,
        }
        if self.rule_id:
            out["rule_id"] = self.rule_id
        out.update(self.extra)
        return out


def _lookup(name: str, person: dict | None, context: dict) -> Any:
    if person:
        traits = person.get("traits") or {}
        if name in traits:
            return traits[name]
    if name in context:
        return context[name]
    data: Any = person or {}
    for part in name.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def render(template: str, person: dict | None, context: dict) -> str:
    """Fills {token|fallback} from the person's traits, the context or profile fields.

    Values and fallbacks are HTML-escaped and never evaluated; the template itself
    is the marketer's own markup.
    """

    def fill(match: re.Match) -> str:
        value = _lookup(match.group(1), person, context)
        if value is None or value == "" or isinstance(value, (dict, list)):
            value = match.group(2) or ""
        return html.escape(str(value), quote=True)

    return TOKEN.sub(fill, template)


def bucket(visitor_id: str, salt: str) -> int:
    """A stable number in [0, BUCKETS) for this visitor and this rule (or slot)."""
    digest = hashlib.blake2b(f"{salt}\x00{visitor_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def _pick_variant(rule: Rule, slot: str, visitor_id: str):
    """(variant, is_control) for this visitor: control first, then the weighted split."""
    choice = next(c for c in rule.choices if c.slot == slot)
    b = bucket(visitor_id, f"{rule.id}:{slot}")
    control_buckets = int(round(choice.control * BUCKETS / 100))
    if b < control_buckets:
        return None, True
    total = sum(v.weight for v in choice.variants)
    point = (b - control_buckets) / max(BUCKETS - control_buckets, 1) * total
    for variant in choice.variants:
        if point < variant.weight:
            return variant, False
        point -= variant.weight
    return choice.variants[-1], False


def _hidden(content: Content, hidden: set[str], language: str = "") -> bool:
    """Content the visitor asked not to see: a hidden topic, or another language than theirs."""
    if hidden and any(t in hidden for t in content.topics):
        return True
    return bool(language and content.language) and content.language.split("-")[0] != language.split("-")[0]


def _topics(prefs: dict, key: str) -> set[str]:
    value = prefs.get(key) or []
    return {str(t).lower() for t in value} if isinstance(value, list) else set()


ModelChooser = Callable[[Slot, dict | None, dict, str], Any]  # -> Choice-like or None


NO_CONSENT = "no personalization consent: default content"
NOT_PERSONALIZED = "the visitor chose not to personalize"


def withheld(person: dict | None, prefs: dict) -> str | None:
    """Why nothing may be personalized for this person, or None when it may."""
    if person and (person.get("consent") or {}).get("personalization") is False:
        return NO_CONSENT
    if prefs.get("do_not_personalize") is True:
        return NOT_PERSONALIZED
    return None


GLOBAL_HOLDOUT = "global holdout: defaults only, to measure what personalization earns"


def decide_slot(
    rs: RuleSet,
    slot_name: str,
    person: dict | None,
    prefs: dict,
    context: dict,
    visitor_id: str,
    now_ms: int,
    model: ModelChooser | None = None,
    held_out: bool = False,
) -> Decision:
    """`visitor_id` is who is bucketed (the person: engine.experiments.exposures.person_key)."""
    slot = rs.slots.get(slot_name)
    if slot is None:
        return Decision(slot_name, None, None, None, "default", "no such slot in the catalog")
    reason = GLOBAL_HOLDOUT if held_out else withheld(person, prefs)
    if reason is not None:  # the default, rendered without the person
        content = slot.content[slot.default]
        return Decision(
            slot_name, slot.default, render(content.template, None, context), slot.default, "default", reason
        )

    def show(content_id: str, source: str, reason: str, variant: str | None = None, **kw) -> Decision:
        content = slot.content[content_id]
        return Decision(
            slot_name,
            content_id,
            render(content.template, person, context),
            variant or content_id,
            source,
            reason,
            **kw,
        )

    default_reason = "default content"
    hidden, shown = _topics(prefs, "hide"), _topics(prefs, "show")
    language = str(prefs.get("language") or "").lower()

    chosen = prefs.get(slot_name)
    if isinstance(chosen, str) and chosen in slot.content and not _hidden(slot.content[chosen], hidden, language):
        return show(chosen, "preference", f"the visitor chose {chosen!r} for this slot")
    if shown:
        matches = [c for c in slot.content.values() if set(c.topics) & shown and not _hidden(c, hidden, language)]
        matches.sort(key=lambda c: not (language and c.language))  # content in their language first
        if matches:
            topic = sorted(set(matches[0].topics) & shown)[0]
            return show(matches[0].id, "preference", f"the visitor chose to see {topic}")

    for rule in rs.rules_for(slot_name):
        if not rule.live(now_ms):
            continue
        matched, why = rule.condition.evaluate(person or {}, context, now_ms)
        if not matched:
            continue
        variant, control = _pick_variant(rule, slot_name, visitor_id)
        conditions = "; ".join(why) or "no conditions"
        if control:
            return show(
                slot.default,
                "rule",
                f"rule {rule.id} matched ({conditions}); control group gets the default",
                variant="control",
                rule_id=rule.id,
            )
        if variant.content not in slot.content:
            continue  # the linter warned: unknown content
        if _hidden(slot.content[variant.content], hidden, language):
            default_reason = f"rule {rule.id} matched but the visitor chose not to see its content"
            continue
        return show(variant.content, "rule", f"rule {rule.id} matched ({conditions})", rule_id=rule.id)

    if slot.model is not None and model is not None:
        # The chooser is given only the variants the visitor may see (model_variants).
        choice = model(slot, person, context, visitor_id)
        if choice is not None and getattr(choice, "holdout", False):
            return show(slot.default, "default", choice.reason, variant="holdout", extra={"model": _model_json(choice)})
        if choice is not None and choice.variant in slot.content:
            return show(choice.variant, "model", choice.reason, extra={"model": _model_json(choice)})
    return show(slot.default, "default", default_reason)


def model_variants(slot: Slot, prefs: dict, person: dict | None = None) -> tuple[str, ...]:
    """The model's variants this visitor may see (no hidden topic, no other language; none without consent)."""
    if slot.model is None or withheld(person, prefs) is not None:
        return ()
    hidden, language = _topics(prefs, "hide"), str(prefs.get("language") or "").lower()
    return tuple(v for v in slot.model.variants if not _hidden(slot.content[v], hidden, language))


def _model_json(choice) -> dict:
    return {
        "expected_ctr": round(float(choice.expected_ctr), 4),
        "explore": bool(choice.explore),
        "context": choice.context,
    }


def decide(
    rs: RuleSet,
    slots: list[str],
    person: dict | None,
    prefs: dict,
    context: dict,
    visitor_id: str,
    now_ms: int,
    model: ModelChooser | None = None,
    held_out: bool = False,
) -> dict[str, Decision]:
    return {slot: decide_slot(rs, slot, person, prefs, context, visitor_id, now_ms, model, held_out) for slot in slots}
