"""The rules page's backtest: what `clickstream rules backtest FOLDER` does, run in the API process.

One run at a time per process, in the background: it reads the event log (archive,
then broker: engine.stream.history) keeping the last `hours` of it, at most EVENTS_MAX
events (the newest), then replays them through the rule files as they are in the
folder now (engine.rules.backtest, in a thread so requests keep being served). The
page polls `run.progress` and shows the report when it is done; a failure (the
files have errors, the log is out of reach) ends the run with its message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from engine.errors import InvalidInput
from engine.rules.backtest import Backtest
from engine.rules.commands import recent_events
from engine.rules.ruleset import load_ruleset

log = logging.getLogger("engine.console")

EVENTS_MAX = 100_000  # decoded events held at once (a quarter more between trims)
HOURS_MAX = 168.0
RUN_MAX_S = 600.0
FEED_STEP = 500  # events replayed between two looks at the run's progress and stop mark
CHOICES = (1, 6, 24, 72, 168)


def hours_of(text: str | None) -> float:
    """The form's `hours`: a number of hours, more than 0 and at most HOURS_MAX."""
    try:
        hours = float((text or "").strip())
    except ValueError:
        hours = -1.0
    if not 0 < hours <= HOURS_MAX:  # NaN fails this too
        raise InvalidInput(f"hours: expected a number of hours, more than 0 and at most {HOURS_MAX:g}")
    return hours


@dataclass
class BacktestRun:
    hours: float
    folder: str
    started_at: float = field(default_factory=time.time)
    state: str = "reading"  # reading, replaying, done, failed
    read: int = 0  # records of the log read so far
    total: int = 0  # records in the log when the read began
    events: int = 0  # of them, in the window (what is replayed)
    fed: int = 0
    left_out: int = 0  # in the window but over EVENTS_MAX (the oldest)
    error: str | None = None
    report: Backtest | None = None
    finished_at: float | None = None
    stopping: bool = False

    @property
    def running(self) -> bool:
        return self.state in ("reading", "replaying")

    @property
    def progress(self) -> float:
        """0 to 1: reading the log is the first half, replaying its window the second."""
        if self.state == "reading":
            return 0.5 * self.read / self.total if self.total else 0.0
        if self.state == "replaying":
            return 0.5 + 0.5 * self.fed / self.events if self.events else 0.5
        return 1.0


def replay(test: Backtest, events: list[dict], run: BacktestRun) -> None:
    """Feeds the events in order (run in a thread), counting them into the run."""
    for start in range(0, len(events), FEED_STEP):
        if run.stopping:
            return
        for event in events[start : start + FEED_STEP]:
            test.feed(event)
        run.fed = min(start + FEED_STEP, len(events))


class Backtests:
    """The process's one backtest at a time; `read_log(settings)` yields (events, read, total) batches."""

    def __init__(self, settings, rules, config, read_log=None) -> None:
        self.settings = settings
        self.rules = rules  # engine.rules.live.LiveRules: its folder is backtested
        self.config = config  # engine.profiles.model.ProfileConfig
        self.read_log = read_log
        self.current: BacktestRun | None = None
        self._task: asyncio.Task | None = None

    def start(self, hours: float) -> BacktestRun | None:
        """A new run, or None while one is still running."""
        if self.current is not None and self.current.running:
            return None
        run = BacktestRun(hours, str(self.rules.path))
        self.current = run
        self._task = asyncio.create_task(self._run(run))
        return run

    async def _run(self, run: BacktestRun) -> None:
        try:
            await asyncio.wait_for(self._backtest(run), RUN_MAX_S)
            run.state = "done"
        except asyncio.TimeoutError:
            run.state, run.error = "failed", f"stopped after {RUN_MAX_S:g} s: the log took too long to read"
        except asyncio.CancelledError:
            run.state, run.error = "failed", "stopped: the engine is shutting down"
            raise
        except Exception as exc:
            log.warning("console backtest failed: %r", exc)
            run.state, run.error = "failed", _message(exc)
        finally:
            run.finished_at = time.time()

    async def _backtest(self, run: BacktestRun) -> None:
        rs = await asyncio.to_thread(
            load_ruleset, self.rules.path, int(time.time() * 1000), half_life_days=self.config.interest_half_life_days
        )
        if rs.errors:
            shown = "; ".join(str(p) for p in rs.errors[:3]) + ("; ..." if len(rs.errors) > 3 else "")
            raise BacktestRefused(f"the rule files have errors, fix them first: {shown}")
        since = (time.time() - run.hours * 3600) * 1000
        events, run.left_out = await recent_events(self._batches(run), since, EVENTS_MAX)
        run.events, run.state = len(events), "replaying"
        test = Backtest(rs, self.config)
        try:
            await asyncio.to_thread(replay, test, events, run)
        finally:
            run.stopping = True  # a cancelled wait leaves the thread running: this ends it
        run.report = test

    async def _batches(self, run: BacktestRun):
        read_log = self.read_log
        if read_log is None:
            from engine.stream.history import topic_history as read_log
        async for events, read, total in read_log(self.settings):
            run.read, run.total = read, total
            yield events

    async def stop(self) -> None:
        if self.current is not None:
            self.current.stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class BacktestRefused(Exception):
    """A run that cannot start its replay: the message is the page's."""


def _message(exc: Exception) -> str:
    if isinstance(exc, BacktestRefused):
        return str(exc)
    from aiokafka.errors import KafkaError

    name, text = type(exc).__name__, str(exc)
    said = text if text.startswith(name) else f"{name}: {text}" if text else name
    return f"the event log could not be read ({said})" if isinstance(exc, (KafkaError, OSError)) else said
