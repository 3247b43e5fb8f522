"""``barkwatch detect``: scanning recordings for barks."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import typer

from .options import (Compute, Gate, Hold, Hop, Merge, Patience, Quiet, Release, Runtime, Threshold, build_detector,
                      detector_options, fail, needs, setup_logging)


def detect(
    files: List[Path] = typer.Argument(..., help="Recordings to scan (wav, flac, ogg or mp3, any length), or "
                                       "folders, searched for them recursively."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: the shipped model)."),
    events: Optional[str] = typer.Option(None, "--events",
                                         help="Append bark_start/bark JSON Lines records here ('-': stdout)."),
    scores: Optional[str] = typer.Option(None, "--scores", help="Write every window's time, level, RL, KL "
                                         "and score to this CSV file ('-': stdout)."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Draw what the detector heard to this PNG "
                                       "(a folder, or a name ending in /: one PNG each inside, named after "
                                       "the file; with several files and a file name: NAME-FILE.png)."),
    clips: Optional[Path] = typer.Option(None, "--clips", help="Cut each event (1 s either side) to a FLAC "
                                         "file in this folder."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Write the events as an Audacity label track "
                                         "(start, end, label; to a folder, or with several files: one each, "
                                         "named after the file)."),
    raven: Optional[str] = typer.Option(None, "--raven", help="Write the events as a Raven selection table "
                                        "(to a folder, or with several files: one each, named after the file)."),
    threshold: Threshold = None,
    start: Optional[datetime] = typer.Option(None, "--start", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S",
                                                                       "%Y-%m-%d %H:%M:%S"],
                                             metavar="<time>",  # typer would print the formats above
                                             help="When the recording began, as 2026-11-25T08:00:00 (local "
                                             "time) or 2026-11-25T08:00:00+01:00 (default: file time minus "
                                             "duration); applies to each file."),
    hop: Hop = None,
    gate: Gate = None,
    patience: Patience = None,
    release: Release = None,
    merge: Merge = None,
    hold: Hold = None,
    compute: Compute = None,
    runtime: Runtime = None,
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for the network. 1 is never far wrong: "
                                "on a busy machine more threads fight the other work for the cores and can be "
                                "10-25x slower. More pay a little on an idle machine with cores to spare."),
    quiet: Quiet = False,
) -> None:
    """Scan recordings for barks and report each event (exit code 1 if a file could not be read)."""
    from ..detection.audio import find_audio_files
    from ..detection.detector import DetectorSettings
    from ..detection.events import EventFile, EventLogError
    from ..detection.scan import ScoreWriter

    setup_logging(quiet)
    if plot is not None:  # said before the scan, not after it
        needs("--plot", "librosa", "matplotlib")
    settings = DetectorSettings(**detector_options(threshold, hop, gate, patience, release, merge, hold))
    detector = build_detector(model, settings, compute or "auto", threads, runtime or "auto")

    if events == "-" and scores == "-":
        fail("--events - and --scores -: only one of them can go to stdout")
    human = sys.stderr if "-" in (events, scores) else sys.stdout
    log = None
    score_file = None
    failures = 0
    paths: list[Path] = []
    for given_path in files:
        if given_path.is_dir():
            found = find_audio_files(given_path)
            if not found:
                typer.echo(f"barkwatch: error: {given_path}: no audio files (wav, flac, ogg, mp3) in this folder",
                           err=True)
                failures += 1
            paths += found
        else:
            paths.append(given_path)  # a missing file is named when its turn comes; the others are scanned

    def per_file(given: str, audio: Path, suffix: str) -> Path:
        """Where an output named once for all inputs goes for ``audio``: into ``given`` when it is a folder
        (or a name ending in /, then made), named after the input with ``suffix``; else ``given`` itself with
        one input, or ``given``'s name with the input's stem added (``labels.txt`` -> ``labels-morning.txt``)."""
        target = Path(given)
        if given.endswith(("/", os.sep)) or target.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            return target / f"{audio.stem}{suffix}"
        if len(paths) == 1:
            return target
        return target.with_name(f"{target.stem}-{audio.stem}{target.suffix or suffix}")

    def wrote(kind: str, where: Path) -> None:
        if not quiet:
            print(f"{kind}: {where}", file=human, flush=True)

    try:
        log = EventFile(events) if events else None
        score_file = (sys.stdout if scores == "-" else open(scores, "w", newline="")) if scores else None
        writer = ScoreWriter(score_file) if score_file else None
        scanned = []

        def on_record(record: dict) -> None:
            if log is not None:
                log.write(record)
            if record["event"] == "bark" and not quiet:
                print(f"{record['start'][:19].replace('T', ' ')}  bark  {record['duration_s']:6.1f} s  "
                      f"peak {record['peak_score']:.2f}  {Path(record['source']).name} +{record['offset_s']:.1f} s",
                      file=human, flush=True)

        for path in paths:
            heard: list = []  # the windows, kept only to plot them

            def on_window(w, path=path, heard=heard) -> None:
                if writer is not None:
                    writer.write(path, w)
                if plot is not None:
                    heard.append(w)

            result = detector.scan(path, on_record=on_record, on_window=on_window, start=start, clips_dir=clips,
                                   progress=not quiet)
            scanned.append(result)
            if result.error:
                failures += 1
                typer.echo(f"barkwatch: error: {result.error}", err=True)
            if not result.error and (labels is not None or raven is not None):
                from ..detection.labels import audacity_labels, raven_selections
                from ..files import write_atomic

                if labels is not None:
                    where = per_file(labels, path, ".txt")
                    write_atomic(where, audacity_labels(result.events).encode())
                    wrote("labels", where)
                if raven is not None:
                    nyquist = detector.model.sample_rate / 2  # the model hears nothing above it
                    where = per_file(raven, path, ".selections.txt")
                    write_atomic(where, raven_selections(result.events, path, nyquist).encode())
                    wrote("raven", where)
            if plot is not None and not result.error:
                from ..detection.plot import plot_detection

                where = per_file(plot, path, ".png")
                plot_detection(path, heard, result.events, detector.threshold, where)
                wrote("plot", where)
            if not result.error:  # the result, which -q keeps: one line a file
                print(f"{path}: {len(result.events)} event(s), {result.bark_seconds:.1f} s of barking, longest "
                      f"{result.longest_s:.1f} s, in {result.duration_s:.1f} s of audio "
                      f"({result.gated} of {result.windows} windows below the gate)", file=human, flush=True)
        if len(paths) > 1:
            every = [e for r in scanned for e in r.events]
            print(f"all {len(paths)} files: {len(every)} event(s), {sum(e.duration_s for e in every):.1f} s of "
                  f"barking, longest {max((e.duration_s for e in every), default=0.0):.1f} s"
                  + (f", {failures} file(s) could not be read" if failures else ""), file=human, flush=True)
    except (EventLogError, OSError) as e:
        fail(str(e) if isinstance(e, EventLogError) else f"{e.filename}: cannot write ({e.strerror})", code=1)
    finally:
        if log is not None:
            log.close()
        if score_file is not None and score_file is not sys.stdout:
            score_file.close()
    if failures:
        raise typer.Exit(1)


