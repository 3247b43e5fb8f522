"""The hub's database: one SQLite file (the standard library's ``sqlite3``) in WAL mode, so the pages read
while the writer writes. An event is stored once, by its id: a message delivered twice, or an event that came
over MQTT and again from a backfill, is one row.

One ``Store`` is one connection, for one thread at a time: the writer, the backfill and the pages each open
their own.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .merge import Heard
from .messages import Row

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,          -- the node's event id
    node TEXT NOT NULL,
    room TEXT NOT NULL,           -- the node's room when it was stored
    start REAL NOT NULL,          -- Unix seconds
    start_iso TEXT NOT NULL,      -- as the node wrote it, with its UTC offset
    duration_s REAL NOT NULL,
    peak_score REAL,
    level_dbfs REAL,
    clip INTEGER NOT NULL,        -- the node kept a clip of it
    received REAL NOT NULL,       -- when the hub stored it
    via TEXT NOT NULL,            -- mqtt or backfill
    record TEXT NOT NULL          -- the record as received, JSON
);
CREATE INDEX IF NOT EXISTS events_start ON events (start);
CREATE TABLE IF NOT EXISTS nodes (
    name TEXT PRIMARY KEY,
    room TEXT,
    url TEXT,                     -- its web interface, as it announced it
    online INTEGER,               -- its status topic: 1 online, 0 offline (its last will), NULL unknown
    state TEXT,                   -- its latest state message, JSON
    seen REAL,                    -- when the hub last heard from it
    synced REAL                   -- every event that began after this is in the database (backfill)
);
"""


class StoreError(Exception):
    """The database cannot be used; one line naming the file."""


@dataclass(frozen=True)
class NodeRow:
    name: str
    room: str
    url: str | None
    online: bool | None
    state: dict
    seen: float | None
    synced: float | None


class Store:
    def __init__(self, path: str | Path, *, timeout_s: float = 10.0):
        self.path = Path(path)
        try:
            if self.path.parent != Path("") and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: a power cut may lose the last commits, never corrupt
            self.db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"{self.path}: cannot open the hub's database ({e})") from None
        self._lock = threading.Lock()  # one statement at a time on this connection

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing

    def add(self, rows: Iterable[Row], via: str, rooms: dict[str, str] | None = None,
            received: float | None = None) -> int:
        """Store ``rows`` in one transaction, each once; the number that were new. A row without a room takes
        ``rooms``' for its node, else the node's name."""
        rooms = rooms or {}
        received = time.time() if received is None else received
        values = [(r.id, r.node, r.room or rooms.get(r.node) or r.node, r.start, r.start_iso, r.duration_s,
                   r.peak_score, r.level_dbfs, int(r.clip), received, via, r.record) for r in rows]
        with self._lock:
            before = self.db.total_changes
            self.db.execute("BEGIN")
            try:
                self.db.executemany("INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", values)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            return self.db.total_changes - before

    def set_node(self, name: str, **fields) -> None:
        """Create or update a node's row: any of room, url, online, state (a dict), seen, synced."""
        if "state" in fields:
            fields["state"] = json.dumps(fields["state"], ensure_ascii=False)
        columns = ", ".join(fields)
        updates = ", ".join(f"{c}=excluded.{c}" for c in fields) or "name=name"
        with self._lock:
            self.db.execute(f"INSERT INTO nodes (name{', ' if fields else ''}{columns}) VALUES "
                            f"({', '.join('?' * (len(fields) + 1))}) ON CONFLICT(name) DO UPDATE SET {updates}",
                            (name, *fields.values()))

    # -- reading

    def nodes(self) -> list[NodeRow]:
        with self._lock:
            rows = self.db.execute("SELECT name, room, url, online, state, seen, synced FROM nodes "
                                   "ORDER BY name").fetchall()
        return [NodeRow(n, room or n, url, None if online is None else bool(online), json.loads(state or "{}"),
                        seen, synced) for n, room, url, online, state, seen, synced in rows]

    def heard(self, since: float, until: float, *, margin_s: float = 0.0) -> list[Heard]:
        """The events that began in [since - margin_s, until + margin_s), oldest first."""
        with self._lock:
            rows = self.db.execute("SELECT id, node, room, start, duration_s, level_dbfs, peak_score, clip "
                                   "FROM events WHERE start >= ? AND start < ? ORDER BY start",
                                   (since - margin_s, until + margin_s)).fetchall()
        return [Heard(i, n, room, s, d, lv, p, bool(c)) for i, n, room, s, d, lv, p, c in rows]

    def signature(self, since: float, until: float) -> tuple[int, int]:
        """(how many events began in [since, until), the highest row number among them): changes whenever an
        event of that span is stored, so what was computed from the span can be kept until then."""
        with self._lock:
            count, top = self.db.execute("SELECT count(*), max(rowid) FROM events WHERE start >= ? AND start < ?",
                                         (since, until)).fetchone()
        return count, top or 0

    def event(self, event_id: str) -> tuple[str, bool] | None:
        """``(node, has a clip)`` of a stored event, or None."""
        with self._lock:
            row = self.db.execute("SELECT node, clip FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else (row[0], bool(row[1]))

    def records(self, ids: Iterable[str]) -> dict[str, dict]:
        """The stored records of ``ids``, by id."""
        ids = list(ids)
        found: dict[str, dict] = {}
        with self._lock:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                for event_id, record in self.db.execute(
                        f"SELECT id, record FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                    found[event_id] = json.loads(record)
        return found

    def count(self) -> int:
        with self._lock:
            return self.db.execute("SELECT count(*) FROM events").fetchone()[0]
