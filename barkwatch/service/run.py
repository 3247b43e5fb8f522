"""`barkwatch listen` as a service: the listener, its outputs, signals, systemd and live reloading.

The command line (``cli.listen``) resolves the configuration, the device and the model; ``run_listen`` then
owns the process until it stops:

    main thread:    signals (SIGINT/SIGTERM stop, SIGHUP reload), sd_notify READY/RELOADING/STOPPING
    worker thread:  Listener: ring buffer -> Engine -> EventTracker -> Outputs (log, console, clips,
                    notifier, state file, watchdog)
    own threads:    the capture callback, the clip writer, one per notification channel
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Callable

from ..config import Config, ConfigError, LoadedConfig, resolve_dirs
from ..detection.detector import Detector, DetectorSettings
from ..detection.events import EventFile, EventLogError
from .systemd import Watchdog, notify_ready, notify_reloading, notify_status, notify_stopping, state_path
from .outputs import Outputs

log = logging.getLogger("barkwatch")

# Keys SIGHUP can change while listening; the others need a restart.
LIVE_SECTIONS = ("detector.threshold", "detector.patience", "detector.release_s", "detector.merge_s",
                 "detector.max_duration_s", "clips.", "notify.", "logging.")


def make_notifier(config: Config, barks_today: int = 0):
    """The notifier the config asks for, or None when no channel is on."""
    n = config.notify
    if n.command.run is None and n.webhook.url is None and n.mqtt.host is None:
        return None
    from .notify import Node, Notifier

    return Notifier(n, barks_today=barks_today, node=Node.from_config(config.node, config.web))


def _changed_keys(old: Config, new: Config) -> list[str]:
    from ..config import get, key_paths

    return [k for k in key_paths() if get(old, k) != get(new, k)]


def _console(quiet: bool, stream) -> Callable[[dict], None] | None:
    if quiet:
        return None

    def show(record: dict) -> None:
        if record["event"] == "bark":
            print(f"{record['start'][:19].replace('T', ' ')}  bark  {record['duration_s']:6.1f} s  "
                  f"peak {record['peak_score']:.2f}", file=stream, flush=True)

    return show


def run_listen(loaded: LoadedConfig, source, detector: Detector, *, reload: Callable[[], LoadedConfig],
               events: str | None = None, verbose: bool = False, quiet: bool = False) -> int:
    """Listen until the source ends, a stop signal comes, or an error; the exit code (0, or 1 on an error).
    ``source`` is what ``live.devices.resolve`` gave for the configured device."""
    from ..live.capture import NativeStderrFilter
    from ..live.listener import Listener, ListenError, opener_for
    from .eventlog import EventFolder

    model = detector.model

    config = loaded.config
    state_dir, events_dir, clips_dir = resolve_dirs(config)
    human = sys.stderr if events == "-" else sys.stdout
    try:
        event_log = EventFile(events) if events else EventFolder(events_dir, config.events)
    except (EventLogError, OSError) as e:
        print(f"barkwatch: error: {e}", file=sys.stderr)
        return 1
    opener = opener_for(source, config.audio)
    try:
        notifier = make_notifier(config)
    except ValueError as e:
        print(f"barkwatch: error: notify: {e}", file=sys.stderr)
        return 2
    outputs = Outputs(event_log=event_log, console=_console(quiet, human), clips_dir=clips_dir,
                      clips_settings=config.clips, notifier=notifier, state_file=state_path(state_dir),
                      state_every_s=config.logging.status_every_s, watchdog=Watchdog.from_env(),
                      device=opener.name, model=model.path.name)
    listener = Listener(opener, detector, on_record=outputs.record, hooks=outputs,
                        on_status=(lambda line: print(line, file=human, flush=True)) if verbose else None)
    outputs.stats = listener.stats
    received: list[str] = []
    pending_reload: list[bool] = []
    # PortAudio and ALSA print lines of their own each time a device fails or cannot be reopened.
    with NativeStderrFilter() as noise:
        try:
            listener.start()
        except ListenError as e:
            outputs.close()
            noise.close()
            print(f"barkwatch: error: {e}", file=sys.stderr)
            return 2
        notify_ready(f"listening to {opener.name}")
        web_stop = _start_web(config, events, events_dir, clips_dir, state_dir)
        names = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}

        def on_stop(signum, frame) -> None:  # the main thread, between bytecodes: only set flags
            received.append(names.get(signum, str(signum)))
            listener.stop()

        def on_hup(signum, frame) -> None:
            pending_reload.append(True)

        previous = {s: signal.signal(s, on_stop) for s in names}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hup)
        try:
            while not listener.wait(0.2):
                if pending_reload:
                    pending_reload.clear()
                    config = _reload(config, reload, listener, outputs, detector)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    notify_stopping()
    if web_stop is not None:
        web_stop.set()
    code = 0
    if listener.error:
        print(f"barkwatch: error: {listener.error}", file=sys.stderr)
        code = 1
    outputs.close()
    waiting = getattr(event_log, "waiting", 0)
    if waiting:
        print(f"barkwatch: error: {waiting} event record(s) could not be written to {events_dir} "
              "(disk full?)", file=sys.stderr)
        code = 1
    s = listener.stats
    if not quiet:
        how = f"stopped by {received[0]}" if received else "ended"
        print(f"{how}: {s.events} event(s) in {s.audio_s:.1f} s of audio from {opener.name}; "
              f"{s.overruns} overrun(s)" + (f" ({s.dropped_s:.1f} s of audio lost)" if s.dropped_s else "")
              + f", {s.outages} outage(s)" + (f" ({s.down_s:.1f} s down)" if s.outages else "")
              + (f"; times put right by {s.resynced_s:.1f} s against the clock" if s.resynced_s else ""),
              file=human, flush=True)
    if listener.hung:
        # A PortAudio call never returned (a frozen sound server); PortAudio's exit handler would hang too.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _start_web(config: Config, events: str | None, events_dir: Path, clips_dir: Path, state_dir: Path):
    """The web interface beside listening (``web.enabled``), on a thread of its own; the event that stops it, or
    None. Clips are not scored on its label page: that would be a second user of the model."""
    if not config.web.enabled:
        return None
    import importlib.util

    if importlib.util.find_spec("aiohttp") is None:
        log.error("web.enabled: the web interface needs aiohttp (pip install 'barkwatch[web]'); listening goes on")
        return None
    from .web import WebError, WebSettings, start_in_thread

    settings = WebSettings.from_config(config.web, Path(events) if events and events != "-" else events_dir,
                                       clips_dir, state_path(state_dir))
    try:
        settings.check()
    except WebError as e:
        log.error("%s; listening goes on without it", e)
        return None
    return start_in_thread(settings)[1]


def _reload(old: Config, reload: Callable[[], LoadedConfig], listener, outputs: Outputs,
            detector: Detector) -> Config:
    """SIGHUP: read the configuration again and apply what can change without dropping audio (event rules,
    clips, notifications, log level); keep the old one whole if the new one is invalid."""
    notify_reloading()
    try:
        new = reload().config
        settings = detector.with_settings(DetectorSettings.from_config(new)).tracker_settings
    except (ConfigError, ValueError) as e:
        log.warning("reload: %s; still running with the previous configuration", e)
        notify_ready("reload failed; previous configuration kept")
        return old
    changed = _changed_keys(old, new)
    later = [k for k in changed if not k.startswith(LIVE_SECTIONS)]
    if later:
        log.warning("reload: %s changed; these take effect after a restart", ", ".join(later))
    listener.update_tracker(settings)
    if any(k.startswith("notify.") for k in changed):
        try:
            outputs.reconfigure(new.clips, lambda count: make_notifier(new, count))
        except ValueError as e:
            log.warning("reload: notify: %s; notifications are off until the next reload", e)
    else:
        outputs.clips_settings = new.clips
    logging.getLogger("barkwatch").setLevel(getattr(logging, new.logging.level.upper()))
    outputs.state_every_s = new.logging.status_every_s
    log.info("reloaded the configuration%s", f" ({len(changed)} key(s) changed)" if changed else ": no changes")
    notify_ready(f"listening to {listener.opener.name}")
    notify_status(f"listening to {listener.opener.name}")
    return new
