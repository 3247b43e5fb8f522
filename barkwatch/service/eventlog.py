"""The service's event log: JSON Lines files in one folder, rotated by day or by size, that a full disk never
corrupts; and reading them back for ``barkwatch events`` (time filters, ``tail -F``-like following, a table).

Files in the events folder, oldest first:

- ``barks-YYYY-MM-DD.jsonl`` (``rotate: daily``): the records whose ``start`` falls on that local date, the
  date in the record's own UTC offset, so a night across a DST change stays in one file;
- ``barks-YYYYMMDDTHHMMSSZ[-N].jsonl`` (``rotate: size``): a full ``barks.jsonl``, renamed at that UTC time
  (``-N`` when several were renamed in one second);
- ``barks.jsonl`` (``rotate: size``): the file being written.

Neither numpy nor torch is imported here, so ``barkwatch events`` starts fast.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..config import EventsConfig
from ..detection.events import EventLogError

log = logging.getLogger(__name__)

CURRENT = "barks.jsonl"
MB = 1_000_000  # max_file_mb counts decimal megabytes
BACKLOG_MAX = 10_000  # records kept in memory while the disk is full (about 5 MB)
_DAILY = re.compile(r"barks-(\d{4}-\d{2}-\d{2})\.jsonl")
_SIZED = re.compile(r"barks-(\d{8}T\d{6}Z)(?:-(\d+))?\.jsonl")
_STAMP = "%Y%m%dT%H%M%SZ"
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SLACK = timedelta(days=1)  # how far a record's time may stray from its file's name (UTC offsets, clock fixes)


def _local_now() -> datetime:
    return datetime.now().astimezone()


def _aware(when: datetime) -> datetime:
    """A naive datetime is local time."""
    return when if when.tzinfo is not None else when.astimezone()


def _record_start(record: dict) -> datetime | None:
    """The record's ``start`` as an aware datetime, or None if it has none that parses."""
    start = record.get("start")
    if not isinstance(start, str):
        return None
    try:
        return _aware(datetime.fromisoformat(start))
    except ValueError:
        return None


# Log files: names, order, age


@dataclass(frozen=True)
class LogFile:
    """One log file of the events folder and what its name says."""

    path: Path
    day: date | None = None  # a daily file's local date
    rotated: datetime | None = None  # when a size-rotated file was renamed (UTC)
    seq: int = 0  # the -N of a size-rotated name

    def sort_key(self) -> tuple[float, int]:
        """Time order across both naming schemes: a daily file at the start of its day, a rotated file at its
        renaming (when its records end), ``barks.jsonl`` last."""
        if self.day is not None:
            return datetime.combine(self.day, time()).astimezone().timestamp(), 0
        if self.rotated is not None:
            return self.rotated.timestamp(), self.seq
        return float("inf"), 0

    def ends(self) -> datetime | None:
        """When the file's records end, by its name: a daily file's next local midnight, a rotated file's
        renaming; None for ``barks.jsonl``."""
        if self.day is not None:
            return datetime.combine(self.day + timedelta(days=1), time()).astimezone()
        return self.rotated


def parse_log_name(path: Path) -> LogFile | None:
    """The ``LogFile`` of a path named like a log file, else None."""
    name = path.name
    if name == CURRENT:
        return LogFile(path)
    if m := _DAILY.fullmatch(name):
        try:
            return LogFile(path, day=date.fromisoformat(m[1]))
        except ValueError:
            return None
    if m := _SIZED.fullmatch(name):
        try:
            stamp = datetime.strptime(m[1], _STAMP).replace(tzinfo=timezone.utc)
        except ValueError:
            return None
        return LogFile(path, rotated=stamp, seq=int(m[2] or 0))
    return None


def log_files(events_dir: str | os.PathLike) -> list[LogFile]:
    """The log files of ``events_dir`` in time order (none if the folder does not exist)."""
    try:
        paths = list(Path(events_dir).iterdir())
    except FileNotFoundError:
        return []
    files = [f for p in paths if (f := parse_log_name(p)) is not None and p.is_file()]
    return sorted(files, key=LogFile.sort_key)


# Writing


