"""``barkwatch listen``, ``devices`` and ``record``: audio from a device, as it happens."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Optional

import typer

from .options import (AsJson, Compute, ConfigFile, Device, Gate, Hold, Hop, Merge, ModelFile, Patience, Quiet, Release,
                      Runtime, Threshold, detector_from_config, detector_options, fail, load_config,
                      resolve_source, setup_logging)


def listen(
    device_spec: Device = None,
    samplerate: Optional[float] = typer.Option(None, "--samplerate", help="Capture rate in Hz (default: the "
                                               "device's; the engine resamples to the model's)."),
    channel: Optional[int] = typer.Option(None, "--channel", min=0, help="Use this input channel (0-based) "
                                          "instead of mixing them."),
    model: ModelFile = None,
    events: Optional[str] = typer.Option(None, "--events", help="Append bark_start/bark JSON Lines records "
                                         "to this one file ('-': stdout) instead of the daily logs in the "
                                         "events folder."),
    threshold: Threshold = None,
    hop: Hop = None,
    gate: Gate = None,
    patience: Patience = None,
    release: Release = None,
    merge: Merge = None,
    hold: Hold = None,
    compute: Compute = None,
    runtime: Runtime = None,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for the network "
                                          "(default 1: one keeps up many times over; more threads spin "
                                          "between the few windows a second and burn a core)."),
    clips: Optional[bool] = typer.Option(None, "--clips/--no-clips", help="Save each event as audio with pre- "
                                         "and post-roll (default: on)."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="Folder for the status file, and the "
                                             "events and clips unless configured elsewhere."),
    config_file: ConfigFile = None,
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Add a status line every few seconds: level, "
                                 "highest score, overruns, outages."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print nothing (errors excepted)."),
) -> None:
    """Listen to a microphone and report each bark as it happens, until Ctrl-C or SIGTERM (exit code 0).

    Settings come from the flags, BARKWATCH_* variables, the config file and the defaults, in that order
    (`barkwatch config` shows the result). A lost device is reopened with backoff until it is back, and so is
    a network stream (--device rtsp://..., http://...: a camera's audio, read through ffmpeg). A file:
    source ends with the file. SIGHUP reloads the configuration without stopping.
    """
    if quiet and verbose:
        fail("-q and -v: choose one")
    flags = {"audio.device": device_spec, "audio.samplerate": samplerate, "audio.channel": channel,
             "model.path": model, "model.compute": compute, "model.threads": threads, "model.runtime": runtime,
             "clips.enabled": clips, "paths.state_dir": state_dir,
             **{f"detector.{k}": v for k, v in detector_options(threshold, hop, gate, patience, release,
                                                                  merge, hold).items()}}
    loaded_config = load_config(config_file, flags)
    cfg = loaded_config.config
    from ..config import load_config as reload_config
    from ..live.devices import FileSource, NetworkSource
    from ..service.run import run_listen

    setup_logging(quiet, cfg.logging.level)
    source = resolve_source(cfg.audio.device)
    if isinstance(source, FileSource) and cfg.audio.samplerate is not None:
        fail("--samplerate applies to microphones: a file: source plays at its own rate")
    if isinstance(source, NetworkSource) and cfg.audio.channel is not None:
        fail("--channel (audio.channel) applies to microphones: a stream's channels are mixed to mono")
    detector = detector_from_config(cfg)
    code = run_listen(loaded_config, source, detector, reload=lambda: reload_config(config_file, flags=flags),
                      events=events, verbose=verbose, quiet=quiet)
    if code:
        raise typer.Exit(code)


def devices(
    as_json: AsJson = False,
    check: Optional[str] = typer.Option(None, "--check", metavar="DEVICE", help="Open DEVICE (as --device "
                                        "takes it; 'config': the configured one) and wait for its first second "
                                        "of audio: exit 0 and one line if it comes, 1 if not."),
    config_file: ConfigFile = None,
) -> None:
    """List the input devices (microphones) that --device can name, or check that one gives audio."""
    from dataclasses import asdict

    from ..live.devices import DeviceError, format_table, list_inputs, why_no_inputs

    if check is not None:
        audio = load_config(config_file, {}).config.audio
        _check_device(audio.device if check == "config" else check, audio)
        return

    try:
        inputs = list_inputs()
    except DeviceError as e:
        fail(str(e))
    if as_json:
        typer.echo(json.dumps([asdict(d) for d in inputs], indent=2))
    elif inputs:
        typer.echo(format_table(inputs))
    if not inputs:
        # One line on stderr (stdout stays a parseable [] with --json), not an empty table.
        reason = why_no_inputs()
        typer.echo(f"barkwatch: no input devices found{': ' + reason if reason else ''}", err=True)


def _check_device(spec: str, audio) -> None:
    """``devices --check``: open ``spec`` as listen would, read one second of audio, print what came."""
    import time

    import numpy as np

    from ..live.capture import CaptureError, NativeStderrFilter
    from ..live.listener import opener_for

    source = resolve_source(spec)
    opener = opener_for(source, audio)
    with NativeStderrFilter():
        try:
            stream = opener.open(again=False)
        except CaptureError as e:
            fail(str(e), code=1)
        try:
            wanted, got, deadline = stream.samplerate, [], time.monotonic() + 5.0
            while sum(len(b) for b in got) < wanted and time.monotonic() < deadline and not stream.ended:
                block = stream.read(timeout=0.5)
                if len(block):
                    got.append(block)
        finally:
            stream.stop()
    if not got:
        fail(f"{opener.name}: opened, but no audio came in 5 s (a muted or busy device, or a stopped sound "
             "server?)", code=1)
    audio_block = np.concatenate(got)
    level = 10 * np.log10(max(float(np.mean(np.square(audio_block, dtype=np.float64))), 1e-12))
    typer.echo(f"{spec}: {opener.describe(stream)}: audio comes, level {level:.1f} dBFS")


def record(
    out: Path = typer.Option(..., "--out", help="Folder for the clips and their index (recorded.jsonl); "
                             "a later run adds to it."),
    device_spec: Device = None,
    minutes: Optional[float] = typer.Option(None, "--minutes", min=0.0, help="Stop after this many minutes."),
    until: Optional[str] = typer.Option(None, "--until", help="Stop at this local time: 07:30, or "
                                        "2026-11-26T07:30."),
    keep: str = typer.Option("sounds", "--keep", help="sounds: every stretch louder than the room; barks: "
                             "every stretch the model scores at or above --threshold (bark candidates); all: "
                             "everything, as FLAC pieces under OUT/audio (a background for calibrate)."),
    level: Optional[float] = typer.Option(None, "--level", help="sounds: keep windows above this level "
                                          "(dBFS) instead of 10 dB above the room's floor."),
    threshold: float = typer.Option(0.5, "--threshold", min=0.0, max=1.0, help="barks: the score to keep "
                                    "(low, so that quiet or unusual barks are kept for labelling)."),
    background_every: float = typer.Option(10.0, "--background-every", min=0.0, help="Minutes between samples "
                                           "of the background (0: none)."),
    max_mb: float = typer.Option(1000.0, "--max-mb", min=0.001, help="Stop when the clips take this much disk."),
    fast: bool = typer.Option(False, "--fast", help="With a file: device, read the recording as fast as it "
                              "is scored instead of in real time (a day's recording made into clips in "
                              "minutes; times stay the recording's own)."),
    model: ModelFile = None,
    config_file: ConfigFile = None,
    quiet: Quiet = False,
) -> None:
    """Record a home's sounds as short clips (and samples of its background) to label and train on."""
    import signal
    import time as _time

    from ..detection.detector import Detector
    from ..live.capture import NativeStderrFilter
    from ..live.listener import Listener, ListenError, opener_for
    from ..live.record import KEEP_CHOICES, LevelScorer, Recorder, StreamRecorder, read_index

    if keep not in KEEP_CHOICES:
        fail(f"--keep {keep}: choose {' or '.join(KEEP_CHOICES)}")
    now = datetime.now().astimezone()
    until_at = None  # monotonic time of --until; --minutes counts from when the audio starts
    if until is not None:
        try:
            at = datetime.fromisoformat(until) if "T" in until or "-" in until else datetime.combine(
                now.date(), datetime.strptime(until, "%H:%M").time())
        except ValueError:
            fail(f"--until {until}: give a local time as HH:MM or YYYY-MM-DDTHH:MM")
        at = at.astimezone() if at.tzinfo is None else at
        if at <= now and "T" not in until and "-" not in until:
            at += timedelta(days=1)  # 07:30 given in the evening: tomorrow morning
        if at <= now:
            fail(f"--until {until}: that time has passed")
        left = (at - now).total_seconds()
        until_at = _time.monotonic() + left
    loaded_config = load_config(config_file, {"audio.device": device_spec, "model.path": model})
    cfg = loaded_config.config
    setup_logging(quiet, cfg.logging.level)
    if fast and not str(cfg.audio.device or "").startswith("file:"):
        fail(f"--fast: only a file: device can be read faster than real time, not {cfg.audio.device!r}")
    source = resolve_source(cfg.audio.device)
    # Every stretch is a clip of its own: one high window opens it, a second without one closes it.
    detector = detector_from_config(cfg, threshold=threshold, patience=1, release_s=1.0, merge_s=1.0,
                                    max_duration_s=30.0)
    if keep in ("sounds", "all"):
        model = detector.model
        # Everything is kept with "all": windows are only levels then, never over an infinite bar.
        scorer = LevelScorer(model.sample_rate, model.window_samples, detector.engine_settings.hop_s,
                             level_dbfs=math.inf if keep == "all" else level, min_dbfs=cfg.detector.gate_dbfs)
        # The room's floor needs every window, so nothing is gated.
        detector = Detector(scorer, replace(detector.settings, threshold=None, gate_dbfs=-float("inf")),
                            detector.device)
    opener = opener_for(source, cfg.audio, realtime=not fast)
    try:
        if keep == "all":
            recorder = StreamRecorder(out, max_bytes=int(max_mb * 1e6))
        else:
            recorder = Recorder(out, "sound" if keep == "sounds" else "bark", max_bytes=int(max_mb * 1e6),
                                background_every_s=background_every * 60.0, wait_for_writer=fast)
    except OSError as e:
        fail(f"--out {out}: cannot write here ({e.strerror or e})")
    listener = Listener(opener, detector, on_record=recorder.record, hooks=recorder)
    recorder.on_full = listener.stop
    stopped_by: list[str] = []
    with NativeStderrFilter():
        try:
            listener.start()
        except ListenError as e:
            recorder.close()
            fail(str(e))
        if not quiet:
            typer.echo(f"recording {opener.name} to {out} (keeping {keep}); Ctrl-C stops", err=True)
        # Loading the model and opening the device take seconds: --minutes is minutes of audio.
        ends = [t for t in (until_at, _time.monotonic() + minutes * 60 if minutes is not None else None)
                if t is not None]
        deadline = min(ends) if ends else None

        def on_stop(signum, frame) -> None:
            stopped_by.append(signal.Signals(signum).name)
            listener.stop()

        previous = {s: signal.signal(s, on_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not listener.wait(0.2):
                if deadline is not None and _time.monotonic() >= deadline:
                    stopped_by.append("the time limit")
                    listener.stop()
            recorder.close()  # a second Ctrl-C here must not cut the last clip or piece short
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    entries = read_index(out)
    if not quiet:
        why = stopped_by[0] if stopped_by else ("the disk budget" if recorder.full else "the end of the input")
        kept = ", ".join(f"{n} {k}" for k, n in recorder.counts.items())
        typer.echo(f"stopped by {why}: kept {kept} clip(s) this run, {len(entries)} in {out} "
                   f"({recorder.used_bytes() / 1e6:.2f} MB); next: " + (
                       f"barkwatch calibrate --background {out / 'audio'}" if keep == "all"
                       else f"barkwatch label {out}"))
    if listener.error:
        fail(listener.error, code=1)
    if getattr(recorder, "error", None):
        fail(recorder.error, code=1)
