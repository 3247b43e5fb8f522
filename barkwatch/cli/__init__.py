"""The ``barkwatch`` command: thin wrappers that parse options, call the library, and print.

Heavy modules (torch, librosa, matplotlib) are imported inside the commands, so ``--help`` is instant.
Errors a user can fix are one line on stderr and exit code 2; nothing prints a traceback for them.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import List, Optional

import typer

from .. import __version__

app = typer.Typer(
    help="Detect dog barks in audio: train a model and inspect it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> None:
    typer.echo(f"barkwatch: error: {message}", err=True)
    raise typer.Exit(code)


def _setup_logging(quiet: bool = False, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("barkwatch: %(levelname)s: %(message)s"))
    logger = logging.getLogger("barkwatch")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.ERROR if quiet else getattr(logging, level.upper()))
    logger.propagate = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"barkwatch {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """barkwatch: a bark detector built on a variational autoencoder."""


def _parse_weights(values: List[str]) -> tuple[float, ...]:
    weights: list[float] = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                weights.append(float(part))
            except ValueError:
                fail(f"--rl-weight {part}: not a number (examples: 1e8, or 1e4,1e6,1e8 for a sweep)")
    return tuple(weights)


def _parse_range(flag: str, text: str) -> tuple[float, float]:
    """"LOW,HIGH" in dB -> (low, high)."""
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        fail(f"{flag} {text}: give a range as LOW,HIGH in dB, e.g. -5,15")
    if low > high:
        fail(f"{flag} {text}: the low end is above the high end")
    return low, high


def _parse_split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1.0) > 1e-6 or parts[0] <= 0 or parts[1] <= 0:
        fail(f"--split {text}: give three shares TRAIN,VAL,TEST summing to 1, train and validation above 0")
    return parts  # type: ignore[return-value]


def _auc_text(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


@app.command()
def train(
    positives: Optional[Path] = typer.Option(None, "--positives", help="Folder of bark recordings (searched "
                                             "recursively)."),
    out: Path = typer.Option(..., "--out", help="Where to write the model file (.pt)."),
    negatives: Optional[Path] = typer.Option(None, "--negatives",
                                             help="Folder of other sounds. Without it: one-class fallback."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="A labels.jsonl from `barkwatch label`: its "
                                          "'my dog' clips are barks, 'other dog' and 'not a bark' are not."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this model file's network "
                                        "(fine-tuning, e.g. models/default.pt): its preset, window, features "
                                        "and augmentation are used, and --lr defaults to 3e-4."),
    report: Optional[Path] = typer.Option(None, "--report", help="Folder for metrics.json and plots."),
    preset: str = typer.Option("seed", "--preset", help="Network preset: seed (the notebook's), medium, small or pooled (small, pooled over time)."),
    window: int = typer.Option(3, "--window", help="Window length in seconds: 1, 2 or 3."),
    epochs: int = typer.Option(50, "--epochs", help="Most epochs per RL weight (early stopping may end sooner)."),
    rl_weight: List[str] = typer.Option(["1e8"], "--rl-weight",
                                        help="RL weight; repeat or comma-separate several to sweep."),
    objective: str = typer.Option("one-class", "--objective", help="one-class: the VAE learns the barks alone "
                                  "(the notebook); joint: it learns all sounds with a bark head on its latent mean."),
    head_weight: float = typer.Option(1.0, "--head-weight", help="Joint objective: weight of the bark head."),
    bark_weight: Optional[float] = typer.Option(None, "--bark-weight", help="Joint: weight of a bark window in "
                                                "the head's loss against another sound's (default: balanced, "
                                                "the barks weigh as much as all other windows together)."),
    norm: str = typer.Option("minmax", "--norm", help="Spectrogram scaling: minmax (each window to [0, 1], the "
                             "notebook's), db (a fixed scale, -100 dBFS to full scale: keeps loudness) or peak (dB below the "
                             "window's loudest cell: level-invariant, no stretching)."),
    mix_snr: str = typer.Option("-5,15", "--mix-snr", help="Joint: range of window-over-other-sound ratios "
                                "(dB) when mixing."),
    bark_snr: Optional[str] = typer.Option(None, "--bark-snr", help="Joint: the barks' own mixing range (dB), "
                                           "e.g. 0,20: a bark mixed far under another sound is inaudible, and "
                                           "calling that window a bark teaches false alarms (default: --mix-snr)."),
    level: Optional[str] = typer.Option(None, "--level", help="Joint: set each training window to a random RMS "
                                        "level in this range, e.g. -50,-10 (dBFS)."),
    noise_floor: Optional[str] = typer.Option(None, "--noise-floor", help="Joint: add pink noise at a random "
                                              "level in this range under every training window, e.g. -80,-50."),
    split: str = typer.Option("0.7,0.15,0.15", "--split", help="Shares of recordings for train, validation "
                              "(early stopping, the classifier) and test (the report's figures); test may be 0 "
                              "when the model is judged elsewhere."),
    focal: float = typer.Option(0.0, "--focal", help="Joint: focal-loss exponent for the bark head (e.g. 2): "
                                "hard, bark-like sounds weigh more than easy ones."),
    ensemble: int = typer.Option(1, "--ensemble", help="Train this many VAEs (different seeds) and average "
                                 "their scores in the one exported file."),
    speed: float = typer.Option(0.0, "--speed", help="Joint: play training windows up to this fraction faster "
                                "or slower (pitch and pace), e.g. 0.15."),
    shift: float = typer.Option(0.0, "--shift", help="Joint: chance of moving a training window's sound to a "
                                "random place in it (circularly), e.g. 0.5: barks entering and leaving the window."),
    reverb: float = typer.Option(0.0, "--reverb", help="Joint: chance of a synthetic room response per window."),
    lowpass: float = typer.Option(0.0, "--lowpass", help="Joint: chance of a low-pass at 4-10.5 kHz per window "
                                  "(microphones and resampling cut the top of the spectrum)."),
    colour: float = typer.Option(0.0, "--colour", help="Joint: chance of a random equaliser per window (tilt "
                                 "and broad boosts or cuts up to 12 dB: other microphones and rooms)."),
    spec_masks: bool = typer.Option(False, "--spec-masks", help="Joint: SpecAugment time and frequency masks."),
    other_active_db: Optional[float] = typer.Option(None, "--other-active-db", help="Cut other sounds' windows "
                                                    "from anywhere within this many dB of their loudest "
                                                    "(default: the loudest part only, as for barks)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate (default 1e-3; 3e-4 with --init)."),
    lr_schedule: str = typer.Option("constant", "--lr-schedule", help="constant, or cosine: the learning rate "
                                    "falls from --lr to 1% of it over --epochs."),
    batch_size: int = typer.Option(16, "--batch-size", help="Windows per training step."),
    weight_decay: float = typer.Option(5e-4, "--weight-decay", help="Adam's L2 penalty (the notebook's 5e-4; "
                                       "0 turns it off)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop training when another epoch would "
                                                "pass this many minutes, keeping the best epoch so far."),
    windows_per_clip: int = typer.Option(4, "--windows-per-clip",
                                         help="Most windows cut from one file (from its loudest part)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps."),
    seed: int = typer.Option(0, "--seed", help="Seed for the split, the initial weights and the shuffling."),
    exclude_sources: Optional[list[Path]] = typer.Option(None, "--exclude-sources", help="Text file of "
                                                         "recordings (dataset/source_id, one a line) to leave "
                                                         "out entirely; repeatable."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only errors and the result."),
) -> None:
    """Train a model from a folder of barks (and other sounds) and export it as one file."""
    _setup_logging(quiet)
    from ..model.modelfile import ModelFileError
    from ..training.train import TrainConfig, TrainingError
    from ..training.train import train as run_training

    excluded: frozenset[str] = frozenset()
    for listing in exclude_sources or []:
        try:
            lines = listing.read_text().splitlines()
        except OSError as e:
            fail(f"--exclude-sources {listing}: cannot read ({e.strerror})")
        excluded |= frozenset(x.strip() for x in lines if x.strip() and not x.startswith("#"))
    if lr is None:
        lr = 3e-4 if init is not None else 1e-3
    config = TrainConfig(positives=positives, out=out, negatives=negatives, labels=labels, init=init,
                         report=report, preset=preset,
                         window_s=window, epochs=epochs, rl_weights=_parse_weights(rl_weight), lr=lr,
                         lr_schedule=lr_schedule,
                         objective=objective, head_weight=head_weight, normalisation=norm,
                         mix_snr_db=_parse_range("--mix-snr", mix_snr),
                         bark_snr_db=_parse_range("--bark-snr", bark_snr) if bark_snr else None,
                         level_dbfs=_parse_range("--level", level) if level else None,
                         floor_dbfs=_parse_range("--noise-floor", noise_floor) if noise_floor else None,
                         spec_masks=spec_masks, other_active_db=other_active_db, split=_parse_split(split),
                         speed=speed, shift_p=shift, reverb_p=reverb, lowpass_p=lowpass, colour_p=colour,
                         ensemble=ensemble,
                         focal_gamma=focal, bark_weight=bark_weight,
                         batch_size=batch_size, weight_decay=weight_decay, max_minutes=max_minutes,
                         max_windows_per_clip=windows_per_clip, device=device, seed=seed,
                         exclude_sources=excluded, progress=not quiet)
    try:
        result = run_training(config)
    except (TrainingError, ModelFileError) as e:
        fail(str(e))
    test = result.metadata["metrics"].get("test", {})
    auc = test.get("roc_auc")
    typer.echo(f"model: {result.model_path}")
    if test:
        typer.echo(f"test clips: {test['positives']} barks, {test['negatives']} other; ROC AUC {auc:.3f}, "
                   f"balanced accuracy {test['balanced_accuracy']:.3f}")
    for split in ("val", "test"):
        sep = result.metadata["metrics"].get(split, {}).get("separation")
        if sep:
            typer.echo(f"{split} separation (clip ROC AUC): my dog vs other dogs "
                       f"{_auc_text(sep['my_dog_vs_other_dog_roc_auc'])} ({sep['other_dog_clips']} clips), "
                       f"vs not a bark {_auc_text(sep['my_dog_vs_not_bark_roc_auc'])} ({sep['not_bark_clips']} clips)")
    if result.skipped:
        typer.echo(f"skipped {len(result.skipped)} unreadable file(s); see the warnings above")
    if result.report_dir is not None:
        typer.echo(f"report: {result.report_dir / 'metrics.json'}")


@app.command()
def inspect(
    model: Path = typer.Argument(..., help="A model file written by `barkwatch train`."),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
) -> None:
    """Show a model file's metadata: window, threshold, network, training data and metrics."""
    from ..model.modelfile import ModelFileError, file_hash, read_metadata

    try:
        meta = read_metadata(model)
    except ModelFileError as e:
        fail(str(e))
    if as_json:
        typer.echo(json.dumps(meta, indent=2))
        return
    training = meta.get("training", {})
    lines = [
        f"model        {model} (sha256 {file_hash(model)})",
        f"format       {meta['format_version']}, barkwatch {meta.get('barkwatch_version', '?')}, "
        f"created {meta.get('created', '?')}",
        f"network      {meta.get('preset')} ({meta.get('parameters', 0):,} parameters)",
        f"window       {meta.get('window_s')} s at {meta.get('sample_rate')} Hz, suggested hop {meta.get('hop_s')} s",
        f"classifier   {meta.get('classifier', {}).get('kind')}, threshold {meta.get('threshold', 0):.3f}",
        f"trained on   {training.get('files', {}).get('positive')} bark and "
        f"{training.get('files', {}).get('negative')} other files; RL weight {training.get('rl_weight', 0):g}, "
        f"{training.get('epochs')} epochs on {training.get('device')} in {training.get('seconds')} s",
    ]
    for split, m in meta.get("metrics", {}).items():
        auc = m.get("roc_auc")
        bacc = m.get("balanced_accuracy")
        lines.append(f"{split:<12} {m.get('positives')} barks / {m.get('negatives')} other clips: "
                     f"AUC {_fmt(auc)}, balanced accuracy {_fmt(bacc)}")
    typer.echo("\n".join(lines))


