"""The collector's spool: every acknowledged batch on local disk, fsynced before the 202.

A broker's acknowledgement is not durability when the broker keeps its log in
memory (the embedded Tansu). So the collector appends each batch the broker took to
a spool file and fsyncs it before answering; a batch leaves the spool once the
archive holds it (engine.ingest.publisher.LogWatch), and is sent again when the
broker's log was reset before that. Concurrent requests share one fsync.

    {data}/spool/{slot}/.lock                 flock held by the collector process using the slot
    {data}/spool/{slot}/{seq:012}.spool       frames: <u32 length><u32 crc32><msgpack record>
    record: {"log": log id, "ends": {partition: last offset}, "events": [[key, value], ...]}

A new file starts every `rotate_s`; only closed files are confirmed or re-sent.
Slots whose process died (no lock held) are adopted by the next collector, which is
how a batch survives kill -9 of the whole engine. A torn last frame (a crash mid
write) ends the file's reading; its batch never got a 202.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

log = logging.getLogger("engine.spool")

FRAME = struct.Struct("<II")


@dataclass
class SpoolFile:
    path: Path
    fd: int | None = None
    opened: float = field(default_factory=time.monotonic)
    written: int = 0
    synced: int = 0
    syncing: asyncio.Future | None = None
    events: int = 0
    size: int = 0
    ends: dict[str, dict[int, int]] = field(default_factory=dict)  # log -> partition -> highest offset
    last_write: float = float("inf")  # monotonic time of the last append; inf: adopted, its history unknown

    def note(self, log_id: str, ends: dict[int, int], events: int, size: int) -> None:
        per_log = self.ends.setdefault(log_id, {})
        for partition, offset in ends.items():
            per_log[int(partition)] = max(per_log.get(int(partition), -1), int(offset))
        self.events += events
        self.size += size


def encode(record: dict) -> bytes:
    payload = msgpack.packb(record, use_bin_type=True)
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def decode_file(data: bytes) -> list[dict]:
    records, at = [], 0
    while at + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, at)
        payload = data[at + FRAME.size : at + FRAME.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break  # torn tail
        records.append(msgpack.unpackb(payload, raw=False, strict_map_key=False))
        at += FRAME.size + length
    return records


class Spool:
    def __init__(self, folder: Path, rotate_s: float = 1.0, max_bytes: int = 1 << 30) -> None:
        self.folder = Path(folder)
        self.rotate_s = rotate_s
        self.max_bytes = max_bytes
        self.slot: Path | None = None
        self._lock_handle = None
        self.current: SpoolFile | None = None
        self.closed: list[SpoolFile] = []
        self.seq = 0
        self.dropped = 0  # events dropped because the spool was full

    # --- lifecycle -----------------------------------------------------------------

    def open(self) -> None:
        """Takes the first free slot and adopts what a dead collector left in it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        index = 0
        while True:
            slot = self.folder / str(index)
            slot.mkdir(exist_ok=True)
            handle = open(slot / ".lock", "a+b")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                index += 1
                continue
            self.slot, self._lock_handle = slot, handle
            break
        for path in sorted(self.slot.glob("*.spool")):
            self._adopt(path)
        self.adopt_orphans()

    def close(self) -> None:
        for spool_file in [*self.closed, *([self.current] if self.current else [])]:
            if spool_file.fd is not None:
                os.close(spool_file.fd)
                spool_file.fd = None
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def adopt_orphans(self) -> int:
        """Moves the files of slots no live collector holds into this one."""
        moved = 0
        for slot in sorted(p for p in self.folder.iterdir() if p.is_dir() and p != self.slot):
            with open(slot / ".lock", "a+b") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                for path in sorted(slot.glob("*.spool")):
                    target = self._next_path()
                    os.replace(path, target)
                    self._adopt(target)
                    moved += 1
        return moved

    def _next_path(self) -> Path:
        existing = [int(p.stem) for p in self.slot.glob("*.spool") if p.stem.isdigit()]
        self.seq = max([self.seq, *existing]) + 1
        return self.slot / f"{self.seq:012d}.spool"

    def _adopt(self, path: Path) -> None:
        spool_file = SpoolFile(path)
        for record in decode_file(path.read_bytes()):
            spool_file.note(record["log"], record["ends"], len(record["events"]), 0)
        spool_file.size = path.stat().st_size
        self.seq = max(self.seq, int(path.stem) if path.stem.isdigit() else 0)
        self.closed.append(spool_file)

    # --- writing -------------------------------------------------------------------

    async def append(self, log_id: str, ends: dict[int, int], pairs: list[tuple[bytes, bytes]]) -> None:
        """Returns once the batch is on disk (fsynced); raises OSError when it cannot be."""
        frame = encode({"log": log_id, "ends": ends, "events": [list(p) for p in pairs]})
        spool_file = self._writable()
        os.write(spool_file.fd, frame)  # O_APPEND: one write per frame, so frames never interleave
        spool_file.written += 1
        spool_file.note(log_id, ends, len(pairs), len(frame))
        spool_file.last_write = time.monotonic()
        await self._sync(spool_file, spool_file.written)

    def _writable(self) -> SpoolFile:
        current = self.current
        if current is not None and current.written and time.monotonic() - current.opened >= self.rotate_s:
            self.rotate()
            current = None
        if current is None:
            path = self._next_path()
            current = SpoolFile(path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
            self.current = current
        return current

    def rotate(self) -> None:
        """Closes the current file (once its writes are synced); the next append starts a new one."""
        current, self.current = self.current, None
        if current is None:
            return
        if not current.written:
            os.close(current.fd)
            current.path.unlink(missing_ok=True)
            return
        self.closed.append(current)
        asyncio.ensure_future(self._close_when_synced(current))
        self._bound()

    async def _close_when_synced(self, spool_file: SpoolFile) -> None:
        with contextlib.suppress(OSError):
            await self._sync(spool_file, spool_file.written)
        if spool_file.fd is not None:
            os.close(spool_file.fd)
            spool_file.fd = None

    async def _sync(self, spool_file: SpoolFile, target: int) -> None:
        while spool_file.synced < target:
            if spool_file.syncing is None:
                spool_file.syncing = asyncio.ensure_future(self._fsync(spool_file))
            await asyncio.shield(spool_file.syncing)

    async def _fsync(self, spool_file: SpoolFile) -> None:
        upto = spool_file.written
        try:
            await asyncio.to_thread(os.fsync, spool_file.fd)
            spool_file.synced = max(spool_file.synced, upto)
        finally:
            spool_file.syncing = None

    def _bound(self) -> None:
        """Over its size limit the spool drops its oldest file, loudly (the broker still has them)."""
        while self.closed and self.size() > self.max_bytes:
            oldest = self.closed[0]
            self.dropped += oldest.events
            log.error(
                "spool over %d bytes: dropping %s (%d events) before the archive confirmed it",
                self.max_bytes,
                oldest.path.name,
                oldest.events,
            )
            self.remove(oldest)

    # --- reading -------------------------------------------------------------------

    def read(self, spool_file: SpoolFile) -> list[dict]:
        return decode_file(spool_file.path.read_bytes())

    def remove(self, spool_file: SpoolFile) -> None:
        if spool_file in self.closed:
            self.closed.remove(spool_file)
        if spool_file.fd is not None and spool_file.synced >= spool_file.written:
            os.close(spool_file.fd)
            spool_file.fd = None
        spool_file.path.unlink(missing_ok=True)

    def files(self) -> list[SpoolFile]:
        return list(self.closed)

    def events(self) -> int:
        return sum(f.events for f in self.closed) + (self.current.events if self.current else 0)

    def size(self) -> int:
        return sum(f.size for f in self.closed) + (self.current.size if self.current else 0)
