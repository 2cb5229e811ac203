"""The README's example events are ones the collector takes: one of each type the contract names."""

import json
import re

from engine.ingest import schema
from helpers import REPO, visitor

NOW = 1_795_400_000_000


def readme_examples() -> list[dict]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"### One event of each type.*?```json\n(.*?)```", text, re.S).group(1)
    return [json.loads(line) for line in block.splitlines() if line.strip()]


def test_every_event_type_has_an_example_and_each_is_accepted():
    examples = readme_examples()
    types = {e["type"] for e in examples}
    assert set(schema.SCHEMAS) | {"page_view", "page_ping", "link_click"} <= types
    assert any(t.startswith("custom:") for t in types)
    for example in examples:
        event = schema.validate_event(example, now_ms=NOW, new_id=lambda: "readme", visitor_id=visitor("readme"))
        assert event["type"] == example["type"]