@app.command()
def devices(
    as_json: bool = typer.Option(False, "--json", help="Print the inputs as a JSON array."),
) -> None:
    """List the input devices (microphones) that --device can name."""
    from dataclasses import asdict

    from ..live.devices import DeviceError, format_table, list_inputs, why_no_inputs

    try:
        inputs = list_inputs()
    except DeviceError as e:
        fail(str(e))
    if not inputs:
        # stderr, so that stdout stays an (empty) table or a parseable [].
        reason = why_no_inputs()
        typer.echo(f"barkwatch: no input devices found{': ' + reason if reason else ''}", err=True)
    typer.echo(json.dumps([asdict(d) for d in inputs], indent=2) if as_json else format_table(inputs))


# Options `detect` and `listen` share: the same detector, from a file or live.
THRESHOLD_OPTION = typer.Option(None, "--threshold", help="Score that counts as a bark (default: the model's).")
HOP_OPTION = typer.Option(None, "--hop", help="Seconds between windows (default: the model's).")
GATE_OPTION = typer.Option(-60.0, "--gate", help="Windows quieter than this (dBFS) skip the network.")
PATIENCE_OPTION = typer.Option(2, "--patience", help="Consecutive windows above threshold that open an event.")
RELEASE_OPTION = typer.Option(1.0, "--release", help="Seconds below threshold that close an event.")
MERGE_OPTION = typer.Option(2.0, "--merge", help="Gaps shorter than this (seconds) join episodes.")
COMPUTE_OPTION = typer.Option("auto", "--compute", help="Where the network runs: auto, cpu, cuda or mps.")


