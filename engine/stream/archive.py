"""The archive: every applied event, on durable storage, outliving the broker and its retention.

The worker appends what it has applied, per partition, as sealed segments; offsets
are committed only after their segment is written, so a committed offset is an
archived one. `clickstream replay` (engine.stream.history) reads the archive, then
the broker from where the archive ends. Layout, under a store (a folder of the data
directory by default; `ArchiveStore` is all it needs, so object storage fits too):

    {topic}/{log id}/{partition:04}/{first:016}-{last:016}.seg   zstd(msgpack [[offset, key, value], ...])
    {topic}/{log id}/{partition:04}/{first:016}-{last:016}.idx   msgpack {first, last, count, subjects}
    {topic}/erased                                               8-byte hashes of erased ids

`value` is the event exactly as it was on Kafka (msgpack), `key` its visitor id. A
segment's name gives the offsets it covers, which may be more than it holds: a record
the worker could not decode (a dead letter) or an erased person's is covered but left
out. A partition's segments tile its log, so a hole between two of them is a range no
worker archived: `coverage` reports it, and the archive is taken to hold only what lies
before the first hole (a spooled batch beyond it is not confirmed, a replay reads the
broker from there).
`subjects` are the 8-byte hashes of the visitor ids and user ids a segment holds, so
erasure finds the segments to rewrite without opening the others. Erasure
(`forget`) first adds the person's hashes to `erased` (new segments leave those
events out), then rewrites every segment that holds them; both happen under the
store's lock, which sealing takes too, so no segment written in between escapes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol

import msgpack
import zstandard

log = logging.getLogger("engine.archive")

HASH_BYTES = 8
_compress = zstandard.ZstdCompressor(level=3).compress
_decompress = zstandard.ZstdDecompressor().decompress

Record = tuple[int, bytes, bytes]  # offset, key, value


def subject_hash(subject: str | bytes) -> bytes:
    data = subject if isinstance(subject, bytes) else subject.encode()
    return hashlib.blake2b(data, digest_size=HASH_BYTES).digest()


class ArchiveStore(Protocol):
    """Where segments live: names are '/'-separated paths; `put` is atomic and durable."""

    def put(self, name: str, data: bytes) -> None: ...
    def get(self, name: str) -> bytes: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, name: str) -> None: ...
    def version(self, name: str) -> object: ...
    def lock(self) -> contextlib.AbstractContextManager: ...


class LocalStore:
    """A folder: write to a temporary file, fsync, rename, fsync the folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def get(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def list(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        if not folder.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
        )

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / name).unlink()

    def version(self, name: str) -> object:
        try:
            return (self.root / name).stat().st_mtime_ns
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def lock(self):
        with open(self.root / ".lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def open_store(location: str | Path) -> ArchiveStore:
    """A store from a location: a path or file:// URL (other schemes are for later)."""
    text = str(location)
    if "://" in text and not text.startswith("file://"):
        raise ValueError(f"unsupported archive location {text!r} (a folder or file:// URL)")
    return LocalStore(Path(text.removeprefix("file://")))


@dataclass(frozen=True, order=True)
class Segment:
    log: str
    partition: int
    first: int
    last: int

    @property
    def name(self) -> str:
        return f"{self.log}/{self.partition:04d}/{self.first:016d}-{self.last:016d}"

    @classmethod
    def parse(cls, path: str) -> "Segment | None":
        parts = path.split("/")
        if len(parts) < 4 or not parts[-1].endswith(".seg"):
            return None
        first, _, last = parts[-1][:-4].partition("-")
        return cls(parts[-3], int(parts[-2]), int(first), int(last))


def encode_segment(records: list[Record]) -> bytes:
    return _compress(msgpack.packb(records, use_bin_type=True))  # a tuple packs as the array a list does


def decode_segment(data: bytes) -> list[Record]:
    return [tuple(r) for r in msgpack.unpackb(_decompress(data), raw=False)]


class Archive:
    """One topic's archive over a store. Synchronous: callers in an event loop use a thread."""

    def __init__(self, store: ArchiveStore, topic: str) -> None:
        self.store = store
        self.topic = topic
        self._erased: set[bytes] = set()
        self._erased_version: object = None

    # --- reading -------------------------------------------------------------------

    def logs(self) -> list[str]:
        return sorted({path.split("/")[1] for path in self.store.list(self.topic) if path.count("/") >= 3})

    def segments(self, log_id: str) -> list[Segment]:
        found = (Segment.parse(p) for p in self.store.list(f"{self.topic}/{log_id}"))
        return sorted(s for s in found if s is not None)

    def ends(self, log_id: str) -> dict[int, int]:
        """Per partition, the offset after the archive's unbroken run of covered offsets."""
        return self.coverage(log_id).ends

    def coverage(self, log_id: str) -> "Coverage":
        """What the segments cover per partition: where the first run of touching segments ends, and every hole."""
        return coverage_of(self.segments(log_id))

    def count(self, log_id: str) -> int:
        total = 0
        for segment in self.segments(log_id):
            total += self._index(segment)["count"]
        return total

    def read(self, segment: Segment) -> list[Record]:
        return decode_segment(self.store.get(f"{self.topic}/{segment.name}.seg"))

    def records(self, log_id: str) -> Iterator[tuple[int, list[Record]]]:
        """(partition, records) in offset order per partition, partitions taking turns, each offset once."""
        queues: dict[int, list[Segment]] = {}
        for segment in self.segments(log_id):
            queues.setdefault(segment.partition, []).append(segment)
        done: dict[int, int] = {}
        while queues:
            for partition in sorted(queues):
                segment = queues[partition].pop(0)
                if not queues[partition]:
                    del queues[partition]
                after = done.get(partition, -1)
                records = [r for r in self.read(segment) if r[0] > after]  # overlaps: two writers during a rebalance
                if records:
                    done[partition] = records[-1][0]
                    yield partition, records

    def _index(self, segment: Segment) -> dict:
        try:
            return msgpack.unpackb(self.store.get(f"{self.topic}/{segment.name}.idx"), raw=False)
        except FileNotFoundError:  # a crash between the segment and its index
            return _index_of(self.read(segment), segment)

    # --- writing -------------------------------------------------------------------

    def write(
        self,
        log_id: str,
        partition: int,
        records: list[tuple[int, bytes, bytes, str | None]],
        first: int | None = None,
        last: int | None = None,
    ) -> Segment | None:
        """Seals one segment of (offset, key, value, user id) records covering offsets `first` to `last`
        (default: the records' own); erased people's are left out. A range without records is written too:
        it tiles the log over offsets that hold nothing to archive."""
        first = records[0][0] if first is None and records else first
        last = records[-1][0] if last is None and records else last
        if first is None or last is None or last < first:
            return None
        with self.store.lock():
            erased = self.erased()
            hashed = _hasher()
            kept = [
                r
                for r in records
                if not erased or not (hashed(r[1]) in erased or (r[3] is not None and hashed(r[3]) in erased))
            ]
            segment = Segment(log_id, partition, first, last)
            subjects = _subjects(kept)
            self.store.put(f"{self.topic}/{segment.name}.seg", encode_segment([r[:3] for r in kept]))
            self.store.put(
                f"{self.topic}/{segment.name}.idx",
                msgpack.packb(
                    {
                        "first": segment.first,
                        "last": segment.last,
                        "count": len(kept),
                        "subjects": subjects,
                        "sealed_at": time.time(),
                    }
                ),
            )
        return segment

    # --- erasure -------------------------------------------------------------------

    def erased(self) -> set[bytes]:
        name = f"{self.topic}/erased"
        version = self.store.version(name)
        if version != self._erased_version:
            try:
                raw = self.store.get(name)
            except FileNotFoundError:
                raw = b""
            self._erased = {raw[i : i + HASH_BYTES] for i in range(0, len(raw), HASH_BYTES)}
            self._erased_version = version
        return self._erased

    def forget(self, subjects: Iterable[str]) -> int:
        """Removes every event of these visitor ids and user ids; returns how many were removed."""
        hashes = {subject_hash(s) for s in subjects if s}
        if not hashes:
            return 0
        removed = 0
        with self.store.lock():
            known = self.erased()
            if hashes - known:
                self.store.put(f"{self.topic}/erased", b"".join(sorted(known | hashes)))
            for log_id in self.logs():
                for segment in self.segments(log_id):
                    index = self._index(segment)
                    held = index["subjects"]
                    if not any(held[i : i + HASH_BYTES] in hashes for i in range(0, len(held), HASH_BYTES)):
                        continue
                    records = self.read(segment)
                    kept = [r for r in records if not _about(r, hashes)]
                    removed += len(records) - len(kept)
                    self.store.put(f"{self.topic}/{segment.name}.seg", encode_segment(kept))
                    self.store.put(
                        f"{self.topic}/{segment.name}.idx",
                        msgpack.packb(dict(_index_of(kept, segment), sealed_at=index.get("sealed_at"))),
                    )
        return removed


def _user_of(value: bytes) -> str | None:
    try:
        user = msgpack.unpackb(value, raw=False, strict_map_key=False).get("user_id")
    except Exception:
        return None
    return user if isinstance(user, str) else None


def _about(record: Record, hashes: set[bytes]) -> bool:
    offset, key, value = record
    if key is not None and subject_hash(key) in hashes:
        return True
    user = _user_of(value)
    return user is not None and subject_hash(user) in hashes


def _hasher() -> Callable[[str | bytes], bytes]:
    """subject_hash, each subject hashed once: a segment holds many events of each visitor and user."""
    known: dict[str | bytes, bytes] = {}

    def hashed(subject: str | bytes) -> bytes:
        found = known.get(subject)
        if found is None:
            found = known[subject] = subject_hash(subject)
        return found

    return hashed


def _subjects(records) -> bytes:
    hashed = _hasher()
    found = set()
    for record in records:
        key = record[1]
        user = record[3] if len(record) > 3 else _user_of(record[2])
        if key is not None:
            found.add(hashed(key))
        if user:
            found.add(hashed(user))
    return b"".join(sorted(found))


def _index_of(records: list[Record], segment: Segment) -> dict:
    return {"first": segment.first, "last": segment.last, "count": len(records), "subjects": _subjects(records)}


@dataclass(frozen=True)
class Coverage:
    ends: dict[int, int]  # partition -> the offset after the first unbroken run of covered offsets
    gaps: list[tuple[int, int, int]]  # (partition, first, last) offsets between segments that no segment covers


def coverage_of(segments: Iterable[Segment]) -> Coverage:
    """Pure: the runs of touching or overlapping segments per partition (segments of one log)."""
    ends: dict[int, int] = {}
    reach: dict[int, int] = {}  # the offset after the last one any segment so far covers
    broken: set[int] = set()
    gaps: list[tuple[int, int, int]] = []
    for segment in sorted(segments, key=lambda s: (s.partition, s.first, s.last)):
        partition = segment.partition
        if partition in reach and segment.first > reach[partition]:
            gaps.append((partition, reach[partition], segment.first - 1))
            broken.add(partition)
        # the archive of a partition starts where its first segment does
        reach[partition] = max(reach.get(partition, 0), segment.last + 1)
        if partition not in broken:
            ends[partition] = reach[partition]
    return Coverage(ends, gaps)


@dataclass
class _Buffer:
    records: list = field(default_factory=list)
    since: float = 0.0
    first: int | None = None  # the first offset fetched since the last seal, dead letters included
    end: int = 0  # the offset after the last one fetched


class ArchiveWriter:
    """The worker's side: buffers applied records per partition and seals them into segments.

    A segment is sealed when its partition holds `max_events` records or the oldest is
    `seal_s` old; the worker commits offsets only up to what `seal` returns. Records at
    or below what the archive already holds (another worker sealed them before a
    rebalance) are skipped.
    """

    def __init__(self, archive: Archive, seal_s: float = 10.0, max_events: int = 50_000, clock=time.monotonic) -> None:
        self.archive = archive
        self.seal_s = seal_s
        self.max_events = max_events
        self.clock = clock
        self.buffers: dict[int, _Buffer] = {}
        self.archived: dict[tuple[str, int], int] = {}  # (log, partition) -> next offset to archive
        self.events = 0
        self.segments = 0

    def add(
        self,
        partition: int,
        records: list[tuple[int, bytes, bytes, str | None]],
        first: int | None = None,
        end: int | None = None,
    ) -> None:
        """Buffers applied records fetched from offsets `first` to `end` - 1 (default: the records' own; a
        fetch's range includes the records left out, such as dead letters, so the segments tile the log)."""
        first = records[0][0] if first is None and records else first
        end = records[-1][0] + 1 if end is None and records else end
        if first is None or end is None:
            return
        buffer = self.buffers.setdefault(partition, _Buffer())
        if buffer.first is None:
            buffer.since, buffer.first = self.clock(), first
        buffer.records.extend(records)
        buffer.end = max(buffer.end, end)

    def due(self) -> bool:
        now = self.clock()
        return any(
            b.first is not None and (len(b.records) >= self.max_events or now - b.since >= self.seal_s)
            for b in self.buffers.values()
        )

    def pending(self) -> int:
        return sum(len(b.records) for b in self.buffers.values())

    def holding(self) -> bool:
        """Whether anything fetched awaits its segment (a range of dead letters alone counts too)."""
        return any(b.first is not None for b in self.buffers.values())

    def seal(self, log_id: str, partitions: Iterable[int] | None = None) -> dict[int, int]:
        """Writes the buffered records of `partitions` (default all); returns {partition: next offset}."""
        return self.write(log_id, self.take(partitions))

    def take(self, partitions: Iterable[int] | None = None) -> dict[int, "_Buffer"]:
        """Takes the buffers of `partitions` (default all) out, to `write` them while new records are added."""
        taken = {}
        for partition in sorted(self.buffers if partitions is None else partitions):
            buffer = self.buffers.pop(partition, None)
            if buffer is not None and buffer.first is not None:
                taken[partition] = buffer
        return taken

    def put_back(self, taken: dict[int, "_Buffer"]) -> None:
        """Returns taken buffers that could not be written, in front of what was added since."""
        for partition, buffer in taken.items():
            since = self.buffers.get(partition)
            if since is not None and since.first is not None:
                buffer.records.extend(since.records)
                buffer.end = max(buffer.end, since.end)
            self.buffers[partition] = buffer

    def write(self, log_id: str, taken: dict[int, "_Buffer"]) -> dict[int, int]:
        """Seals taken buffers into segments; returns {partition: next offset}. Touches no buffer still
        open, so a thread may run it while the event loop adds records (one write at a time)."""
        sealed = {}
        for partition, buffer in taken.items():
            key = (log_id, partition)
            if key not in self.archived:
                self.archived[key] = self.archive.ends(log_id).get(partition, 0)
            start = self.archived[key]
            records = [r for r in buffer.records if r[0] >= start]
            # Below `start` the archive holds the range already (another worker sealed it before a rebalance);
            # a first fetched offset above it is a hole, left visible for `coverage` to report.
            first = max(start, buffer.first)
            if buffer.end > first:
                self.archive.write(log_id, partition, records, first, buffer.end - 1)
                self.events += len(records)
                self.segments += 1
            end = max(start, buffer.end)
            self.archived[key] = end
            sealed[partition] = end
        return sealed

    def discard(self) -> int:
        """Drops what is buffered (the log it came from is gone); returns how many records."""
        dropped = self.pending()
        self.buffers.clear()
        return dropped


def open_archive(settings) -> Archive | None:
    """The archive named by the settings (`CLICKSTREAM_ARCHIVE`), or None when it is off."""
    location = settings.archive_location
    if location is None:
        return None
    return Archive(open_store(location), settings.topic)
