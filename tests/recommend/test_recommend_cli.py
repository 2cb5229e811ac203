"""The recommendation commands: `clickstream catalog load` and `clickstream train`, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys

from engine.recommend.catalog import Catalog
from engine.redis_client import open_redis
from purchase_history import grouped_rows, produce, purchase


def run(settings, *args, timeout=120, **env):
    environ = {**os.environ, **settings.environ(), **env}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], env=environ, capture_output=True, text=True, timeout=timeout
    )


async def wipe(redis, prefix):
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)


async def test_catalog_load_stores_a_file_and_names_the_bad_line(settings_for, tmp_path):
    settings = settings_for()
    good = tmp_path / "catalog.csv"
    good.write_text("id,category,available\nboots,shoes,true\nhat,summer,false\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,category,available\nboots,shoes,true\nhat,summer,perhaps\n")
    redis = open_redis(settings.redis)
    try:
        done = run(settings, "catalog", "load", str(good))
        assert done.returncode == 0, done.stderr
        assert "stored 2 catalog items" in done.stdout
        items = await Catalog(redis, settings.redis_prefix).get(["boots", "hat"])
        assert items["boots"].available and not items["hat"].available and items["hat"].category == "summer"

        refused = run(settings, "catalog", "load", str(bad))
        assert refused.returncode == 1
        assert "bad.csv line 3" in refused.stderr and "available" in refused.stderr
        assert (await Catalog(redis, settings.redis_prefix).get(["hat"]))[
            "hat"
        ].available is False  # nothing half-loaded
    finally:
        await wipe(redis, settings.redis_prefix)
        await redis.aclose()


def test_a_bad_catalog_setting_stops_the_api_at_start(settings_for, tmp_path):
    settings = settings_for()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "boots", "available": true}\n{"id": "hat", "available": "perhaps"}\n')
    done = run(settings, "api", "--api-only", "--port", "0", timeout=30, CLICKSTREAM_CATALOG=str(bad))
    assert done.returncode == 2
    assert "CLICKSTREAM_CATALOG" in done.stderr and "line 2" in done.stderr


async def test_train_shows_progress_publishes_and_refuses_an_empty_history(settings_for):
    empty = settings_for()
    refused = run(empty, "train")
    assert refused.returncode == 1 and "no interactions" in refused.stderr

    settings = settings_for()
    rows = grouped_rows(groups=2, per_group=6, persons=60)
    await produce(settings, [purchase(person, f"o-{person}-{item}", [item]) for person, item, _ in rows])
    redis = open_redis(settings.redis)
    try:
        done = run(settings, "train", CLICKSTREAM_ALS_FACTORS="8", CLICKSTREAM_ALS_ITERATIONS="5")
        assert done.returncode == 0, done.stderr
        assert "train: read" in done.stderr and f"{len(rows)}/{len(rows)}" in done.stderr  # the progress bar
        assert "published ALS model" in done.stdout and "60 persons, 12 items" in done.stdout
        current = await redis.get(f"{settings.redis_prefix}:rec:als:current")
        assert current is not None and current.decode() in done.stdout
    finally:
        await wipe(redis, settings.redis_prefix)
        await wipe(redis, empty.redis_prefix)
        await redis.aclose()
