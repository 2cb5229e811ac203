"""Rule files as YAML 1.2 with line numbers (ruamel.yaml), for errors a marketer can find.

ruamel's round-trip loader keeps the line of every mapping, key and list item
(`node.lc`); YAML 1.2 makes only true/false booleans, so a country list [NO, SE]
stays two countries. What this module adds is the policy for files nobody trusts:

- scalars load as plain str, int, float, bool or None (dates stay the text written);
- aliases (*name) are refused while composing: rule files never need them, and an
  alias bomb would otherwise make checking a small file exponentially slow;
- tags beyond YAML's plain ones (!!python/..., !custom, !!binary, !!set) are refused;
- every failure is a YamlError(line, message); nothing else escapes `load`.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor, SafeConstructor
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent

MAX_BYTES = 2 * 1024 * 1024
PART = re.compile(r"([^.\[\]$]+)|\[(\d+)\]")


class YamlError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Composer(Composer):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            raise YamlError(
                self.parser.peek_event().start_mark.line + 1, "aliases (*name) are not allowed in rule files"
            )
        return super().compose_node(parent, index)


def _refuse(constructor: Any, node: Any) -> Any:
    raise YamlError(node.start_mark.line + 1, f"the tag {str(node.tag)[:60]} is not allowed in rule files")


class _Constructor(RoundTripConstructor):
    """Round-trip mappings and lists (they carry the lines); plain values for scalars."""


for _kind in ("str", "int", "float", "bool", "null"):
    _Constructor.add_constructor(f"tag:yaml.org,2002:{_kind}", getattr(SafeConstructor, f"construct_yaml_{_kind}"))
_Constructor.add_constructor("tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str)
for _kind in ("binary", "set", "omap", "pairs"):
    _Constructor.add_constructor(f"tag:yaml.org,2002:{_kind}", _refuse)
_Constructor.add_constructor(None, _refuse)  # any other tag


def load(data: bytes | str) -> Any:
    """Parsed YAML whose mappings and lists know their lines, or YamlError(line, message)."""
    if isinstance(data, bytes):
        if len(data) > MAX_BYTES:
            raise YamlError(1, f"file is larger than {MAX_BYTES // 1024 // 1024} MiB")
        if b"\x00" in data:
            raise YamlError(1, "not a text file")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlError(data[: exc.start].count(b"\n") + 1, "not UTF-8 text") from None
    yaml = YAML(typ="rt", pure=True)
    yaml.Composer = _Composer
    yaml.Constructor = _Constructor
    try:
        return yaml.load(data)
    except YamlError:
        raise
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
        raise YamlError(mark.line + 1 if mark else 1, f"invalid YAML: {str(problem)[:200]}") from None
    except RecursionError:
        raise YamlError(1, "nested too deeply") from None
    except (ValueError, TypeError, OverflowError, KeyError, IndexError, AttributeError) as exc:
        # ruamel's own slips on odd input (a bad !!int, a key it cannot hash)
        raise YamlError(1, f"invalid YAML: {str(exc)[:200]}") from None


def node_line(node: Any) -> int:
    """The 1-based line where a loaded mapping or list starts (1 for a scalar)."""
    lc = getattr(node, "lc", None)
    return lc.line + 1 if lc is not None and lc.line is not None else 1


def line_of(node: Any, key: Any) -> int:
    """The line of `key` in a loaded mapping (or of item `key` in a list); else the node's own."""
    try:
        return node.lc.data[key][0] + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return node_line(node)


def parts(path: str) -> list[str | int]:
    """`when.all[2].history` (or msgspec's `$.then.hero.variants[0]`) as ["when", "all", 2, "history"]."""
    return [int(index) if index else name for name, index in PART.findall(path)]


def line_at(root: Any, path: str | Iterable[str | int]) -> int:
    """The line of the deepest part of `path` that exists inside `root`."""
    line, node = node_line(root), root
    for part in parts(path) if isinstance(path, str) else path:
        if (
            isinstance(node, dict)
            and part in node
            or isinstance(node, list)
            and isinstance(part, int)
            and part < len(node)
        ):
            line, node = line_of(node, part), node[part]
        else:
            break
    return line
