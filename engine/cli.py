"""The `clickstream` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from engine.errors import SettingsError
from engine.settings import Settings


def _settings(beside_up: bool = False) -> Settings:
    """`beside_up`: a command that may run next to `clickstream up` uses its broker, Redis and rules folder."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2)
    return _beside_up(settings) if beside_up else settings


def _beside_up(settings: Settings) -> Settings:
    """Fills in what is not configured from DATA_DIR/up.json, written by a running `up` (engine.embedded)."""
    from dataclasses import replace

    from engine.embedded import RUNNING, running_engine

    unset_rules = not os.environ.get("CLICKSTREAM_RULES")
    if not (settings.embedded_kafka or settings.embedded_redis or unset_rules):
        return settings
    running = running_engine(settings.data_dir.resolve())
    if running is None:
        return settings
    changes = {}
    if settings.embedded_kafka and running.get("kafka"):
        changes["kafka"] = running["kafka"]
    if settings.embedded_redis and running.get("redis"):
        changes["redis"] = running["redis"]
    if unset_rules and running.get("rules"):
        changes["rules"] = Path(running["rules"])
    if changes:
        print(
            f"using the engine `clickstream up` runs ({settings.data_dir.resolve() / RUNNING}): "
            + ", ".join(f"{k} {v}" for k, v in changes.items()),
            file=sys.stderr,
        )
    return replace(settings, **changes)


def _require(settings: Settings, *names: str) -> None:
    missing = [f"CLICKSTREAM_{n.upper()}" for n in names if getattr(settings, n) is None]
    if missing:
        print(f"configuration error: {', '.join(missing)} must be set for this command", file=sys.stderr)
        raise SystemExit(2)


def _logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # aiokafka says "Updating subscribed topics" at INFO on every assignment, and the log id
        # check assigns a consumer every CLICKSTREAM_LOG_CHECK_S: a line a second that tells nothing.
        logging.getLogger("aiokafka.consumer.subscription_state").setLevel(logging.WARNING)


def _check_catalog(settings: Settings) -> None:
    """A bad CLICKSTREAM_CATALOG file stops the start, naming the file and line."""
    if settings.catalog is None:
        return
    from engine.recommend.catalog import read_file

    try:
        read_file(settings.catalog)
    except (OSError, ValueError) as exc:
        print(f"configuration error: CLICKSTREAM_CATALOG: {exc}", file=sys.stderr)
        raise SystemExit(2)


def cmd_up(args) -> int:
    from engine.embedded import up

    settings = _settings()
    _check_catalog(settings)
    return up(settings, args.host, args.port, workers=args.workers)


def _serve(args, roles: set[str]) -> int:
    import uvicorn

    from engine.wiring import create_app

    settings = _settings()
    _logging(settings)
    if "collector" in roles:
        _require(settings, "kafka")
    if "api" in roles:
        _require(settings, "kafka", "redis")  # the API puts its state changes on the log
        _check_catalog(settings)
    # No access log: it would write every visitor's IP address.
    uvicorn.run(
        create_app(settings, roles),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        proxy_headers=True,
        lifespan="on",
    )
    return 0


def cmd_api(args) -> int:
    roles = {"api"} if args.api_only else {"collector", "api"}
    return _serve(args, roles)


def cmd_collector(args) -> int:
    return _serve(args, {"collector"})


def cmd_worker(args) -> int:
    from engine.stream.worker import run_worker
    from engine.wiring import create_worker

    settings = _settings()
    _require(settings, "kafka", "redis")
    run_worker(create_worker(settings), loglevel=settings.log_level)
    return 0


def cmd_deliver(args) -> int:
    from engine.wiring import run_delivery

    settings = _settings()
    _require(settings, "redis")
    _logging(settings)
    try:
        asyncio.run(run_delivery(settings))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_replay(args) -> int:
    from engine.wiring import run_replay

    settings = _settings(beside_up=True)
    _require(settings, "kafka", "redis")
    _logging(settings)
    count = asyncio.run(run_replay(settings, progress=not args.quiet))
    print(f"replayed {count} events")
    return 0