def _detector(model: Optional[Path], compute: str, threads: Optional[int], hop: Optional[float], gate: float,
              threshold: Optional[float], patience: int, release: float, merge: float,
              channel: Optional[int] = None, max_duration: float = 600.0):
    """The model on its compute device and the engine and tracker settings the options give; one-line
    errors for a bad device, model or setting."""
    from ..model import compute as compute_module
    from ..detection.engine import EngineSettings
    from ..detection.events import TrackerSettings
    from ..model.modelfile import DEFAULT_MODEL, ModelFileError, load

    try:
        device = compute_module.resolve(compute)
    except ValueError as e:
        fail(f"--compute {e}")
    compute_module.keep_freed_memory()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)  # on a loaded machine one thread is often faster than several
    try:
        loaded = load(model or DEFAULT_MODEL, device=str(device))
    except ModelFileError as e:
        fail(str(e))
    try:
        engine_settings = EngineSettings(hop_s=hop or float(loaded.metadata.get("hop_s", 0.25)), gate_dbfs=gate,
                                         channel=channel)
        tracker_settings = TrackerSettings(threshold=loaded.threshold if threshold is None else threshold,
                                           patience=patience, release_s=release, merge_s=merge,
                                           max_duration_s=max_duration)
    except ValueError as e:
        fail(str(e))
    return device, loaded, engine_settings, tracker_settings


