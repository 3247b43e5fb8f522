"""What the commands share: options declared once, the one-line error, logging, configuration and the detector.

An option used by more than one command is an ``Annotated`` type here, so its flag, help and default are the
same wherever it appears. The detector's options default to None ("not given"): ``detect`` then takes the
built-in defaults, and ``listen`` the configuration's, with the model's own threshold and hop when neither
says otherwise (``detection/detector.py`` decides that, in one place).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, List, NoReturn, Optional

import typer

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One line on stderr, no traceback, and the exit code (2: fix the command; 1: something failed)."""
    typer.echo(f"barkwatch: error: {message}", err=True)
    raise typer.Exit(code)


def setup_logging(quiet: bool = False, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("barkwatch: %(levelname)s: %(message)s"))
    logger = logging.getLogger("barkwatch")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.ERROR if quiet else getattr(logging, level.upper()))
    logger.propagate = False


# --- Options more than one command takes -------------------------------------------------------------------

ModelFile = Annotated[Optional[Path], typer.Option("--model", help="Model file (default: the config's "
                                                   "model.path, else the shipped default model).")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="Configuration file (default: "
                                                    "./config.yaml, then $XDG_CONFIG_HOME/barkwatch/config.yaml, "
                                                    "then /etc/barkwatch/config.yaml).")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Print nothing but errors and the result.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Device = Annotated[Optional[str], typer.Option("--device", help="Input to listen to: an index, an exact name, "
                                               "hw:N[,M], a unique part of a name, default, file:PATH (a "
                                               "recording played in real time), or a stream URL (rtsp://, "
                                               "http(s)://: read through ffmpeg). See `barkwatch devices`.")]
Since = Annotated[Optional[str], typer.Option("--since", help="From this time: 2h, 30m, 7d, today, yesterday, "
                                              "2026-11-25 or 2026-11-25T08:00.")]
Until = Annotated[Optional[str], typer.Option("--until", help="Up to this time (same forms).")]
EventsDir = Annotated[Optional[Path], typer.Option("--dir", help="Events folder (default: from the config).")]

# The detector: the same options for a file and for a microphone.
Threshold = Annotated[Optional[float], typer.Option("--threshold", help="Score that counts as a bark "
                                                    "(default: the model's own).")]
Hop = Annotated[Optional[float], typer.Option("--hop", help="Seconds between windows (default: the model's).")]
Gate = Annotated[Optional[float], typer.Option("--gate", help="Windows quieter than this (dBFS) skip the network "
                                               "(default -60).")]
Patience = Annotated[Optional[int], typer.Option("--patience", help="Consecutive windows above the threshold "
                                                 "that open an event (default 2).")]
Release = Annotated[Optional[float], typer.Option("--release", help="Seconds below the threshold that close an "
                                                  "event (default 1).")]
Merge = Annotated[Optional[float], typer.Option("--merge", help="Gaps shorter than this (seconds) join "
                                                "episodes (default 2).")]
Hold = Annotated[Optional[float], typer.Option("--hold", help="Score that keeps an open event going, so a bark's "
                                              "softer tail counts (default: the model's own, else the "
                                              "threshold; never above the threshold).")]
Runtime = Annotated[Optional[str], typer.Option("--runtime", help="What runs the network: torch, onnx (the "
                                                "model's .onnx export on ONNX Runtime, without torch) or auto "
                                                "(onnx where the model has a current export, onnxruntime is "
                                                "installed and no GPU is to be used, else torch; default).")]
Compute = Annotated[Optional[str], typer.Option("--compute", help="Where the network runs: auto (CUDA, then "
                                                "MPS, then the CPU), cpu, cuda or mps (default auto).")]


def detector_options(threshold: float | None, hop: float | None, gate: float | None, patience: int | None,
                     release: float | None, merge: float | None, hold: float | None = None) -> dict:
    """The detector options given, by ``DetectorSettings`` field (the ``detector:`` config keys too)."""
    given = {"threshold": threshold, "hop_s": hop, "gate_dbfs": gate, "patience": patience, "release_s": release,
             "merge_s": merge, "hold_threshold": hold}
    return {k: v for k, v in given.items() if v is not None}


# --- Configuration, files and the detector -------------------------------------------------------------------

def load_config(config_file: Optional[Path], flags: dict):
    """The effective configuration (flags > BARKWATCH_* environment > config file > defaults), or exit 2 with
    the one-line reason."""
    from ..config import ConfigError, load_config as load

    try:
        return load(config_file, flags=flags)
    except ConfigError as e:
        fail(str(e))


def build_detector(model: Optional[Path], settings, compute: str = "auto", threads: Optional[int] = None,
                   runtime: str = "auto"):
    """``Detector.load``, or exit 2 with one line for a model, device or setting that cannot work."""
    from ..detection.detector import Detector, DetectorError
    from ..model.modelfile import ModelFileError

    try:
        return Detector.load(model, settings, compute=compute, threads=threads, runtime=runtime)
    except (DetectorError, ModelFileError) as e:
        fail(str(e))


def detector_from_config(config, **overrides):
    """The detector a configuration (flags already in it) describes, with ``overrides`` of single settings."""
    from ..detection.detector import DetectorSettings

    return build_detector(Path(config.model.path) if config.model.path else None,
                          DetectorSettings.from_config(config, **overrides), config.model.compute,
                          config.model.threads, config.model.runtime)


def audio_paths(flag: str, given: List[Path]) -> list[Path]:
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


def resolve_source(spec: str):
    """The input ``--device`` (or ``audio.device``) names, or exit 2 naming it and listing the inputs."""
    from ..live.devices import DeviceError, is_network, list_inputs, resolve

    try:
        return resolve(spec, [] if spec.startswith("file:") or is_network(spec) else list_inputs())
    except DeviceError as e:
        fail(str(e))


def auc_text(value: Optional[float]) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"
