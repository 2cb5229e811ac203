"""Backtesting a candidate rule set on recorded events: pure code.

Events are folded into fresh profiles in order; at each page view the candidate
rules decide every slot they touch, with the profile as it was at that moment (its
segments of the candidate set derived then) and the context the event carries (url, referrer, country, device, UTM
campaign). The report says, per rule, how often its condition matched, how often
it decided a slot, and how its visitors split between variants and control.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from engine.profiles.changes import is_state_change
from engine.profiles.model import ProfileConfig, apply_event, new_profile
from engine.profiles.segments import derive
from engine.rules.context import device_from_user_agent
from engine.rules.decide import decide_slot
from engine.rules.ruleset import RuleSet


def event_context(event: dict) -> dict:
    context = {k: event[k] for k in ("url", "referrer", "country") if event.get(k)}
    if event.get("ua"):
        context["device"] = device_from_user_agent(event["ua"])
    props = event.get("props") or {}
    if isinstance(props.get("context"), dict):
        context.update({k: v for k, v in props["context"].items() if isinstance(v, (str, int, float, bool))})
    if event.get("url"):
        query = parse_qs(urlsplit(str(event["url"])).query)
        if query.get("utm_campaign"):
            context.setdefault("utm_campaign", query["utm_campaign"][0])
    return context


@dataclass
class RuleReport:
    matched: int = 0
    decided: int = 0
    visitors_by_variant: dict = field(default_factory=lambda: defaultdict(set))


class Backtest:
    def __init__(self, rs: RuleSet, config: ProfileConfig | None = None) -> None:
        self.rs = rs
        self.config = config or ProfileConfig()
        self.profiles: dict[str, dict] = {}
        self.reports: dict[str, RuleReport] = {rule.id: RuleReport() for rule in rs.rules}
        self.page_views = 0
        self.events = 0
        self.slots = sorted({c.slot for rule in rs.rules for c in rule.choices if c.slot in rs.slots})

    def feed(self, event: dict) -> None:
        vid = event.get("visitor_id")
        if not vid or "type" not in event or "ts" not in event or is_state_change(event):
            return
        if event.get("bot") is True:
            return  # bots' events (engine.ingest.bots) are no visitors the rules decide for
        self.events += 1
        profile = self.profiles.get(vid) or new_profile(vid)
        try:
            self.profiles[vid] = apply_event(profile, event, self.config)
        except Exception:
            return  # the worker skips such an event too
        if event["type"] != "page_view":
            return
        self.page_views += 1
        context = event_context(event)
        now_ms = event["ts"]
        # its segments as of this moment, as decide derives them, for the `segment` conditions
        person = derive(self.profiles[vid], None, self.rs.segments, now_ms, self.config.interest_half_life_days)
        for rule in self.rs.rules:
            if rule.live(now_ms) and rule.condition.evaluate(person, context, now_ms)[0]:
                self.reports[rule.id].matched += 1
        for slot in self.slots:
            decision = decide_slot(self.rs, slot, person, {}, context, vid, now_ms)
            if decision.rule_id:
                report = self.reports[decision.rule_id]
                report.decided += 1
                report.visitors_by_variant[decision.variant].add(vid)

    def summary(self) -> list[dict]:
        out = []
        for rule in self.rs.rules:
            report = self.reports[rule.id]
            visitors = sum(len(v) for v in report.visitors_by_variant.values())
            out.append(
                {
                    "rule": rule.id,
                    "matched": report.matched,
                    "decided": report.decided,
                    "visitors": visitors,
                    "variants": {
                        variant: round(len(v) / visitors, 3)
                        for variant, v in sorted(report.visitors_by_variant.items())
                    }
                    if visitors
                    else {},
                }
            )
        return out

    def table(self) -> str:
        lines = [
            f"{self.events:,} events, {self.page_views:,} page views, {len(self.profiles):,} visitors",
            "",
            f"{'rule':32} {'matched':>9} {'decided':>9} {'visitors':>9}  variants (share of visitors)",
        ]
        for row in self.summary():
            shares = ", ".join(f"{k} {v:.0%}" for k, v in row["variants"].items()) or "-"
            lines.append(
                f"{row['rule'][:32]:32} {row['matched']:>9,} {row['decided']:>9,} {row['visitors']:>9,}  {shares}"
            )
        return "\n".join(lines)