@app.command()
def detect(
    files: List[Path] = typer.Argument(..., help="Recordings to scan: wav, flac, ogg or mp3, any length."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: models/default.pt)."),
    events: Optional[str] = typer.Option(None, "--events",
                                         help="Append bark_start/bark JSON Lines records here ('-': stdout)."),
    scores: Optional[Path] = typer.Option(None, "--scores", help="Write every window's time, level, RL, KL "
                                          "and score to this CSV file."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw what the detector heard to this PNG "
                                        "(with several files: one PNG each, named after the file)."),
    clips: Optional[Path] = typer.Option(None, "--clips", help="Cut each event (1 s either side) to a FLAC "
                                         "file in this folder."),
    threshold: Optional[float] = THRESHOLD_OPTION,
    start: Optional[datetime] = typer.Option(None, "--start", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S",
                                                                       "%Y-%m-%d %H:%M:%S"],
                                             help="When the recording began (default: file time minus "
                                             "duration); applies to each file."),
    hop: Optional[float] = HOP_OPTION,
    gate: float = GATE_OPTION,
    patience: int = PATIENCE_OPTION,
    release: float = RELEASE_OPTION,
    merge: float = MERGE_OPTION,
    compute: str = COMPUTE_OPTION,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for the network "
                                          "(default: torch's choice, one per core)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar and no summary."),
) -> None:
    """Scan recordings for barks and report each event (exit code 1 if a file could not be read)."""
    from ..detection.scan import ScoreWriter, scan_file
    from ..detection.events import EventLog, EventLogError

    _setup_logging(quiet)

    device, loaded, engine_settings, tracker_settings = _detector(model, compute, threads, hop, gate, threshold,
                                                                  patience, release, merge)

    human = sys.stderr if events == "-" else sys.stdout
    log = None
    score_file = None
    failures = 0
    try:
        log = EventLog(events) if events else None
        score_file = open(scores, "w", newline="") if scores else None
        writer = ScoreWriter(score_file) if score_file else None
        scanned = []

        def on_record(record: dict) -> None:
            if log is not None:
                log.write(record)
            if record["event"] == "bark" and not quiet:
                print(f"{record['start'][:19].replace('T', ' ')}  bark  {record['duration_s']:6.1f} s  "
                      f"peak {record['peak_score']:.2f}  {Path(record['source']).name} +{record['offset_s']:.1f} s",
                      file=human, flush=True)

        for path in files:
            heard: list = []  # the windows, kept only to plot them

            def on_window(w, path=path, heard=heard) -> None:
                if writer is not None:
                    writer.write(path, w)
                if plot is not None:
                    heard.append(w)

            result = scan_file(path, loaded, engine_settings=engine_settings, tracker_settings=tracker_settings,
                               on_record=on_record, on_window=on_window, start=start, device=str(device),
                               clips_dir=clips, progress=not quiet)
            scanned.append(result)
            if result.error:
                failures += 1
                typer.echo(f"barkwatch: error: {result.error}", err=True)
            if plot is not None and not result.error:
                from ..training.report import plot_detection

                target = plot if len(files) == 1 else plot.with_name(f"{plot.stem}-{path.stem}{plot.suffix}")
                plot_detection(path, heard, result.events, tracker_settings.threshold, target)
            if not result.error and not quiet:
                print(f"{path}: {len(result.events)} event(s), {result.bark_seconds:.1f} s of barking, longest "
                      f"{result.longest_s:.1f} s, in {result.duration_s:.1f} s of audio "
                      f"({result.gated} of {result.windows} windows below the gate)", file=human, flush=True)
        if len(files) > 1 and not quiet:
            every = [e for r in scanned for e in r.events]
            print(f"all {len(files)} files: {len(every)} event(s), {sum(e.duration_s for e in every):.1f} s of "
                  f"barking, longest {max((e.duration_s for e in every), default=0.0):.1f} s"
                  + (f", {failures} file(s) could not be read" if failures else ""), file=human, flush=True)
    except (EventLogError, OSError) as e:
        fail(str(e) if isinstance(e, EventLogError) else f"{e.filename}: cannot write ({e.strerror})", code=1)
    finally:
        if log is not None:
            log.close()
        if score_file is not None:
            score_file.close()
    if failures:
        raise typer.Exit(1)


def _load_config(config_file: Optional[Path], flags: dict):
    """The effective configuration (flags > BARKWATCH_* environment > config file > defaults), or exit 2 with
    the one-line reason."""
    from ..config import ConfigError, load_config

    try:
        return load_config(config_file, flags=flags)
    except ConfigError as e:
        fail(str(e))


CONFIG_OPTION = typer.Option(None, "--config", help="Configuration file (default: ./config.yaml, then "
                             "$XDG_CONFIG_HOME/barkwatch/config.yaml, then /etc/barkwatch/config.yaml).")


