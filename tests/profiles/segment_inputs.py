"""What the segment tests feed the evaluator: live rules, a clock, and dated product views."""

from engine.profiles.model import DAY_MS

NOW = 1_795_400_000_000  # a moment 12:53 UTC into its day


class Rules:
    """engine.rules.live.LiveRules as the evaluator reads it: just the current rule set."""

    def __init__(self, rs):
        self.current = rs


class Clock:
    """The worker's clock, stopped at `now` (ms) until a test moves it."""

    def __init__(self, now):
        self.now = now

    async def __call__(self):
        return self.now


def views(vid, category, days_ago, start=0):
    """One product view of `category` per entry of `days_ago`, that many days before NOW."""
    return [
        {
            "event_id": f"{vid}-{category}-{start + i}",
            "type": "product_view",
            "visitor_id": vid,
            "session_id": "s",
            "ts": NOW - d * DAY_MS,
            "props": {"product": {"id": f"p{i}", "category": category}},
        }
        for i, d in enumerate(days_ago)
    ]