class EventFolder:
    """Appends records as JSON Lines to the files of ``events_dir`` (created), rotated as ``settings`` say.

    Each record is one line written by a single ``os.write`` (no buffer of ours), so ``tail -f`` sees it at
    once. A write that fails part-way (a full disk) is cut back to the file's previous length, so no half line
    is ever left; the record then waits in memory (at most ``backlog_max``, the oldest dropped and counted in
    ``dropped``) and every later ``write`` first retries the waiting ones, in order, so the log recovers by
    itself when space returns. ``write`` raises ``EventLogError`` (one line: the file, the cause, how many
    records wait) while records are waiting; log it as a warning and carry on.

    ``keep_days`` > 0 deletes log files older than that, judged by the date or time in their names, when the
    log opens and at each rotation. ``now`` (aware) dates renamed files and ages old ones.
    """

    def __init__(self, events_dir: str | os.PathLike, settings: EventsConfig,
                 now: Callable[[], datetime] = _local_now, *, backlog_max: int = BACKLOG_MAX):
        if settings.rotate not in ("daily", "size"):
            raise ValueError(f"events.rotate must be daily or size, got {settings.rotate!r}")
        if settings.rotate == "size" and not settings.max_file_mb > 0:
            raise ValueError(f"events.max_file_mb must be > 0, got {settings.max_file_mb}")
        if not settings.keep_days >= 0:
            raise ValueError(f"events.keep_days must be >= 0 (0 keeps every file), got {settings.keep_days}")
        self.dir = Path(events_dir)
        self.settings = settings
        self.dropped = 0  # records dropped from a full backlog since the log opened
        self._now = now
        self._backlog: deque[tuple[str, bytes]] = deque()  # (file name, line), oldest first
        self._backlog_max = backlog_max
        self._fd: int | None = None
        self._name: str | None = None  # the open file's name
        self._expire_due = False
        self._lock = threading.Lock()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EventLogError(f"{self.dir}: cannot create the events folder ({e.strerror or e}); "
                                "check its path and permissions") from e
        self._expire()

    @property
    def waiting(self) -> int:
        """Records in memory, not yet written."""
        return len(self._backlog)

    @property
    def path(self) -> Path | None:
        """The file being written, None before the first write."""
        return self.dir / self._name if self._name is not None else None

    def write(self, record: dict) -> None:
        """Append ``record`` after any records still waiting; raises ``EventLogError`` if it must wait too,
        ``ValueError`` if it cannot be written as JSON at all (a NaN, an object JSON does not know)."""
        line = (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        with self._lock:
            self._backlog.append((self._file_name(record), line))
            self._drain()

    def close(self) -> None:
        """Write what still waits (one last try) and close; ``EventLogError`` if records could not be written."""
        with self._lock:
            try:
                self._drain()
            finally:
                self._close_fd()

    def __enter__(self) -> EventFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _file_name(self, record: dict) -> str:
        if self.settings.rotate == "size":
            return CURRENT
        start = _record_start(record)
        day = start.date() if start is not None else self._now().astimezone().date()  # its own offset's date
        return f"barks-{day.isoformat()}.jsonl"

    def _drain(self) -> None:
        while self._backlog:
            name, line = self._backlog[0]
            try:
                self._append(name, line)
            except OSError as e:
                while len(self._backlog) > self._backlog_max:
                    self._backlog.popleft()
                    self.dropped += 1
                dropped = f", {self.dropped} oldest dropped" if self.dropped else ""
                raise EventLogError(f"{self.dir / name}: cannot write events ({e.strerror or e}); "
                                    f"{len(self._backlog)} record(s) kept in memory{dropped}") from e
            self._backlog.popleft()

    def _append(self, name: str, line: bytes) -> None:
        if name == CURRENT:
            self._rotate_by_size(len(line))
        fd = self._open(name)
        before = os.lseek(fd, 0, os.SEEK_END)
        try:
            view = memoryview(line)
            while view:  # a short write means the disk filled part-way: the next call raises ENOSPC
                view = view[os.write(fd, view):]
        except OSError:
            try:
                os.ftruncate(fd, before)  # no half line: readers and the retry see whole records only
            except OSError as e:
                log.error("%s: cannot cut a half-written record off (%s); remove its last line by hand",
                          self.dir / name, e.strerror or e)
            raise

    def _open(self, name: str) -> int:
        path = self.dir / name
        if self._fd is not None and self._name == name and _same_file(path, self._fd):
            return self._fd
        expire = self._expire_due or (self._name is not None and self._name != name)
        self._close_fd()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._name = name
        if expire:  # after the new file exists, so it cannot get the inode of one deleted (follow tells by inode)
            self._expire_due = False
            self._expire()
        return self._fd

    def _rotate_by_size(self, adding: int) -> None:
        path = self.dir / CURRENT
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0 or size + adding <= self.settings.max_file_mb * MB:  # a huge line still gets a file
            return
        self._close_fd()
        os.rename(path, self._rotated_path())
        self._expire_due = True

    def _rotated_path(self) -> Path:
        stamp = self._now().astimezone(timezone.utc).strftime(_STAMP)
        path, n = self.dir / f"barks-{stamp}.jsonl", 0
        while path.exists():
            n += 1
            path = self.dir / f"barks-{stamp}-{n}.jsonl"
        return path

    def _expire(self) -> None:
        """Delete the log files that ended more than ``keep_days`` ago, except the one open."""
        if self.settings.keep_days <= 0:
            return
        cutoff = self._now() - timedelta(days=self.settings.keep_days)
        for f in log_files(self.dir):
            ends = f.ends()
            if ends is None or ends >= cutoff or f.path.name == self._name:
                continue
            try:
                f.path.unlink()
                log.info("%s: deleted (older than events.keep_days = %g)", f.path, self.settings.keep_days)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("%s: cannot delete this old event log (%s); delete it by hand", f.path, e.strerror or e)

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _identity(path: Path) -> tuple[int, int] | None:
    """(inode, device) of the file at ``path``, None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_dev


def _same_file(path: Path, fd: int) -> bool:
    """Whether ``path`` is still the file open as ``fd`` (not moved away or deleted by someone else)."""
    st = os.fstat(fd)
    return _identity(path) == (st.st_ino, st.st_dev)


# Reading


def _in_range(start: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or start >= since) and (until is None or start < until)


class _Lines:
    """Complete lines of one log file as records, read from where the last read stopped; malformed lines are
    counted and reported in one warning per file."""

    def __init__(self, path: Path):
        self.path = path
        self.done = 0  # bytes of complete lines consumed
        self.lineno = 0
        self.bad = 0
        self.first_bad = 0
        self._file = None
        self.identity: tuple[int, int] | None = None  # (inode, device) of the open file

    def open(self) -> bool:
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - held across polls while following
        except FileNotFoundError:
            return False
        except OSError as e:
            log.warning("%s: cannot read it (%s); run as the service's user or with sudo", self.path,
                        e.strerror or e)
            return False
        st = os.fstat(self._file.fileno())
        self.identity = (st.st_ino, st.st_dev)
        return True

    def deleted(self) -> bool:
        """Whether the open file has no name left."""
        return self._file is not None and os.fstat(self._file.fileno()).st_nlink == 0

    def read(self, partial: bool = False) -> Iterator[dict]:
        """Records of the lines completed since the last read. A line without its newline is left for the next
        read (a writer may be part-way through it), unless ``partial``, when it is read as a last line."""
        if self._file is None and not self.open():
            return
        if os.fstat(self._file.fileno()).st_size < self.done:  # truncated by someone: start again
            self.done = 0
        self._file.seek(self.done)
        data = self._file.read()
        end = len(data) if partial else data.rfind(b"\n") + 1
        for raw in data[:end].splitlines():
            self.lineno += 1
            if record := self._parse(raw):
                yield record
        self.done += end

    def _parse(self, raw: bytes) -> dict | None:
        if not raw.strip():
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if isinstance(record, dict) and _record_start(record) is not None:
            return record
        self.bad += 1
        if self.bad == 1:
            self.first_bad = self.lineno
        return None

    def warn(self) -> None:
        if self.bad:
            log.warning("%s: skipped %d malformed line(s) (the first is line %d); the other records were read",
                        self.path, self.bad, self.first_bad)
            self.bad = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _filtered(records: Iterable[dict], since: datetime | None, until: datetime | None) -> Iterator[dict]:
    for record in records:
        if _in_range(_record_start(record), since, until):
            yield record


def _may_hold(f: LogFile, since: datetime | None, until: datetime | None) -> bool:
    """Whether the file's name allows records in [since, until) (its records start on its day, or before its
    renaming), with a day's slack either side."""
    ends = f.ends()
    if since is not None and ends is not None and ends + _SLACK < since:
        return False
    if until is not None and f.day is not None:
        return datetime.combine(f.day, time()).astimezone() - _SLACK < until
    return True


