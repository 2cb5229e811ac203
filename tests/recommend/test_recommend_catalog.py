"""Catalog files and items: every field checked, errors naming the field (and the line, for a file)."""

from __future__ import annotations

import uuid

import pytest

from engine.errors import InvalidInput
from engine.recommend.catalog import Catalog, CatalogItem, check_items, parse_text, read_file


def test_csv_and_json_lines_give_the_same_items(tmp_path):
    csv_file = tmp_path / "catalog.csv"
    csv_file.write_text("id,category,available,title,price\nsku-1,shoes,true,Red shoe,49.5\nsku-2,,no,,\n")
    jsonl = tmp_path / "catalog.jsonl"
    jsonl.write_text(
        '{"id": "sku-1", "category": "shoes", "available": true, "title": "Red shoe", "price": 49.5}\n\n'
        '{"id": "sku-2", "available": false}\n'
    )
    expected = [CatalogItem("sku-1", "shoes", True, "Red shoe", 49.5), CatalogItem("sku-2", None, False)]
    assert read_file(csv_file) == expected
    assert read_file(jsonl) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("id,category,available\nsku-1,shoes,maybe\n", "catalog.csv line 2: available: expected true or false"),
        ("id,category,available,price\nsku-1,shoes,true,cheap\n", "catalog.csv line 2: price: expected a number"),
        ("id,category\n,shoes\n", "catalog.csv line 2: id: is required"),
        ("sku,category\nsku-1,shoes\n", "catalog.csv: expected a CSV header with id"),
        ('{"id": "a"}\n{"id": "b", "available": "yes"}\n', "catalog.csv line 2: available: expected true or false"),
        ('{"id": "a"}\n{"id": \n', "catalog.csv line 2: malformed JSON"),
        ('{"id": "a", "stock": 3}\n', "catalog.csv line 1: stock: unknown field"),
    ],
)
def test_file_errors_name_the_line_and_the_field(text, message):
    with pytest.raises(ValueError) as caught:
        parse_text(text, "catalog.csv")
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    "body, field",
    [
        ([{"id": "a", "available": 1}], "items[0].available"),  # JSON booleans only, not 1 or "yes"
        ([{"id": "a"}, {"id": "x" * 65}], "items[1].id"),
        ([{"id": "a", "category": ["c"]}], "items[0].category"),
        ([{"id": "a", "price": float("inf")}], "items[0].price"),
        ([{"id": "a", "price": True}], "items[0].price"),
        (["a"], "items[0]"),
        ({"items": "a"}, "items"),
    ],
)
def test_api_items_are_checked_field_by_field(body, field):
    with pytest.raises(InvalidInput) as caught:
        check_items(body)
    assert caught.value.error.startswith(field + ":")


async def test_catalog_round_trips_through_redis_and_versions_its_writes(redis_client):
    catalog = Catalog(redis_client, f"t{uuid.uuid4().hex[:8]}")
    try:
        assert await catalog.version() == 0
        await catalog.put([CatalogItem("a", "x", True, "A", 1.0), CatalogItem("b", None, False)])
        assert await catalog.get(["a", "b", "c"]) == {
            "a": CatalogItem("a", "x", True, "A", 1.0),
            "b": CatalogItem("b", None, False),
        }
        assert await catalog.size() == 2 and await catalog.version() == 1
        assert await catalog.remove(["a"]) == 1 and await catalog.version() == 2
    finally:
        await redis_client.delete(catalog.key, catalog.version_key)