def cmd_train(args) -> int:
    from engine.wiring import run_train

    settings = _settings(beside_up=True)
    _require(settings, "kafka", "redis")
    _logging(settings)
    try:
        model = asyncio.run(run_train(settings, progress=not args.quiet, out_path=args.out))
    except ValueError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 1
    meta = model.meta
    print(
        f"published ALS model {model.version}: {meta['persons']} persons, {meta['items']} items, "
        f"{meta['interactions']} interactions, item-item regression over {meta['regression_items']} items, "
        f"trained in {meta['train_seconds']:.1f} s"
    )
    return 0


def cmd_catalog(args) -> int:
    from engine.recommend.catalog import read_file
    from engine.wiring import load_catalog

    settings = _settings(beside_up=True)
    _require(settings, "kafka", "redis")
    try:
        items = read_file(args.path)
    except (OSError, ValueError) as exc:
        print(f"catalog: {exc}", file=sys.stderr)
        return 1

    print(f"stored {asyncio.run(load_catalog(settings, items))} catalog items from {args.path}")
    return 0


def cmd_simulate(args) -> int:
    from engine.simulate import simulate

    sent = asyncio.run(simulate(args.url, visitors=args.visitors, events=args.events, batch=args.batch, seed=args.seed))
    print(f"sent {sent} events to {args.url}")
    return 0


def cmd_bench(args) -> int:
    """Runs the benchmark scripts of a source checkout (they are not part of the package)."""
    import subprocess
    from pathlib import Path

    folder = Path(args.folder)
    if args.quick or args.name == "quick":  # the regression guard before a change to the worker lands
        return subprocess.call([sys.executable, str(folder / "pipeline_throughput.py"), "--quick"])
    scripts = sorted(folder.glob(f"{args.name or '*'}.py"))
    scripts = [s for s in scripts if s.name not in ("__init__.py", "common.py", "events.py", "naive_worker.py")]
    if not scripts:
        print(f"no benchmarks matching {args.name or '*'} in {folder}", file=sys.stderr)
        return 2
    status = 0
    for script in scripts:
        print(f"== {script}", flush=True)
        status |= subprocess.call([sys.executable, str(script)])
    return status


def cmd_rules(args) -> int:
    from engine.rules import commands

    settings = _settings(beside_up=True)
    if args.rules_command == "check":
        return commands.check(args.path, settings.interest_half_life_days)
    if args.rules_command == "preview":
        try:
            context = commands.parse_context(args.context)
            now_ms = commands.at_time(args.at)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        person, prefs = None, {}
        if args.profile_json:
            try:
                person = json.loads(Path(args.profile_json).read_text())
            except (OSError, ValueError) as exc:
                print(f"error: --profile-json: {exc}", file=sys.stderr)
                return 2
        elif args.profile:
            _require(settings, "redis")
            from engine.wiring import load_person

            person, prefs = asyncio.run(load_person(settings, args.profile))
            if person is None:
                print(f"note: no profile {args.profile!r}; deciding as for a new visitor", file=sys.stderr)
        return commands.preview(
            args.path, person, prefs, context, args.profile or "", args.slot, now_ms, settings.interest_half_life_days
        )
    _require(settings, "kafka")
    from engine.wiring import profile_config

    return asyncio.run(
        commands.backtest(args.path, settings, profile_config(settings), args.hours, progress=not args.quiet)
    )


