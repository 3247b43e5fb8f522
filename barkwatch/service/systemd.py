"""Running as a systemd service: readiness and watchdog notifications, and the status file.

``barkwatch listen`` under ``Type=notify`` (see ``systemd/barkwatch.service``) uses this module so:

- ``notify_ready()`` once the model is loaded and the audio stream is open; ``notify_status(text)`` whenever
  the state changes (``systemctl status`` shows the text); ``notify_reloading()`` on SIGHUP, then
  ``notify_ready()`` again once the new config is in force; ``notify_stopping()`` when shutting down.
- ``Watchdog.from_env()`` and ``watchdog.maybe_pet(time.monotonic())`` on every pass of the worker loop.
- a ``StateWriter`` on ``state_path(state_dir)``, written every ``logging.status_every_s`` and at exit (with
  status "stopped"); ``barkwatch status`` reads it back with ``read_state`` and prints ``format_status``.

Outside systemd (no ``$NOTIFY_SOCKET``, no ``$WATCHDOG_USEC``) the notifications are no-ops, so ``listen``
calls them unconditionally. The protocol is sd_notify(3)'s: one datagram of ``KEY=VALUE`` lines to an AF_UNIX
socket, so no libsystemd is needed.

This module imports neither torch nor numpy, so ``barkwatch status`` starts instantly.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Mapping

from ..files import write_atomic

log = logging.getLogger(__name__)

STATE_FILE = "status.json"
STATUSES = ("listening", "reconnecting", "stopped")
STALE_AFTER_UPDATES = 3  # a file this many update intervals old means the writer is stuck
MIN_STALE_S = 10.0  # ... but never less than this, so scheduling jitter on a busy board is not a stall


# --- sd_notify

def sd_notify(message: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send ``message`` (``KEY=VALUE`` lines) to systemd's ``$NOTIFY_SOCKET``; True if it was sent.

    The socket is a file system path or, starting with ``@``, an abstract name. Without ``$NOTIFY_SOCKET``
    (not run by systemd, or not ``Type=notify``) this does nothing and returns False; a failed send also
    returns False rather than raising, since a notification is never worth stopping detection for.
    """
    address = env.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux's abstract namespace
    elif not address.startswith("/"):
        return False  # unset, or a kind this does not speak (systemd 254+ also offers vsock:)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
        return True
    except OSError as e:
        log.debug("sd_notify to %s failed: %s", env.get("NOTIFY_SOCKET"), e)
        return False


def _one_line(text: str) -> str:
    return " ".join(text.split())  # a newline would end the STATUS= field and start a bogus one