def read_events_file(path: Path, since: datetime | None = None,
                     until: datetime | None = None) -> Iterator[dict]:
    """The records of one log file in ``[since, until)``, malformed lines skipped with one warning."""
    lines = _Lines(path)
    try:
        yield from _filtered(lines.read(partial=True), since, until)
    finally:
        lines.close()
        lines.warn()


def read_events(events_dir: str | os.PathLike, since: datetime | None = None,
                until: datetime | None = None) -> Iterator[dict]:
    """Every record of the log files in ``events_dir``, file by file in time order, whose ``start`` is in
    ``[since, until)`` (naive means local time; None: no bound). Malformed lines (not a JSON object with an ISO
    ``start``) are skipped with one warning per file."""
    since = _aware(since) if since is not None else None
    until = _aware(until) if until is not None else None
    for f in log_files(events_dir):
        if _may_hold(f, since, until):
            yield from read_events_file(f.path, since, until)


def follow(events_dir: str | os.PathLike, since: datetime | None = None, poll_s: float = 0.5,
           stop: threading.Event | None = None) -> Iterator[dict]:
    """Like ``tail -F``: the records since ``since`` (None: all), then each new one as it is appended, until
    ``stop`` is set (checked every ``poll_s``; None: forever).

    Files are told apart by inode, not name: a ``barks.jsonl`` renamed by a size rotation is read to its end,
    then the files rotated meanwhile, then the new ``barks.jsonl``; a new day's file takes over from the day
    before. Only the newest file is kept open, so a record written to an older file after a newer one appeared
    (rare: a late record for the previous day) is not shown.
    """
    since = _aware(since) if since is not None else None
    stop = stop if stop is not None else threading.Event()
    files = _Followed(Path(events_dir), since)
    try:
        while not stop.is_set():
            got = False
            for lines, keep in files.due():
                for record in _filtered(lines.read(), since, None):
                    got = True
                    yield record
                lines.warn()
                if not keep:
                    files.drop(lines)
            if not got:
                stop.wait(poll_s)
    finally:
        files.close()