def cmd_experiments(args) -> int:
    from engine.experiments import printing
    from engine.wiring import experiments_command

    settings = _settings(beside_up=True)
    _require(settings, "redis")
    found = asyncio.run(experiments_command(settings, args.experiments_command, getattr(args, "id", None)))
    if found is None:
        print(f"no such {'slot' if args.experiments_command == 'ope' else 'experiment'}: {args.id!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        print(getattr(printing, args.experiments_command)(found))
    return 0


def cmd_segments(args) -> int:
    from tqdm import tqdm

    from engine.wiring import export_segment

    settings = _settings(beside_up=True)
    _require(settings, "redis")
    try:
        out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    except OSError as exc:
        print(f"segments export: --output: {exc}", file=sys.stderr)
        return 2
    try:
        with tqdm(desc=f"exporting {args.name}", unit=" members", file=sys.stderr, disable=args.quiet) as bar:
            written = asyncio.run(export_segment(settings, args.name, args.format, out, bar))
    finally:
        if out is not sys.stdout:
            out.close()
    if written is None:
        print(f"segments export: no such segment: {args.name!r}", file=sys.stderr)
        return 1
    print(f"exported {written} rows of {args.name}" + (f" to {args.output}" if args.output else ""), file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clickstream", description="Streaming personalization engine")
    sub = parser.add_subparsers(dest="command", required=True)

    def http_options(p, port=8080):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=port)

    p = sub.add_parser("up", help="run everything on this machine (embedded broker and Redis unless configured)")
    http_options(p)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("api", help="run the HTTP app (collector and API; --api-only for the API alone)")
    http_options(p)
    p.add_argument("--api-only", action="store_true")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("collector", help="run the HTTP collector alone")
    http_options(p)
    p.set_defaults(func=cmd_collector)

    p = sub.add_parser("worker", help="run a stream worker (faust)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "deliver",
        help="deliver segment changes and alerts to the rule files' destinations "
        "(a process of its own; with CLICKSTREAM_WORKER_DELIVERY=false on the workers)",
    )
    p.set_defaults(func=cmd_deliver)

    p = sub.add_parser("replay", help="rebuild Redis state from the start of the topic")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("train", help="train the ALS recommendation model on the topic's history and publish it")
    p.add_argument("--out", type=Path, help="also write the model's artefacts to this file")
    p.add_argument("--quiet", action="store_true", help="no progress")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("catalog", help="load an item catalog (availability, category) from a CSV or JSON-lines file")
    catalog = p.add_subparsers(dest="catalog_command", required=True)
    c = catalog.add_parser("load", help="add or replace the file's items")
    c.add_argument("path", type=Path)
    p.set_defaults(func=cmd_catalog)

    p = sub.add_parser("simulate", help="send synthetic shop traffic to a running collector")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--visitors", type=int, default=100)
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("rules", help="check, preview and backtest rule files")
    rules = p.add_subparsers(dest="rules_command", required=True)
    r = rules.add_parser("check", help="report every error (file, line, rule id) and warning; exit 1 on errors")
    r.add_argument("path")
    r = rules.add_parser("preview", help="the decision and its reason for one profile and context")
    r.add_argument("path")
    r.add_argument("--profile", help="a visitor id or user id, read from CLICKSTREAM_REDIS")
    r.add_argument("--profile-json", help="a profile as JSON (e.g. from GET /v1/profiles/ID)")
    r.add_argument("--context", nargs="*", default=[], metavar="KEY=VALUE", help="e.g. country=NO weather=rain")
    r.add_argument("--slot", action="append", help="only these slots (default: every slot)")
    r.add_argument("--at", help="decide as at this time (ISO 8601), e.g. to try a schedule")
    r = rules.add_parser("backtest", help="replay recent events from Kafka through a candidate rule set")
    r.add_argument("path")
    r.add_argument("--hours", type=float, default=24.0, help="how far back (default 24)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_rules)

    p = sub.add_parser("experiments", help="experiment reports: what each rule split, model slot and the holdout earn")
    experiments = p.add_subparsers(dest="experiments_command", required=True)
    e = experiments.add_parser("list", help="every experiment and its state")
    e.add_argument("--json", action="store_true")
    e = experiments.add_parser("report", help="one experiment's report, as GET /v1/experiments/ID")
    e.add_argument("id")
    e.add_argument("--json", action="store_true")
    e = experiments.add_parser(
        "ope", help="off-policy estimates (IPS, doubly robust) for a model slot's candidate policies"
    )
    e.add_argument("id", metavar="SLOT")
    e.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_experiments)

    p = sub.add_parser("segments", help="segment exports: the identified members with marketing consent")
    segments = p.add_subparsers(dest="segments_command", required=True)
    s = segments.add_parser("export", help="every row of GET /v1/segments/NAME/export, to stdout or a file")
    s.add_argument("name")
    s.add_argument("--format", choices=("csv", "jsonl"), default="jsonl")
    s.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_segments)

    p = sub.add_parser("bench", help="run the benchmarks of a source checkout (results: benchmarks/RESULTS.md)")
    p.add_argument("name", nargs="?", help="one benchmark, e.g. pipeline_throughput; `quick`: the same as --quick")
    p.add_argument(
        "--quick",
        action="store_true",
        help="the pipeline benchmark at a small size (about a minute): the worker against the naive agent",
    )
    p.add_argument("--folder", default="benchmarks")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
