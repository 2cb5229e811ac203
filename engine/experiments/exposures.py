"""Which experiments a decide call exposed the person to, and in which arm (pure).

An experiment is one of:

    rule:<rule id>:<slot>   a rule with a control share or several variants; arms are the
                            variants' content ids and "control"; propensity = the split share
    slot:<slot>             a model-driven slot; arms are its variants and "holdout";
                            propensity = the bandit's sampling probability
    global                  the global holdout (CLICKSTREAM_GLOBAL_HOLDOUT): arms "holdout"
                            (defaults only) and "personalized"; every decision is one of them

The person is the unit: `person_key` is "u:<digest>" of a verified user id (the digest
engine.profiles.people names the user's keys with, so the log carries no user id), else the
visitor id. Bucketing hashes (person key, experiment), so a customer keeps one arm on every
device once they are known. At login the person's assignment wins (README "Experiments").
"""

from __future__ import annotations

import hashlib

from engine.rules.decide import BUCKETS, Decision
from engine.rules.ruleset import RuleSet

GLOBAL = "global"
HOLDOUT = "holdout"
PERSONALIZED = "personalized"
CONTROL = "control"


def person_key(user_digest: str | None, visitor_id: str | None) -> str:
    return f"u:{user_digest}" if user_digest else (visitor_id or "")


def in_global_holdout(person: str, percent: float) -> bool:
    """Stable per person: the same person is always in or always out of the global holdout."""
    if percent <= 0 or not person:
        return False
    digest = hashlib.blake2b(f"{GLOBAL}\0{person}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100 < percent


def rule_experiment(rule_id: str, slot: str) -> str:
    return f"rule:{rule_id}:{slot}"


def slot_experiment(slot: str) -> str:
    return f"slot:{slot}"


def is_experiment(rs: RuleSet, rule_id: str, slot: str) -> bool:
    """A rule is an experiment in a slot when it splits traffic there: a control share or several variants."""
    rule = next((r for r in rs.rules if r.id == rule_id), None)
    choice = next((c for c in rule.choices if c.slot == slot), None) if rule else None
    return choice is not None and (choice.control > 0 or len(choice.variants) > 1)


def rule_shares(rs: RuleSet, rule_id: str, slot: str) -> dict[str, float] | None:
    """arm -> configured share (0..1) of a rule's split in a slot, as engine.rules.decide buckets it."""
    rule = next((r for r in rs.rules if r.id == rule_id), None)
    choice = next((c for c in rule.choices if c.slot == slot), None) if rule else None
    if choice is None:
        return None
    control = int(round(choice.control * BUCKETS / 100)) / BUCKETS
    total = sum(v.weight for v in choice.variants) or 1.0
    shares: dict[str, float] = {CONTROL: control} if control > 0 else {}
    for variant in choice.variants:
        shares[variant.content] = shares.get(variant.content, 0.0) + (1 - control) * variant.weight / total
    return shares


def exposures(
    rs: RuleSet, decisions: dict[str, Decision], model_choices: dict, held_out: bool, global_percent: float
) -> list[dict]:
    """One exposure per (decision, experiment) the decision belongs to: {decision_id, experiment, arm, propensity}.

    `held_out`: the person is in the global holdout. Every decision is an exposure of the
    global experiment (with no holdout configured, all in "personalized" at propensity 1);
    preference and consent decisions belong to no rule or slot experiment.
    """
    out = []
    for slot, decision in decisions.items():
        if decision.rule_id and decision.source == "rule" and is_experiment(rs, decision.rule_id, slot):
            arm = CONTROL if decision.variant == CONTROL else decision.content_id
            share = (rule_shares(rs, decision.rule_id, slot) or {}).get(arm)
            if share:
                out.append(
                    {
                        "decision_id": decision.decision_id,
                        "experiment": rule_experiment(decision.rule_id, slot),
                        "arm": arm,
                        "propensity": round(share, 6),
                    }
                )
        choice = model_choices.get(slot)
        if choice is not None and "model" in decision.extra:
            arm = HOLDOUT if choice.holdout else choice.variant
            out.append(
                {
                    "decision_id": decision.decision_id,
                    "experiment": slot_experiment(slot),
                    "arm": arm,
                    "propensity": round(float(choice.propensity), 6),
                    "context": str(choice.context),
                }
            )
        if decision.slot in rs.slots:
            share = global_percent / 100
            out.append(
                {
                    "decision_id": decision.decision_id,
                    "experiment": GLOBAL,
                    "arm": HOLDOUT if held_out else PERSONALIZED,
                    "propensity": round(share if held_out else 1 - share, 6),
                }
            )
    return out


def pre_activity(person: dict | None) -> float:
    """What the person did before this exposure: their events so far (the CUPED covariate)."""
    counts = (person or {}).get("counts") or {}
    try:
        return float(sum(v for v in counts.values() if isinstance(v, (int, float)) and not isinstance(v, bool)))
    except TypeError:
        return 0.0