def follow_file(path: str | os.PathLike, since: datetime | None = None, poll_s: float = 0.5,
                stop: threading.Event | None = None) -> Iterator[dict]:
    """``follow`` for one log file (what ``detect --events`` or ``listen --events FILE`` writes)."""
    since = _aware(since) if since is not None else None
    stop = stop if stop is not None else threading.Event()
    lines = _Lines(Path(path))
    try:
        while not stop.is_set():
            got = False
            for record in _filtered(lines.read(), since, None):
                got = True
                yield record
            lines.warn()
            if not got:
                stop.wait(poll_s)
    finally:
        lines.close()


class _Followed:
    """Which log files ``follow`` has read, by (inode, device), and the ones it holds open."""

    FORGET_AFTER = 3  # listings a file must be missing from before it is forgotten (readdir can miss a
    # file renamed meanwhile; forgetting frees its inode for a new file)

    def __init__(self, events_dir: Path, since: datetime | None):
        self.dir = events_dir
        self.since = since
        self.open: dict[tuple[int, int], _Lines] = {}
        self.seen: dict[tuple[int, int], int] = {}  # listings each known file has been missing from

    def due(self) -> list[tuple[_Lines, bool]]:
        """The files to read now, in time order, each with whether to keep it open: those held open and every
        file not seen before (all of them at first); only the newest stays open."""
        files, opened = self._snapshot()
        present = {ident for _, ident in files}
        for ident in list(self.seen):
            self.seen[ident] = 0 if ident in present else self.seen[ident] + 1
            if self.seen[ident] >= self.FORGET_AFTER and ident not in self.open:
                del self.seen[ident]
        # A held file missing from the listing was deleted (finish it) or renamed (it shows up next time).
        due = [(lines, False) for ident, lines in self.open.items() if ident not in present and lines.deleted()]
        for n, (f, ident) in enumerate(files):
            if ident in opened:
                self.open[ident] = opened[ident]
            if ident in self.open:
                self.seen[ident] = 0
                due.append((self.open[ident], n == len(files) - 1))
            elif not _may_hold(f, self.since, None):
                self.seen[ident] = 0  # older than since: never read
        return due

    def _snapshot(self, tries: int = 10) -> tuple[list[tuple[LogFile, tuple[int, int]]], dict]:
        """The log files with their identities, and the new ones opened, from one settled state of the folder.

        A listing is names, then a stat each: a rotation in between can show the new ``barks.jsonl`` without
        the file renamed from the old one, which would then come later, out of order. So a listing counts once
        the new files open as the same files and a second listing matches it."""
        for attempt in range(tries):
            files = self._listing()
            new = [(f, ident) for f, ident in files
                   if ident not in self.open and ident not in self.seen and _may_hold(f, self.since, None)]
            opened: dict[tuple[int, int], _Lines] = {}
            for f, ident in new:
                lines = _Lines(f.path)
                if lines.open() and lines.identity == ident:
                    opened[ident] = lines
                else:
                    lines.close()
            if (len(opened) == len(new) and self._listing() == files) or attempt == tries - 1:
                return files, opened  # after the last try, what did open; the rest next time
            for lines in opened.values():
                lines.close()
        raise AssertionError("tries must be >= 1")

    def _listing(self) -> list[tuple[LogFile, tuple[int, int]]]:
        return [(f, ident) for f in log_files(self.dir) if (ident := _identity(f.path)) is not None]

    def drop(self, lines: _Lines) -> None:
        self.open.pop(lines.identity, None)
        lines.close()

    def close(self) -> None:
        for lines in self.open.values():
            lines.close()
        self.open.clear()


