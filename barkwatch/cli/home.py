"""``barkwatch label``, ``calibrate``, ``enrol`` and ``report``: knowing one home and one dog."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import List, Optional

import typer

from .options import (AsJson, ConfigFile, Device, EventsDir, ModelFile, Quiet, audio_paths, detector_from_config, fail,
                      load_config, needs, setup_logging)


def label(
    folder: Path = typer.Argument(..., help="Folder of clips: what `barkwatch record --out` wrote, or any "
                                  "folder of audio files."),
    model: ModelFile = None,
    no_play: bool = typer.Option(False, "--no-play", help="Show the clips without playing them."),
    order: str = typer.Option("score", "--order", help="score: the most bark-like clips first (the barks, then "
                              "the sounds the model takes for barks: the labels worth most); time: as heard."),
    config_file: ConfigFile = None,
) -> None:
    """Label clips one key at a time: my dog, other dog, not a bark. Resumable; writes FOLDER/labels.jsonl."""
    from ..home.label import LabelError, find_clips, run, scorer_for, summary

    needs("label", "librosa")  # each clip's picture
    if not folder.is_dir():
        fail(f"{folder}: no such folder")
    config = load_config(config_file, {"model.path": model}).config
    # The gate open: a faint bark deserves a score too. Clips are scored whole, all channels mixed.
    score = scorer_for(detector_from_config(config, gate_dbfs=-math.inf, channel=None))
    try:
        counts = run(folder, score, play=not no_play, order=order)
    except LabelError as e:
        fail(str(e))
    except OSError as e:
        fail(f"{folder}: cannot write labels here ({e.strerror or e})", code=1)
    typer.echo(summary(counts, len(find_clips(folder)), folder))


def calibrate(
    background: List[Path] = typer.Option(..., "--background", metavar="<path>", help="Recordings of the home "
                                          "with no barking (files or folders; repeatable): every event on them "
                                          "is a false alarm."),
    barks: List[Path] = typer.Option([], "--barks", metavar="<path>", help="Clips of the dog barking (files, "
                                     "folders, or a labels.jsonl for its 'my dog' clips; repeatable): a clip "
                                     "with an event is found. Gives the recall column."),
    budget: float = typer.Option(0.5, "--budget", min=0.0, help="False alarms per hour to allow."),
    margin: str = typer.Option("centre", "--margin", help="centre: with --barks, halfway (log-odds) from the "
                               "lowest safe threshold to the highest that finds as many clips; none: the lowest "
                               "safe threshold (more barks found, sooner, more false alarms later)."),
    model: ModelFile = None,
    out: Optional[Path] = typer.Option(None, "--out", help="Write a copy of the model with the chosen "
                                       "threshold here (it may be the model file itself)."),
    set_config: Optional[Path] = typer.Option(None, "--set-config", help="Set detector.threshold to the chosen "
                                              "threshold in this config file (comments kept; made if missing)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw false alarms per hour and recall against "
                                        "the threshold to this PNG."),
    as_json: AsJson = False,
    config_file: ConfigFile = None,
    quiet: Quiet = False,
) -> None:
    """Find the threshold that keeps false alarms within a budget in this home (exit 1 if none does)."""
    from ..config import ConfigError, set_in_file
    from ..home import calibrate as cal
    from ..model.modelfile import ModelFileError, update_metadata

    setup_logging(quiet)
    if margin not in ("centre", "none"):
        fail(f"--margin {margin}: choose centre or none")
    if plot is not None:
        needs("--plot", "matplotlib")
    config = load_config(config_file, {"model.path": model}).config
    background_paths = audio_paths("--background", background)
    bark_paths = audio_paths("--barks", [b for b in barks if b.suffix != ".jsonl"])
    for listing in (b for b in barks if b.suffix == ".jsonl"):  # labels.jsonl: its "my dog" clips
        from ..home.label import labels_in  # not training's labelled_files: that module imports torch

        if not listing.is_file():
            fail(f"--barks {listing}: no such file")
        bark_paths += [listing.parent / name for name, label in sorted(labels_in(listing).items())
                       if label == "my_dog"]
    detector = detector_from_config(config, channel=None)  # recordings: all channels mixed
    loaded, settings = detector.model, detector.tracker_settings
    # The model file to copy with the new threshold: the .pt itself where its ONNX export did the scoring.
    model_file = loaded.path.with_suffix(".pt") if loaded.path.suffix == ".onnx" else loaded.path
    if settings.hold_threshold is None:
        # A model without a hold keeps its own threshold (its best on clips) as one: raised for a budget, the
        # threshold then decides where barking starts and the old one still where it stops.
        settings = replace(settings, hold_threshold=loaded.threshold)

    streams, seconds, errors = cal.scan_windows(background_paths, detector, not quiet)
    bark_streams, _, bark_errors = cal.scan_windows(bark_paths, detector, not quiet)
    for error in errors + bark_errors:
        typer.echo(f"barkwatch: error: {error}", err=True)
    if errors or bark_errors:
        fail("fix or remove the files above and run calibrate again", code=1)
    hours = seconds / 3600.0
    if hours <= 0:
        fail("--background: no audio in the given files")
    points = cal.sweep(streams, hours, bark_streams, settings)
    chosen = safe = cal.choose(points, budget)
    if chosen is not None and bark_streams and margin == "centre":
        centred = cal.sweep(streams, hours, bark_streams, settings, thresholds=[cal.centre(points, chosen)])[0]
        if centred.false_alarms_per_hour <= budget and centred.found >= chosen.found:
            points = sorted([p for p in points if p.threshold != centred.threshold] + [centred],
                            key=lambda p: p.threshold)
            chosen = centred
    title = (f"{model_file.name} on {len(background_paths)} background file(s), {hours:.2f} h"
             + (f", {len(bark_paths)} bark clip(s)" if bark_paths else ""))
    if plot is not None:
        cal.plot_sweep(points, chosen, budget, plot, title)
    if as_json:
        typer.echo(json.dumps({"model": str(model_file), "hours": hours, "budget_per_hour": budget,
                               "chosen": chosen.to_dict() if chosen else None,
                               "safe": safe.to_dict() if safe else None,
                               "points": [p.to_dict() for p in points]}, indent=2))
    else:
        typer.echo(f"{title}; model threshold {loaded.threshold:.4f}")
        typer.echo(cal.format_table(points, chosen))
    if chosen is None:
        fail(f"no threshold keeps false alarms within {budget:g} an hour on this background; "
             "train on this home's sounds (`barkwatch train --negatives`) or allow a larger --budget", code=1)
    recall = f", recall {chosen.recall:.2f} ({chosen.found}/{chosen.barks} clips)" if chosen.barks else ""
    summary = (f"threshold {chosen.threshold:.4f}: {chosen.false_alarms_per_hour:.2f} false alarms an hour on "
               f"{hours:.2f} h of background{recall}")
    if bark_paths and hours < 1.0:
        summary += "; under an hour of background: record more for a budget this small to mean much"
    if out is not None:
        calibration = {"threshold": chosen.threshold, "budget_per_hour": budget, "hours": round(hours, 3),
                       "background_files": len(background_paths), "bark_clips": len(bark_paths),
                       "false_alarms_per_hour": chosen.false_alarms_per_hour,
                       "recall": None if not chosen.barks else chosen.recall,
                       "previous_threshold": loaded.threshold}
        try:
            update_metadata(model_file, out, {"threshold": chosen.threshold, "calibration": calibration,
                                               "hold_threshold": settings.hold_threshold})
        except ModelFileError as e:
            fail(str(e), code=1)
        summary += f"; written to {out}"
    if set_config is not None:
        try:
            set_in_file(set_config, "detector.threshold", chosen.threshold)
        except ConfigError as e:
            fail(str(e), code=1)
        summary += f"; detector.threshold set in {set_config}"
    typer.echo(summary, err=as_json)


ENROL_STEPS = {
    "day": "recording the home with the dog in it ({minutes:g} min left; Ctrl-C pauses, enrol resumes)",
    "quiet": "recording the home with the dog away: calibrate's background ({minutes:g} min left)",
    "label": "labelling the day's clips, the most bark-like first: m my dog, o other dog, n not a bark "
             "(about 60 are enough; q stops)",
    "train": "training the home's model from the labels, starting from {base}",
    "calibrate": "choosing the threshold for at most {budget:g} false alarms an hour on the quiet recording",
}


def enrol(
    folder: Path = typer.Argument(..., help="Folder for everything enrolment makes: the day's clips and labels, "
                                  "the quiet recording, the model (FOLDER/model.pt) and its state (enrol.json)."),
    device_spec: Device = None,
    day_minutes: float = typer.Option(60.0, "--day-minutes", min=0.0, help="Minutes of the home with the dog "
                                      "in it to record and label."),
    quiet_minutes: float = typer.Option(60.0, "--quiet-minutes", min=0.0, help="Minutes of the home with the "
                                        "dog away (no barking), for calibrate."),
    quiet_recording: Optional[Path] = typer.Option(None, "--quiet", help="An existing recording (file or "
                                                   "folder) of the home with no barking instead of recording one."),
    budget: float = typer.Option(0.5, "--budget", min=0.0, help="False alarms per hour to allow."),
    negatives: List[Path] = typer.Option([], "--negatives", metavar="<folder>", help="More sounds that are not "
                                         "barks to train with (folders; repeatable), e.g. samples/other."),
    redo: Optional[str] = typer.Option(None, "--redo", help="Run this step and those after it again: "
                                       "day, quiet, label, train or calibrate."),
    yes: bool = typer.Option(False, "--yes", help="Do not wait for Enter before the quiet recording."),
    fast: bool = typer.Option(False, "--fast", help="With a file: device, read recordings as fast as they "
                              "are scored (a day's recording enrolled in minutes)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Most training epochs (default: "
                                         "train's; fewer on a slow machine such as a Raspberry Pi)."),
    model: ModelFile = None,
    set_config: Optional[Path] = typer.Option(None, "--set-config", help="Point this config file at the "
                                              "enrolled model and its threshold when done (comments kept)."),
    config_file: ConfigFile = None,
) -> None:
    """Learn this home and this dog: record a day, record a quiet hour, label, train, calibrate. Resumable."""
    import sys

    from ..config import ConfigError, set_in_file
    from ..home.enrol import (STEPS, EnrolError, EnrolPlan, EnrolState, check_labels, command_for,
                              recorded_minutes, run_step, steps_left)
    from ..home.label import labels_in
    from ..model.modelfile import DEFAULT_MODEL

    if redo is not None and redo not in STEPS:
        fail(f"--redo {redo}: choose one of {', '.join(STEPS)}")
    needs("enrol", "torch", "librosa")  # to label and train: said before an hour of recording, not after
    if quiet_recording is not None and not quiet_recording.exists():
        fail(f"--quiet {quiet_recording}: no such file or folder")
    for path in negatives:
        if not path.is_dir():
            fail(f"--negatives {path}: no such folder")
    config = load_config(config_file, {"model.path": model}).config
    try:
        folder.mkdir(parents=True, exist_ok=True)
        state = EnrolState.load(folder)
    except EnrolError as e:
        fail(str(e))
    except OSError as e:
        fail(f"{folder}: cannot write here ({e.strerror or e})")
    device = device_spec or state.device or config.audio.device
    if not device:
        fail("--device: which input to record (see `barkwatch devices`); enrol remembers it for the next run")
    state.device = device
    if redo is not None:
        state.redo(redo)
    base = Path(config.model.path) if config.model.path else DEFAULT_MODEL
    plan = EnrolPlan(folder, device, day_minutes, quiet_minutes, base.resolve(), budget, tuple(negatives),
                     quiet_recording, config_file, set_config, fast, epochs)
    left = steps_left(state, plan)
    for step in left:
        number = STEPS.index(step) + 1
        minutes = (day_minutes - state.day_minutes) if step == "day" else (quiet_minutes - state.quiet_minutes)
        typer.echo(f"\nenrol, step {number} of {len(STEPS)}: " + ENROL_STEPS[step].format(
            minutes=max(minutes, 0.0), base=base.name, budget=budget), err=True)
        if step == "quiet" and not yes and sys.stdin.isatty():
            try:
                input("Take the dog out (or wait for a time it is away), then press Enter. ")
            except (KeyboardInterrupt, EOFError):
                state.save(folder)
                typer.echo("\nstopped before the quiet recording; run the same command to carry on", err=True)
                raise typer.Exit(130)
        result = run_step(command_for(step, state, plan))
        if step == "day":
            state.day_minutes = min(day_minutes, state.day_minutes + result.minutes)
        elif step == "quiet":
            state.quiet_minutes = recorded_minutes(plan.quiet_dir)
        finished = result.returncode == 0 and not result.interrupted
        if finished and step == "label":
            counts = Counter(labels_in(plan.labels).values())
            try:
                check_labels(counts, plan.labels)
            except EnrolError as e:
                state.save(folder)
                fail(str(e), code=1)
        if finished and step == "calibrate" and set_config is not None:
            try:
                set_in_file(set_config, "model.path", str(plan.model.resolve()))
            except ConfigError as e:
                state.save(folder)
                fail(str(e), code=1)
        if finished:
            state.done.append(step)
        state.save(folder)
        if result.interrupted:
            typer.echo(f"enrol: stopped during {step}; what was done is kept: run the same command to carry on",
                       err=True)
            raise typer.Exit(130)
        if result.returncode != 0:
            fail(f"enrol: the {step} step failed (above); fix what it says and run the same command to carry "
                 "on", code=1)
    if not left:
        typer.echo("enrol: every step is done (--redo STEP runs one again)", err=True)
    where = f"; {set_config} now points at it" if set_config is not None else ""
    typer.echo(f"enrolled: {plan.model}{where}. Listen with: barkwatch listen --device {device} --model "
               f"{plan.model}")


def report(
    since: str = typer.Option("7d", "--since", help="From this time: 7d, 24h, today, yesterday, 2026-11-20 or "
                              "2026-11-20T08:00."),
    until: Optional[str] = typer.Option(None, "--until", help="Up to this time (same forms; default: now)."),
    out: Path = typer.Option(Path("barkwatch-report"), "--out", help="Folder for index.html and the plots."),
    events_dir: EventsDir = None,
    events_file: Optional[Path] = typer.Option(None, "--events", help="One event log file instead of the "
                                               "folder (e.g. what `barkwatch detect --events` wrote)."),
    gap: float = typer.Option(60.0, "--gap", min=0.0, help="Barks less than this many seconds apart are one "
                              "episode."),
    config_file: ConfigFile = None,
) -> None:
    """Barks per hour and per day, barking time, longest episodes and an hour-by-date map, as one HTML page."""

    from ..home.activity import summarise, summary_lines, write_activity_report
    from ..config import resolve_dirs
    from ..service.eventlog import parse_when, read_events, read_events_file

    needs("report", "matplotlib")
    setup_logging()
    now = datetime.now().astimezone()
    try:
        start = parse_when(since, now)
        end = parse_when(until, now) if until else None
    except ValueError as e:
        fail(f"--since/--until: {e}")
    if events_file is not None:
        if not events_file.is_file():
            fail(f"--events {events_file}: no such file")
        records = list(read_events_file(events_file, start, end))
    else:
        if events_dir is None:
            events_dir = resolve_dirs(load_config(config_file, {}).config)[1]
        if not events_dir.is_dir():
            fail(f"{events_dir}: no event log here yet (is barkwatch listening? see `barkwatch status`)", code=1)
        records = list(read_events(events_dir, start, end))
    last = (end - timedelta(microseconds=1)) if end is not None else now
    activity = summarise(records, start.astimezone().date(), last.astimezone().date(), gap_s=gap)
    try:
        page = write_activity_report(activity, out)
    except OSError as e:
        fail(f"{out}: cannot write the report ({e.strerror or e})", code=1)
    for line in summary_lines(activity):
        typer.echo(line)
    typer.echo(f"report: {page}")
