"""Safe YAML loading that remembers line numbers, for errors a marketer can find.

Mappings load as `Located` dicts that know their own line and each key's line.
Aliases are refused: rule files never need them, and an alias bomb would make
checking a small file exponentially slow.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_BYTES = 2 * 1024 * 1024


class Located(dict):
    """A mapping from YAML with the 1-based line of itself and of each key."""

    line: int = 0
    key_lines: dict

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list):
    line: int = 0
    item_lines: list

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class YamlError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YamlError(event.start_mark.line + 1, "aliases (*name) are not allowed in rule files")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        mapping = Located(super().construct_mapping(node, deep=True))
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {}
        for key_node, _ in node.value:
            try:
                key = self.construct_object(key_node, deep=True)
                hash(key)
                mapping.key_lines.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:
                pass
        return mapping

    def construct_sequence(self, node, deep=False):
        items = LocatedList(super().construct_sequence(node, deep=True))
        items.line = node.start_mark.line + 1
        items.item_lines = [child.start_mark.line + 1 for child in node.value]
        return items


# YAML 1.2 booleans: only true and false. Under YAML 1.1 a country list [NO, SE]
# would read as [false, "SE"].
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _Loader.construct_sequence)


def load(data: bytes | str) -> Any:
    """Parsed YAML with line numbers, or YamlError(line, message); never anything else."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise YamlError(1, f"file is larger than {MAX_BYTES // 1024 // 1024} MiB")
        if b"\x00" in data:
            raise YamlError(1, "not a text file")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise YamlError(line, "not UTF-8 text") from None
    try:
        return yaml.load(data, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except YamlError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(mark.line + 1 if mark else 1, f"invalid YAML: {exc.problem or exc.context}") from None
    except RecursionError:
        raise YamlError(1, "nested too deeply") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        raise YamlError(1, f"invalid YAML: {str(exc)[:200]}") from None
