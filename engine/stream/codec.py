"""Wire format of events on Kafka: msgpack maps.

Written with msgpack, read with msgspec's decoder (about twice as fast on the
worker's path, and the same values: str for str, bytes for bin, any map keys).
"""

from __future__ import annotations

import msgpack
import msgspec

_packer = msgpack.Packer(use_bin_type=True)
_decode = msgspec.msgpack.Decoder().decode


def encode(event: dict) -> bytes:
    return _packer.pack(event)


def decode(data: bytes) -> dict:
    value = _decode(data)
    if not isinstance(value, dict):
        raise ValueError(f"expected a map, got {type(value).__name__}")
    return value