def notify_ready(status: str | None = None, env: Mapping[str, str] = os.environ) -> bool:
    """READY=1: start-up (or a reload) is complete; ``systemctl start`` returns only now."""
    return sd_notify("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""), env)


def notify_status(text: str, env: Mapping[str, str] = os.environ) -> bool:
    """STATUS=: one line that ``systemctl status barkwatch`` shows."""
    return sd_notify(f"STATUS={_one_line(text)}", env)


def notify_stopping(env: Mapping[str, str] = os.environ) -> bool:
    """STOPPING=1: shutting down; systemd then waits (up to TimeoutStopSec=) without restarting."""
    return sd_notify("STOPPING=1", env)


def notify_reloading(env: Mapping[str, str] = os.environ) -> bool:
    """RELOADING=1 with MONOTONIC_USEC, as systemd 253+ requires for ``Type=notify-reload`` (older versions
    ignore the timestamp); send ``notify_ready()`` once the reload is done."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return sd_notify(f"RELOADING=1\nMONOTONIC_USEC={usec}", env)


def notify_watchdog(env: Mapping[str, str] = os.environ) -> bool:
    """WATCHDOG=1: still alive. Call it through ``Watchdog.maybe_pet``, not directly."""
    return sd_notify("WATCHDOG=1", env)


# --- watchdog

def watchdog_interval(env: Mapping[str, str] = os.environ) -> float | None:
    """How often, in seconds, to send WATCHDOG=1: half of ``$WATCHDOG_USEC`` (systemd's ``WatchdogSec=``), as
    sd_watchdog_enabled(3) advises. None when no watchdog is configured, when the value is not a positive
    integer, or when ``$WATCHDOG_PID`` is set to another process (the variables were inherited)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
        if "WATCHDOG_PID" in env and int(env["WATCHDOG_PID"]) != os.getpid():
            return None
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


@dataclass
class Watchdog:
    """Sends WATCHDOG=1 at most every ``pet_every`` seconds, and only when ``maybe_pet`` is called.

    Call ``maybe_pet`` from the worker thread's loop (the one that reads audio and scores it), never from a
    timer or a thread of its own: the pets must stop when that loop stalls (a hung device read, a deadlock), so
    that after ``WatchdogSec=`` systemd kills the service and ``Restart=`` brings it back. A separate pinging
    thread would keep a stuck detector "alive" for months.
    """

    pet_every: float
    env: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)
    last: float | None = None  # the ``now`` of the latest pet

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Watchdog | None:
        """A watchdog at the cadence systemd asks for, or None when it asks for none."""
        every = watchdog_interval(env)
        return None if every is None else cls(pet_every=every, env=env)

    def maybe_pet(self, now: float) -> bool:
        """Pet if ``pet_every`` seconds have passed since the last pet (or there was none); ``now`` is
        ``time.monotonic()``. True if a pet was sent."""
        if self.last is not None and now - self.last < self.pet_every:
            return False
        self.last = now
        return notify_watchdog(self.env)


# --- the status file

@dataclass
class ServiceState:
    """What ``listen`` reports about itself in ``<state_dir>/status.json``. Times are local ISO 8601 with their
    UTC offset (``local_iso()``)."""

    pid: int
    started: str
    device: str  # as resolved, e.g. "USB Audio: - (hw:1,0)"
    device_since: str | None = None  # when the current stream opened; None while there is none
    status: str = "listening"  # one of STATUSES
    events_today: int = 0  # barks since local midnight
    last_event: str | None = None  # when the latest bark began
    last_event_duration_s: float | None = None
    overruns: int = 0  # audio blocks lost since start
    outages: int = 0  # times the device went away since start
    windows: int = 0  # windows scored since start
    clips_files: int = 0
    clips_bytes: int = 0
    updated: str = ""  # when this was written
    update_every_s: float = 10.0  # how often it is written: a reader's measure of "stale"
    version: str = ""  # barkwatch's
    model: str = ""  # the model file, and its short hash
    level_dbfs: float | None = None  # mean level of the audio since the last update (None: no audio)


def local_iso(when: datetime | None = None) -> str:
    """``when`` (default: now) as local ISO 8601 to the second, with the UTC offset: "2024-05-01T10:00:00+02:00"."""
    return (when or datetime.now()).astimezone().isoformat(timespec="seconds")


def state_path(state_dir: str | os.PathLike) -> Path:
    """The status file in ``state_dir`` (``$STATE_DIRECTORY`` under systemd: /var/lib/barkwatch)."""
    return Path(state_dir) / STATE_FILE


def write_state(path: str | os.PathLike, state: ServiceState, quiet: bool = False) -> bool:
    """Replace the status file atomically (a reader sees the old file or the new one, never half of one); True
    on success. Never raises: a full disk or a read-only folder must not stop detection, so a failure is
    logged (a warning, or at debug level when ``quiet``), any old file is left in place and False returned.
    A running service writes through a ``StateWriter``, which logs a run of failures once."""
    data = (json.dumps(asdict(state), indent=1) + "\n").encode()
    try:
        # Readable by anyone, whatever the service's UMask=, so `barkwatch status` works without sudo; it holds
        # counts and times, nothing private (the clips beside it stay group-only). A torn file after a power
        # cut only makes read_state return None until the next write, a few seconds later.
        write_atomic(path, data, mode=0o644)
        return True
    except OSError as e:
        log.log(logging.DEBUG if quiet else logging.WARNING,
                "cannot write the status file %s: %s (detection goes on)", path, e)
        return False


@dataclass
class StateWriter:
    """Writes the status file for a running service: the first failure in a row is logged as a warning, the
    rest only at debug level (a full disk would otherwise fill the journal too), and recovery once more."""

    path: Path
    failing: bool = False  # the latest write failed

    def write(self, state: ServiceState) -> bool:
        """Write ``state`` (see ``write_state``); True on success. Never raises."""
        ok = write_state(self.path, state, quiet=self.failing)
        if ok and self.failing:
            log.info("the status file %s is being written again", self.path)
        self.failing = not ok
        return ok


def read_state(path: str | os.PathLike) -> ServiceState | None:
    """The status file's contents; None when it is missing, unreadable or not a status file. Keys this version
    does not know are ignored and missing optional ones take their defaults, so an upgrade never breaks it."""
    try:
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in fields(ServiceState)}
        state = ServiceState(**{k: v for k, v in raw.items() if k in known})
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return state if isinstance(state.pid, int) else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (it may belong to another user, such as the service's)."""
    if pid <= 0:
        return False  # kill(0) and kill(-n) address process groups, not a process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, we may just not signal it
    return True


# --- `barkwatch status`

def _parse(iso: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(iso).astimezone() if iso else None
    except (ValueError, TypeError):
        return None


def _clock(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S") if when else "?"


def _span(seconds: float) -> str:
    """A duration, roughly: "42 s", "7 min", "3 h 5 min", "2 d 4 h"."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def format_status(state: ServiceState, now: datetime, pid_alive: bool) -> str:
    """What ``barkwatch status`` prints for ``state`` at ``now`` (local, naive or aware); ``pid_alive``:
    whether ``state.pid`` still exists (``pid_alive(state.pid)``).

    The first line says whether the service is running: its process exists and it wrote the file within
    ``STALE_AFTER_UPDATES`` update intervals ("running"); its process exists but the file is older ("not
    updating since ..., stalled?"); or its process is gone or it said it stopped ("not running").
    """
    now = now.astimezone()
    updated, started = _parse(state.updated), _parse(state.started)
    age = (now - updated).total_seconds() if updated else math.inf
    seen = f"{_clock(updated)} ({_span(age)} ago)" if updated else "never"
    running = False
    if not pid_alive or state.status == "stopped":
        head = f"not running (last seen {seen})"
    elif age > max(STALE_AFTER_UPDATES * state.update_every_s, MIN_STALE_S):
        head = f"not updating since {seen}, stalled? (pid {state.pid})"
    else:
        running = True
        head = f"running, pid {state.pid}, since {_clock(started)}"
        if started:
            head += f" (up {_span((now - started).total_seconds())})"

    if state.status == "reconnecting" and running:
        device = f"{state.device}: gone, reconnecting"
    elif state.device_since and running:
        device = f"{state.device}, since {_clock(_parse(state.device_since))}"
    else:
        device = state.device
    # "today" is the day of the last update: after a day not running, it is not today's count.
    day = "today" if updated is None or updated.date() == now.date() else f"on {updated:%Y-%m-%d}"
    last = "none"
    if state.last_event:
        last = _clock(_parse(state.last_event))
        if state.last_event_duration_s is not None:
            last += f" ({state.last_event_duration_s:.1f} s)"
    rows = [
        ("device", device),
        (f"events {day}", f"{state.events_today}, last {last}"),
        ("audio", f"{state.windows} windows scored, {state.overruns} overruns, {state.outages} outages"),
        ("clips", f"{state.clips_files} files, {state.clips_bytes / 1e6:.1f} MB"),
        ("model", f"{state.model or '?'}, barkwatch {state.version or '?'}"),
        ("updated", seen),
    ]
    return "\n".join([f"barkwatch: {head}"] + [f"  {label + ':':<13} {value}" for label, value in rows])
