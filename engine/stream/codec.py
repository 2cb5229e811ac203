"""Wire format of events on Kafka: msgpack maps."""

from __future__ import annotations

import msgpack

_packer = msgpack.Packer(use_bin_type=True)


def encode(event: dict) -> bytes:
    return _packer.pack(event)


def decode(data: bytes) -> dict:
    value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if not isinstance(value, dict):
        raise ValueError(f"expected a map, got {type(value).__name__}")
    return value