# Times and text for people


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """A point in time from a command line, as an aware datetime: ``90s``, ``30m``, ``2h``, ``7d``, ``1w`` ago,
    ``today`` or ``yesterday`` (local midnight), a date ``2026-11-25`` (its local midnight) or a datetime
    ``2026-11-25T08:00`` (local unless it has an offset). ``now`` defaults to the current time."""
    now = _aware(now) if now is not None else _local_now()
    word = text.strip().lower()
    if m := _SPAN.fullmatch(word):
        return now - timedelta(**{_UNITS[m[2]]: float(m[1])})
    if word in ("today", "yesterday"):
        day = now.astimezone().date() - timedelta(days=word == "yesterday")
        return datetime.combine(day, time()).astimezone()  # the local offset of that midnight, DST or not
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use 2h, 7d, today or 2026-11-25") from None
    return _aware(when)


def _when(record: dict) -> str:
    """The record's start as the wall-clock time it was where it was heard."""
    start = record.get("start")
    try:
        return datetime.fromisoformat(start).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return str(start)


def _clip_name(record: dict) -> str:
    clip = record.get("clip")
    return Path(clip).name if clip else "-"


def _number(value, fmt: str, unit: str = "") -> str:
    return format(value, fmt) + unit if isinstance(value, (int, float)) else "-"


def format_table(records: Iterable[dict], every: bool = False) -> str:
    """A table of barks for people: local start, duration, peak score, clip file name; one row per event, from
    its ``bark`` record, or ``ongoing`` while only its ``bark_start`` is there. ``every``: a row per record,
    ``bark_start`` ones too, with an event column first. "no barks" when there is nothing to show."""
    if every:
        chosen = list(records)
    else:
        by_id: dict[object, dict] = {}  # in the order events began; a bark replaces its bark_start
        for r in records:
            if r.get("event") == "bark" or r.get("id") not in by_id:
                by_id[r.get("id")] = r
        chosen = list(by_id.values())
    if not chosen:
        return "no barks"
    header = ["start", "duration", "peak", "clip"]
    rows = [[_when(r), "ongoing" if r.get("event") == "bark_start" and not every
             else _number(r.get("duration_s"), ".1f", " s"), _number(r.get("peak_score"), ".3f"), _clip_name(r)]
            for r in chosen]
    if every:
        header.insert(0, "event")
        for row, r in zip(rows, chosen):
            row.insert(0, str(r.get("event", "?")))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = {"duration", "peak"}
    return "\n".join("  ".join(cell.rjust(w) if name in numeric else cell.ljust(w)
                               for cell, w, name in zip(row, widths, header)).rstrip()
                     for row in [header, *rows])


def format_line(record: dict) -> str:
    """One record as a line for people, for following the log."""
    peak = _number(record.get("peak_score"), ".3f")
    if record.get("event") == "bark_start":
        return f"{_when(record)}  bark started (peak {peak} so far)"
    duration = _number(record.get("duration_s"), ".1f", " s")
    clip = f", clip {_clip_name(record)}" if record.get("clip") else ""
    return f"{_when(record)}  bark {duration}, peak {peak}{clip}"
