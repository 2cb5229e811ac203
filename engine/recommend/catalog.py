"""The item catalog: category and availability per item, in Redis so every API process sees it.

    {prefix}:rec:catalog          hash  item id -> JSON {"category", "available", "title"?, "price"?}
    {prefix}:rec:catalog:version  int   incremented by every write, so API processes know when
                                        to drop what they cached

Loaded from a file (`load_file`: CSV with a header, or JSON lines) or by the shop's
back end (PUT /v1/catalog/items with a JSON list). Each field is checked and an
error names it: `items[3].available: expected true or false`, or for a file
`catalog.csv line 5: available: ...`. Recommendations drop unavailable items; an
item the catalog does not know counts as available (a catalog may be partial),
with the category the event stream gave it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from engine.errors import InvalidInput

ID_MAX = 64
CATEGORY_MAX = 256
TITLE_MAX = 2048
MAX_ITEMS_PER_REQUEST = 10_000
WRITE_CHUNK = 1000
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n"}


@dataclass(frozen=True)
class CatalogItem:
    id: str
    category: str | None = None
    available: bool = True
    title: str | None = None
    price: float | None = None

    def to_json(self) -> dict:
        out = {"category": self.category, "available": self.available}
        if self.title is not None:
            out["title"] = self.title
        if self.price is not None:
            out["price"] = self.price
        return out


def _text(value, path: str, max_len: int, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidInput(f"{path}: is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInput(f"{path}: expected a string")
    text = str(value)
    if not text or len(text) > max_len:
        raise InvalidInput(f"{path}: must be 1 to {max_len} characters")
    return text


def _available(value, path: str, from_text: bool) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if from_text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidInput(f"{path}: expected true or false")


def _price(value, path: str, from_text: bool) -> float | None:
    if value is None or value == "":
        return None
    if from_text and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidInput(f"{path}: expected a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{path}: expected a number of at least 0")
    return float(value)


def check_item(raw: object, path: str = "item", from_text: bool = False) -> CatalogItem:
    """One catalog entry, every field checked; `from_text` accepts CSV's strings for booleans and numbers."""
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: expected an object with id, category, available")
    unknown = set(raw) - {"id", "category", "available", "title", "price"}
    if unknown:
        raise InvalidInput(
            f"{path}.{sorted(unknown)[0]}: unknown field (expected id, category, available, title, price)"
        )
    return CatalogItem(
        id=_text(raw.get("id"), f"{path}.id", ID_MAX, required=True),
        category=_text(raw.get("category"), f"{path}.category", CATEGORY_MAX),
        available=_available(raw.get("available"), f"{path}.available", from_text),
        title=_text(raw.get("title"), f"{path}.title", TITLE_MAX),
        price=_price(raw.get("price"), f"{path}.price", from_text),
    )


def check_items(body: object) -> list[CatalogItem]:
    """The PUT body: a JSON list of items (or {"items": [...]})."""
    if isinstance(body, dict) and "items" in body:
        body = body["items"]
    if not isinstance(body, list) or not body:
        raise InvalidInput("items: expected a non-empty JSON list of items")
    if len(body) > MAX_ITEMS_PER_REQUEST:
        raise InvalidInput(f"items: more than {MAX_ITEMS_PER_REQUEST} items in one request")
    return [check_item(raw, f"items[{n}]") for n, raw in enumerate(body)]


def parse_text(text: str, name: str = "catalog") -> list[CatalogItem]:
    """A catalog file's contents: JSON lines if the first non-blank character is '{', else CSV with a header."""
    stripped = text.lstrip()
    items = []
    try:
        if stripped.startswith("{"):
            for number, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise _LineError(number, f"malformed JSON ({exc.msg})") from None
                items.append(_at_line(number, lambda: check_item(raw, "item")))
        else:
            reader = csv.DictReader(io.StringIO(text))
            if not reader.fieldnames or "id" not in reader.fieldnames:
                raise ValueError(f"{name}: expected a CSV header with id, category, available (title, price optional)")
            for row in reader:
                raw = {k: (v if v != "" else None) for k, v in row.items() if k is not None}
                items.append(_at_line(reader.line_num, lambda: check_item(raw, "item", from_text=True)))
    except _LineError as exc:
        raise ValueError(f"{name} line {exc.line}: {exc.message}") from None
    return items


class _LineError(Exception):
    def __init__(self, line: int, message: str) -> None:
        self.line, self.message = line, message


def _at_line(line: int, check) -> CatalogItem:
    try:
        return check()
    except InvalidInput as exc:
        raise _LineError(line, exc.error.removeprefix("item.").removeprefix("item: ")) from None


def read_file(path: str | Path) -> list[CatalogItem]:
    path = Path(path)
    return parse_text(path.read_text(encoding="utf-8"), path.name)


class Catalog:
    def __init__(self, redis: Redis, prefix: str = "cs") -> None:
        self.redis = redis
        self.key = f"{prefix}:rec:catalog"
        self.version_key = f"{prefix}:rec:catalog:version"

    async def put(self, items: list[CatalogItem]) -> int:
        """Adds or replaces the items; returns how many were written."""
        for start in range(0, len(items), WRITE_CHUNK):
            chunk = items[start : start + WRITE_CHUNK]
            await self.redis.hset(self.key, mapping={item.id: json.dumps(item.to_json()) for item in chunk})
        await self.redis.incr(self.version_key)
        return len(items)

    async def version(self) -> int:
        return int(await self.redis.get(self.version_key) or 0)

    async def get(self, ids: list[str]) -> dict[str, CatalogItem]:
        """The items the catalog knows among `ids`."""
        if not ids:
            return {}
        values = await self.redis.hmget(self.key, ids)
        return {item_id: self.parse(item_id, raw) for item_id, raw in zip(ids, values) if raw is not None}

    @staticmethod
    def parse(item_id: str, raw: bytes) -> CatalogItem:
        return CatalogItem(item_id, **json.loads(raw))

    async def remove(self, ids: list[str]) -> int:
        if not ids:
            return 0
        removed = await self.redis.hdel(self.key, *ids)
        await self.redis.incr(self.version_key)
        return removed

    async def size(self) -> int:
        return await self.redis.hlen(self.key)

    async def load_file(self, path: str | Path) -> int:
        return await self.put(read_file(path))