@app.command()
def listen(
    device_spec: Optional[str] = typer.Option(None, "--device", help="Input to listen to: an index, an exact "
                                              "name, hw:N[,M], a unique part of a name, default, or file:PATH (a "
                                              "recording played in real time). See `barkwatch devices`."),
    samplerate: Optional[float] = typer.Option(None, "--samplerate", help="Capture rate in Hz (default: the "
                                               "device's; the engine resamples to the model's)."),
    channel: Optional[int] = typer.Option(None, "--channel", min=0, help="Use this input channel (0-based) "
                                          "instead of mixing them."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: models/default.pt)."),
    events: Optional[str] = typer.Option(None, "--events", help="Append bark_start/bark JSON Lines records "
                                         "to this one file ('-': stdout) instead of the daily logs in the "
                                         "events folder."),
    threshold: Optional[float] = THRESHOLD_OPTION,
    hop: Optional[float] = HOP_OPTION,
    gate: Optional[float] = typer.Option(None, "--gate", help="Windows quieter than this (dBFS) skip the "
                                         "network (default -60)."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Consecutive windows above threshold that "
                                           "open an event (default 2)."),
    release: Optional[float] = typer.Option(None, "--release", help="Seconds below threshold that close an "
                                            "event (default 1)."),
    merge: Optional[float] = typer.Option(None, "--merge", help="Gaps shorter than this (seconds) join "
                                          "episodes (default 2)."),
    compute: Optional[str] = typer.Option(None, "--compute", help="Where the network runs: auto, cpu, cuda or "
                                          "mps (default auto)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for the network "
                                          "(default 1: one keeps up many times over; more threads spin "
                                          "between the few windows a second and burn a core)."),
    clips: Optional[bool] = typer.Option(None, "--clips/--no-clips", help="Save each event as audio with pre- "
                                         "and post-roll (default: on)."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="Folder for the status file, and the "
                                             "events and clips unless configured elsewhere."),
    config_file: Optional[Path] = CONFIG_OPTION,
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Add a status line every few seconds: level, "
                                 "highest score, overruns, outages."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print nothing (errors excepted)."),
) -> None:
    """Listen to a microphone and report each bark as it happens, until Ctrl-C or SIGTERM (exit code 0).

    Settings come from the flags, BARKWATCH_* variables, the config file and the defaults, in that order
    (`barkwatch config` shows the result). A lost device is reopened with backoff until it is back. A file:
    source ends with the file. SIGHUP reloads the configuration without stopping.
    """
    if quiet and verbose:
        fail("-q and -v: choose one")
    flags = {"audio.device": device_spec, "audio.samplerate": samplerate, "audio.channel": channel,
             "model.path": model, "model.compute": compute, "model.threads": threads,
             "detector.threshold": threshold, "detector.hop_s": hop, "detector.gate_dbfs": gate,
             "detector.patience": patience, "detector.release_s": release, "detector.merge_s": merge,
             "clips.enabled": clips, "paths.state_dir": state_dir}
    loaded_config = _load_config(config_file, flags)
    cfg = loaded_config.config
    from ..live.devices import DeviceError, FileSource, list_inputs, resolve

    _setup_logging(quiet, cfg.logging.level)
    spec = cfg.audio.device
    try:
        source = resolve(spec, [] if spec.startswith("file:") else list_inputs())
    except DeviceError as e:
        fail(str(e))
    if isinstance(source, FileSource) and cfg.audio.samplerate is not None:
        fail("--samplerate applies to microphones: a file: source plays at its own rate")
    d = cfg.detector
    device, loaded, engine_settings, tracker_settings = _detector(
        Path(cfg.model.path) if cfg.model.path else None, cfg.model.compute, cfg.model.threads, d.hop_s,
        d.gate_dbfs, d.threshold, d.patience, d.release_s, d.merge_s, cfg.audio.channel, d.max_duration_s)
    from ..service.run import run_listen

    code = run_listen(loaded_config, source, loaded, engine_settings, tracker_settings, compute_device=str(device),
                      reload=lambda: _reload_config(config_file, flags), events=events, verbose=verbose,
                      quiet=quiet)
    if code:
        raise typer.Exit(code)


def _reload_config(config_file: Optional[Path], flags: dict):
    from ..config import load_config

    return load_config(config_file, flags=flags)


def _audio_paths(flag: str, given: List[Path]) -> list[Path]:
    """Files as given, folders searched recursively for audio; one-line errors for what is not there."""
    from ..detection.audio import find_audio_files

    paths: list[Path] = []
    for p in given:
        if p.is_dir():
            found = find_audio_files(p)
            if not found:
                fail(f"{flag} {p}: no audio files (wav, flac, ogg, mp3) in this folder")
            paths += found
        elif p.is_file():
            paths.append(p)
        else:
            fail(f"{flag} {p}: no such file or folder")
    return paths


