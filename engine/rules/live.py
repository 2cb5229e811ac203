"""The rule set in use, reloaded when its files change.

A poll (every 0.5 s by default) compares the files' names, sizes and modification
times; on a change the folder is loaded and checked again. A set with errors is
refused: the errors are logged and counted, `problems` shows them, and the last
good set keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from prometheus_client import Counter, Gauge

from engine.metrics import REGISTRY
from engine.rules.ruleset import RuleSet, load_ruleset, rule_files

log = logging.getLogger("engine.rules")

RELOADS = Counter("clickstream_rules_reloads", "Rule sets loaded after a change", registry=REGISTRY)
REFUSED = Counter("clickstream_rules_refused", "Rule file edits refused because of errors", registry=REGISTRY)
LOADED_RULES = Gauge("clickstream_rules_loaded", "Rules in the set being served", registry=REGISTRY)
PACKAGED = Path(__file__).resolve().parent.parent / "defaults" / "rules"


def rules_folder(configured: Path) -> Path:
    """The configured folder; the packaged demo catalog when the default `rules` is absent."""
    if configured == Path("rules") and not configured.exists():
        return PACKAGED
    return configured


class LiveRules:
    """The served rule set of `path`; `half_life_days` is the profiles' interest half-life
    (CLICKSTREAM_INTEREST_HALF_LIFE_DAYS), compiled into `interest` conditions."""

    def __init__(self, path: Path, poll_s: float = 0.5, *, half_life_days: float) -> None:
        self.path = rules_folder(Path(path))
        self.poll_s = poll_s
        self.half_life_days = half_life_days
        self.current = RuleSet()
        self.problems: list = []  # of the newest attempt, good or refused
        self.refused_at: float | None = None
        self.loaded_at: float | None = None  # when the served set was loaded
        self._signature: tuple = ()
        self._task: asyncio.Task | None = None

    def _files_signature(self) -> tuple:
        out = []
        for f in rule_files(self.path):
            try:
                st = f.stat()
                out.append((str(f), st.st_size, st.st_mtime_ns))
            except OSError:
                out.append((str(f), -1, -1))
        return tuple(out)

    def refresh(self) -> bool:
        """Loads the files if they changed; True when a new set is now served."""
        signature = self._files_signature()
        if signature == self._signature:
            return False
        self._signature = signature
        candidate = load_ruleset(self.path, int(time.time() * 1000), half_life_days=self.half_life_days)
        self.problems = candidate.problems
        if candidate.errors:
            REFUSED.inc()
            self.refused_at = time.time()
            for problem in candidate.errors[:20]:
                log.error("rule edit refused, still serving the last good set: %s", problem)
            return False
        for problem in candidate.warnings[:20]:
            log.warning("%s", problem)
        self.current = candidate
        self.refused_at = None
        self.loaded_at = time.time()
        RELOADS.inc()
        LOADED_RULES.set(len(candidate.rules))
        log.info(
            "rule set %s: %d rules, %d slots, %d segments from %s",
            candidate.fingerprint,
            len(candidate.rules),
            len(candidate.slots),
            len(candidate.segments),
            self.path,
        )
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as exc:  # a watcher that dies would freeze the rules silently
                log.error("rule reload failed: %r", exc)

    def start(self) -> None:
        self.refresh()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            self._task = None
