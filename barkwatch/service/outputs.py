"""Where a listening service's records and audio go: the event log, the terminal, clips, notifications, and
the state file and watchdog that tell the world it is still listening.

``Outputs`` is the ``listen.Hooks`` of `barkwatch listen`: it runs on the listener's worker thread, so every
method here is quick. The slow parts live behind threads of their own: clip encoding in ``clips``, network
and commands in ``notify``. A full disk never stops detection: a record or clip that cannot be written is a
warning, and writing resumes when space returns.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..config import ClipsConfig
from ..live.listener import Hooks, ListenStats
from .systemd import ServiceState, StateWriter, Watchdog, notify_status

log = logging.getLogger(__name__)


class Outputs(Hooks):
    """Records to the log, the terminal and the notifiers; audio to the clip recorder; the state file and the
    watchdog on every tick.

    ``event_log`` has ``write(record)`` and ``close()`` (``eventlog.EventFolder`` or ``events.EventFile``);
    ``console`` prints a record for people; ``clips`` and ``notifier`` are optional. ``stats`` is read from the
    listener for the state file.
    """

    def __init__(self, *, event_log, console: Callable[[dict], None] | None = None,
                 clips_dir: Path | None = None, clips_settings: ClipsConfig | None = None, notifier=None,
                 state_file: Path | None = None, state_every_s: float = 10.0, watchdog: Watchdog | None = None,
                 device: str = "", model: str = "", clock: Callable[[], float] = time.monotonic):
        self.event_log = event_log
        self.console = console
        self.clips_dir = clips_dir
        self.clips_settings = clips_settings
        self.notifier = notifier
        self.state_writer = StateWriter(state_file) if state_file is not None else None
        self.state_every_s = state_every_s
        self.watchdog = watchdog
        self.stats: ListenStats | None = None  # the listener's, set once it exists
        self._clock = clock
        self._clips = None  # a ClipRecorder per stream: its times count from the stream's start
        self._energy, self._samples = 0.0, 0  # sum of squares and count of the samples since the last status
        self._clip_paths: dict[str, str] = {}
        self._log_failing = False
        now = datetime.now().astimezone()
        self.state = ServiceState(pid=os.getpid(), started=now.isoformat(timespec="seconds"), device=device,
                                  device_since=None, status="starting", events_today=0, last_event=None,
                                  last_event_duration_s=None, overruns=0, outages=0, windows=0, clips_files=0,
                                  clips_bytes=0, updated=now.isoformat(timespec="seconds"),
                                  update_every_s=state_every_s, version=__version__, model=model)
        self._today = now.date()
        self._next_state = -float("inf")

    # Records (Listener.on_record)

    def record(self, record: dict) -> None:
        if self._clips is not None:
            if record["event"] == "bark_start":
                path = self._clips.start(record)
                self._clip_paths[record["id"]] = str(path)
            else:
                self._clips.end(record)
            record = {**record, "clip": self._clip_paths.get(record["id"])}
            if record["event"] == "bark":
                self._clip_paths.pop(record["id"], None)
        self._write(record)
        if record["event"] == "bark":
            self._count(record)
        if self.console is not None:
            self.console(record)
        if self.notifier is not None:
            self.notifier.notify(record)

    def _write(self, record: dict) -> None:
        try:
            self.event_log.write(record)
        except Exception as e:  # noqa: BLE001 - a full disk must not stop detection
            if not self._log_failing:
                log.warning("%s (events are kept in memory and written when it can again)", e)
            self._log_failing = True
        else:
            if self._log_failing:
                log.info("the event log is written again")
            self._log_failing = False

    def _count(self, record: dict) -> None:
        day = datetime.fromisoformat(record["start"]).date()
        if day != self._today:
            self._today, self.state.events_today = day, 0
        self.state.events_today += 1
        self.state.last_event = record["start"]
        self.state.last_event_duration_s = record["duration_s"]

    # Hooks (the worker thread)

    def stream_began(self, start: datetime, samplerate: int) -> None:
        if self.state.device_since is None or self.state.status != "listening":
            self.state.device_since = start.isoformat(timespec="seconds")
        if self.clips_settings is not None and self.clips_settings.enabled and self.clips_dir is not None:
            from ..live.clips import ClipRecorder

            if self._clips is not None:
                self._clips.close(timeout=0)  # the old stream's clips finish in the background
            self._clips = ClipRecorder(self.clips_dir, self.clips_settings, samplerate)

    def audio(self, mono: np.ndarray, offset_s: float) -> None:
        if self._clips is not None:
            self._clips.feed(mono, offset_s)
        # The status file's level: the mean power since it was last written (a dot product per block).
        self._energy += float(np.dot(mono, mono))
        self._samples += len(mono)

    def stream_ended(self) -> None:
        if self._clips is not None:
            self._clips.flush()

    def tick(self, status: str) -> None:
        now = self._clock()
        if self.watchdog is not None:
            self.watchdog.maybe_pet(now)
        if status != self.state.status:
            self.state.status = status
            notify_status(f"{status} to {self.state.device}")
            self._next_state = -float("inf")
        if now >= self._next_state:
            self._next_state = now + self.state_every_s
            self.save_state()

    def save_state(self) -> None:
        if self.state_writer is None:
            return
        s = self.state
        if self.stats is not None:
            s.overruns, s.outages, s.windows = self.stats.overruns, self.stats.outages, self.stats.windows
        if self._clips is not None:
            s.clips_files, s.clips_bytes = self._clips.usage()
        if self._samples:
            s.level_dbfs = round(10.0 * math.log10(max(self._energy / self._samples, 1e-12)), 1)
            self._energy, self._samples = 0.0, 0
        s.updated = datetime.now().astimezone().isoformat(timespec="seconds")
        self.state_writer.write(s)
        if self.notifier is not None:  # MQTT's retained state: what a hub shows of this listener
            self.notifier.status(asdict(s))

    def reconfigure(self, clips_settings: ClipsConfig | None, make_notifier: Callable[[int], object]) -> None:
        """A reloaded config: new clip settings from the next stream on, a new notifier at once. The old
        notifier is closed first (two MQTT clients with one id knock each other off the broker), and the new one
        carries on the day's bark count. Runs on the worker thread, between records."""
        self.clips_settings = clips_settings
        old, self.notifier = self.notifier, None
        count = 0
        if old is not None:
            count = old.barks_today or 0
            old.close(timeout=2.0)
        self.notifier = make_notifier(count)

    def close(self) -> None:
        """After the listener has finished: write pending clips, send pending notifications, final state."""
        if self._clips is not None:
            self._clips.close()
        if self.notifier is not None:
            self.notifier.close(timeout=2.0)
        try:
            self.event_log.close()
        except Exception as e:  # noqa: BLE001
            log.warning("%s", e)
        self.state.status = "stopped"
        self.save_state()