@app.command()
def calibrate(
    background: List[Path] = typer.Option(..., "--background", help="Recordings of the home with no barking "
                                          "(files or folders; repeatable): every event on them is a false alarm."),
    barks: List[Path] = typer.Option([], "--barks", help="Clips of the dog barking (files, folders, or a "
                                     "labels.jsonl for its 'my dog' clips; repeatable): a clip with an event "
                                     "is found. Gives the recall column."),
    budget: float = typer.Option(0.5, "--budget", min=0.0, help="False alarms per hour to allow."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model file (default: the config's, else "
                                         "models/default.pt)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write a copy of the model with the chosen "
                                       "threshold here (it may be the model file itself)."),
    set_config: Optional[Path] = typer.Option(None, "--set-config", help="Set detector.threshold to the chosen "
                                              "threshold in this config file (comments kept; made if missing)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw false alarms per hour and recall against "
                                        "the threshold to this PNG."),
    as_json: bool = typer.Option(False, "--json", help="Print every operating point as JSON instead of a table."),
    config_file: Optional[Path] = CONFIG_OPTION,
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bars."),
) -> None:
    """Find the threshold that keeps false alarms within a budget in this home (exit 1 if none does)."""
    from ..home import calibrate as cal
    from ..config import ConfigError, set_in_file
    from ..model.modelfile import ModelFileError, update_metadata
    from ..service.run import tracker_settings

    _setup_logging(quiet)
    loaded_config = _load_config(config_file, {})
    config = loaded_config.config
    background_paths = _audio_paths("--background", background)
    bark_paths = _audio_paths("--barks", [b for b in barks if b.suffix != ".jsonl"])
    for listing in (b for b in barks if b.suffix == ".jsonl"):  # labels.jsonl: its "my dog" clips
        from ..training.train import labelled_files

        if not listing.is_file():
            fail(f"--barks {listing}: no such file")
        bark_paths += [p for p, label in labelled_files(listing) if label == "my_dog"]
    model_path = model or (Path(config.model.path) if config.model.path else None)
    device, loaded, engine_settings, settings = _detector(
        model_path, config.model.compute, config.model.threads, config.detector.hop_s, config.detector.gate_dbfs,
        None, config.detector.patience, config.detector.release_s, config.detector.merge_s,
        max_duration=config.detector.max_duration_s)
    settings = tracker_settings(config, loaded.threshold)

    streams, seconds, errors = cal.scan_windows(background_paths, loaded, engine_settings, str(device), not quiet)
    bark_streams, _, bark_errors = cal.scan_windows(bark_paths, loaded, engine_settings, str(device), not quiet)
    for error in errors + bark_errors:
        typer.echo(f"barkwatch: error: {error}", err=True)
    if errors or bark_errors:
        fail("fix or remove the files above and run calibrate again", code=1)
    hours = seconds / 3600.0
    if hours <= 0:
        fail("--background: no audio in the given files")
    points = cal.sweep(streams, hours, bark_streams, settings)
    chosen = cal.choose(points, budget)
    title = (f"{loaded.path.name} on {len(background_paths)} background file(s), {hours:.2f} h"
             + (f", {len(bark_paths)} bark clip(s)" if bark_paths else ""))
    if plot is not None:
        cal.plot_sweep(points, chosen, budget, plot, title)
    if as_json:
        typer.echo(json.dumps({"model": str(loaded.path), "hours": hours, "budget_per_hour": budget,
                               "chosen": chosen.to_dict() if chosen else None,
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
            update_metadata(loaded.path, out, {"threshold": chosen.threshold, "calibration": calibration})
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


@app.command("config")
def config_command(
    show: bool = typer.Option(True, "--show/--check", help="Print the effective configuration with where each "
                              "value came from (default), or only check it."),
    config_file: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Show the effective configuration: flags > BARKWATCH_* environment > config file > defaults.

    A bad key or value is one line naming it, exit code 2. The output is itself a valid config file.
    """
    from ..config import format_config

    loaded = _load_config(config_file, {})
    if show:
        typer.echo(format_config(loaded), nl=False)
    else:
        typer.echo(f"{loaded.file or 'defaults'}: OK")


@app.command()
def events(
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new events as they are written, "
                                "like tail -f."),
    since: Optional[str] = typer.Option(None, "--since", help="From this time: 2h, 30m, 7d, today, yesterday, "
                                        "2026-11-25 or 2026-11-25T08:00 (default: today; with -f, now)."),
    until: Optional[str] = typer.Option(None, "--until", help="Up to this time (same forms)."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON Lines records as they are stored."),
    every: bool = typer.Option(False, "--all", help="Show bark_start records too, not only finished barks."),
    events_dir: Optional[Path] = typer.Option(None, "--dir", help="Events folder (default: from the config)."),
    config_file: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Show the barks in the event log: a table, or the records as JSON Lines; -f follows new ones."""
    from datetime import datetime as _dt

    from ..config import resolve_dirs
    from ..service.eventlog import follow as follow_events, format_line, format_table, parse_when, read_events

    if events_dir is None:
        events_dir = resolve_dirs(_load_config(config_file, {}).config)[1]
    now = _dt.now().astimezone()
    try:
        start = parse_when(since, now) if since else (None if follow else parse_when("today", now))
        end = parse_when(until, now) if until else None
    except ValueError as e:
        fail(f"--since/--until: {e}")
    if not follow:
        if not events_dir.is_dir():
            fail(f"{events_dir}: no event log here yet (is barkwatch listening? see `barkwatch status`)", code=1)
        records = list(read_events(events_dir, start, end))
        if as_json:
            for r in records:
                typer.echo(json.dumps(r, ensure_ascii=False))
        else:
            typer.echo(format_table(records, every=every))
        return
    try:
        for record in follow_events(events_dir, since=start):
            if end is not None and record.get("start", "") >= end.isoformat():
                continue
            if as_json:
                print(json.dumps(record, ensure_ascii=False), flush=True)
            elif every or record.get("event") == "bark":
                print(format_line(record), flush=True)
    except KeyboardInterrupt:
        pass


@app.command()
def record(
    out: Path = typer.Option(..., "--out", help="Folder for the clips and their index (recorded.jsonl); "
                             "a later run adds to it."),
    device_spec: Optional[str] = typer.Option(None, "--device", help="Input to record, as for `listen` "
                                              "(default: the config's)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", min=0.0, help="Stop after this many minutes."),
    until: Optional[str] = typer.Option(None, "--until", help="Stop at this local time: 07:30, or "
                                        "2026-11-26T07:30."),
    keep: str = typer.Option("sounds", "--keep", help="sounds: every stretch louder than the room; barks: "
                             "every stretch the model scores at or above --threshold (bark candidates)."),
    level: Optional[float] = typer.Option(None, "--level", help="sounds: keep windows above this level "
                                          "(dBFS) instead of 10 dB above the room's floor."),
    threshold: float = typer.Option(0.5, "--threshold", min=0.0, max=1.0, help="barks: the score to keep "
                                    "(low, so that quiet or unusual barks are kept for labelling)."),
    background_every: float = typer.Option(10.0, "--background-every", min=0.0, help="Minutes between samples "
                                           "of the background (0: none)."),
    max_mb: float = typer.Option(1000.0, "--max-mb", min=0.001, help="Stop when the clips take this much disk."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model for --keep barks (default: the config's)."),
    config_file: Optional[Path] = CONFIG_OPTION,
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print nothing but errors."),
) -> None:
    """Record a home's sounds as short clips (and samples of its background) to label and train on."""
    import signal
    import time as _time
    from datetime import datetime as _dt

    from ..live.capture import NativeStderrFilter
    from ..live.devices import DeviceError, list_inputs, resolve
    from ..live.listener import Listener, ListenError
    from ..live.record import KEEP_CHOICES, LevelScorer, Recorder, read_index
    from ..service.run import opener_for

    if keep not in KEEP_CHOICES:
        fail(f"--keep {keep}: choose {' or '.join(KEEP_CHOICES)}")
    now = _dt.now().astimezone()
    deadline = _time.monotonic() + minutes * 60 if minutes is not None else None
    if until is not None:
        try:
            at = _dt.fromisoformat(until) if "T" in until or "-" in until else _dt.combine(
                now.date(), _dt.strptime(until, "%H:%M").time())
        except ValueError:
            fail(f"--until {until}: give a local time as HH:MM or YYYY-MM-DDTHH:MM")
        at = at.astimezone() if at.tzinfo is None else at
        if at <= now and "T" not in until and "-" not in until:
            at += timedelta(days=1)  # 07:30 given in the evening: tomorrow morning
        if at <= now:
            fail(f"--until {until}: that time has passed")
        left = (at - now).total_seconds()
        deadline = min(deadline, _time.monotonic() + left) if deadline is not None else _time.monotonic() + left
    loaded_config = _load_config(config_file, {"audio.device": device_spec, "model.path": model})
    cfg = loaded_config.config
    _setup_logging(quiet, cfg.logging.level)
    try:
        source = resolve(cfg.audio.device, [] if cfg.audio.device.startswith("file:") else list_inputs())
    except DeviceError as e:
        fail(str(e))
    d = cfg.detector
    device, loaded, engine_settings, tracker = _detector(
        Path(cfg.model.path) if cfg.model.path else None, cfg.model.compute, cfg.model.threads, d.hop_s,
        d.gate_dbfs, threshold, 1, 1.0, 1.0, cfg.audio.channel, max_duration=30.0)
    if keep == "sounds":
        scorer = LevelScorer(loaded.sample_rate, loaded.window_samples, engine_settings.hop_s, level_dbfs=level,
                             min_dbfs=d.gate_dbfs)
        engine_settings = replace(engine_settings, gate_dbfs=-float("inf"))  # the floor needs every window
        tracker = replace(tracker, threshold=0.5)
    else:
        scorer = loaded
    opener = opener_for(source, cfg.audio)
    try:
        recorder = Recorder(out, "sound" if keep == "sounds" else "bark", max_bytes=int(max_mb * 1e6),
                            background_every_s=background_every * 60.0)
    except OSError as e:
        fail(f"--out {out}: cannot write here ({e.strerror or e})")
    listener = Listener(opener, scorer, engine_settings=engine_settings, tracker_settings=tracker,
                        on_record=recorder.record, compute_device=str(device), hooks=recorder)
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

        def on_stop(signum, frame) -> None:
            stopped_by.append(signal.Signals(signum).name)
            listener.stop()

        previous = {s: signal.signal(s, on_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not listener.wait(0.2):
                if deadline is not None and _time.monotonic() >= deadline:
                    stopped_by.append("the time limit")
                    listener.stop()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    recorder.close()
    entries = read_index(out)
    if not quiet:
        why = stopped_by[0] if stopped_by else ("the disk budget" if recorder.full else "the end of the input")
        kept = ", ".join(f"{n} {k}" for k, n in recorder.counts.items())
        typer.echo(f"stopped by {why}: kept {kept} clip(s) this run, {len(entries)} in {out} "
                   f"({recorder.used_bytes() / 1e6:.2f} MB); next: barkwatch label {out}")
    if listener.error:
        fail(listener.error, code=1)


@app.command()
def label(
    folder: Path = typer.Argument(..., help="Folder of clips: what `barkwatch record --out` wrote, or any "
                                  "folder of audio files."),
    model: Optional[Path] = typer.Option(None, "--model", help="Model whose score is shown (default: "
                                         "models/default.pt)."),
    no_play: bool = typer.Option(False, "--no-play", help="Show the clips without playing them."),
) -> None:
    """Label clips one key at a time: my dog, other dog, not a bark. Resumable; writes FOLDER/labels.jsonl."""
    from ..home.label import LabelError, find_clips, run, scorer_for, summary
    from ..model.modelfile import ModelFileError

    if not folder.is_dir():
        fail(f"{folder}: no such folder")
    try:
        score = scorer_for(model)
    except ModelFileError as e:
        fail(str(e))
    try:
        counts = run(folder, score, play=not no_play)
    except LabelError as e:
        fail(str(e))
    except OSError as e:
        fail(f"{folder}: cannot write labels here ({e.strerror or e})", code=1)
    typer.echo(summary(counts, len(find_clips(folder)), folder))


@app.command()
def report(
    since: str = typer.Option("7d", "--since", help="From this time: 7d, 24h, today, yesterday, 2026-11-20 or "
                              "2026-11-20T08:00."),
    until: Optional[str] = typer.Option(None, "--until", help="Up to this time (same forms; default: now)."),
    out: Path = typer.Option(Path("barkwatch-report"), "--out", help="Folder for index.html and the plots."),
    events_dir: Optional[Path] = typer.Option(None, "--dir", help="Events folder (default: from the config)."),
    events_file: Optional[Path] = typer.Option(None, "--events", help="One event log file instead of the "
                                               "folder (e.g. what `barkwatch detect --events` wrote)."),
    gap: float = typer.Option(60.0, "--gap", min=0.0, help="Barks less than this many seconds apart are one "
                              "episode."),
    config_file: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Barks per hour and per day, barking time, longest episodes and an hour-by-date map, as one HTML page."""
    from datetime import datetime as _dt

    from ..home.activity import summarise, summary_lines, write_report
    from ..config import resolve_dirs
    from ..service.eventlog import parse_when, read_events, read_events_file

    _setup_logging()
    now = _dt.now().astimezone()
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
            events_dir = resolve_dirs(_load_config(config_file, {}).config)[1]
        if not events_dir.is_dir():
            fail(f"{events_dir}: no event log here yet (is barkwatch listening? see `barkwatch status`)", code=1)
        records = list(read_events(events_dir, start, end))
    last = (end - timedelta(microseconds=1)) if end is not None else now
    activity = summarise(records, start.astimezone().date(), last.astimezone().date(), gap_s=gap)
    try:
        page = write_report(activity, out)
    except OSError as e:
        fail(f"{out}: cannot write the report ({e.strerror or e})", code=1)
    for line in summary_lines(activity):
        typer.echo(line)
    typer.echo(f"report: {page}")


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="Print the status file as it is."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="The service's state folder "
                                             "(default: from the config; the service's is /var/lib/barkwatch)."),
    config_file: Optional[Path] = CONFIG_OPTION,
) -> None:
    """Is barkwatch listening? Device, since when, events today, last event, overruns, outages, clips on disk.

    Exit code 0 when it is running, 3 when it is not (as `systemctl status`)."""
    from dataclasses import asdict
    from datetime import datetime as _dt

    from ..config import resolve_dirs
    from ..service.systemd import format_status, pid_alive, read_state, state_path

    if state_dir is None:
        state_dir = resolve_dirs(_load_config(config_file, {}).config)[0]
    path = state_path(state_dir)
    state = read_state(path)
    if state is None:
        fail(f"{path}: no status file: barkwatch has not run with this state folder (try --state-dir "
             "/var/lib/barkwatch for the service)", code=3)
    alive = pid_alive(state.pid) and state.status != "stopped"
    if as_json:
        typer.echo(json.dumps({**asdict(state), "running": alive}, indent=1))
    else:
        typer.echo(format_status(state, _dt.now().astimezone(), alive))
    if not alive:
        raise typer.Exit(3)


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
