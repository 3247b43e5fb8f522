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
from typer.core import TyperCommand

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One line on stderr, no traceback, and the exit code (2: fix the command; 1: something failed)."""
    typer.echo(f"barkwatch: error: {message}", err=True)
    raise typer.Exit(code)


# What an optional module is installed as: pyproject.toml's pins (tests/test_cli.py holds them equal), named
# directly rather than as barkwatch's extras, since `pip install 'barkwatch[web]'` on an install made with
# --no-deps would pull torch back in.
INSTALL = {
    "torch": "torch>=2.1,<3",
    "librosa": "librosa>=0.10,<0.12",
    "matplotlib": "matplotlib>=3.7,<4",
    "aiohttp": "aiohttp>=3.9,<4",
    "onnxruntime": "onnxruntime>=1.17,<2",
    "onnx": "onnx>=1.16,<2",
    "onnxscript": "onnxscript>=0.2,<1",
    "paho": "paho-mqtt>=2,<3",
}
# A plain `pip install torch` on Linux is the CUDA build, gigabytes a box without an NVIDIA GPU never uses.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, told without importing it (torch takes a second)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_text(what: str, modules: List[str]) -> str:
    """``what`` needs ``modules``, in one line with the pip command that installs them."""
    names = ", ".join(modules[:-1]) + " and " + modules[-1] if len(modules) > 1 else modules[0]
    others = " ".join(f"'{INSTALL[m]}'" for m in modules if m != "torch")
    if "torch" in modules:  # its CPU build from its own index, which holds torch and its dependencies only
        command = f"pip install '{INSTALL['torch']}' --index-url {TORCH_CPU_INDEX} (the CPU build; a plain " \
                  "pip install torch fetches gigabytes of CUDA)" + (f", then pip install {others}" if others else "")
    else:
        command = f"pip install {others}"
    return f"{what} needs {names}, which this install leaves out: {command}"


def needs(what: str, *modules: str) -> None:
    """Exit 2 with one line naming what to pip install when a module ``what`` (a command, an option) needs is
    not installed: the small-box install leaves torch, librosa and matplotlib out."""
    missing = [m for m in modules if not installed(m)]
    if missing:
        fail(missing_text(what, missing))


class Command(TyperCommand):
    """A command whose help is in words: arguments by name in capitals (``FILES...``, ``[FOLDER]``), as click
    writes them, where typer prints Python's types (``{files}... <list[Path]>``), and ``<text>`` for ``<str>``."""

    @staticmethod
    def _argument(param) -> str:
        return param.metavar or param.name.upper()

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = self._argument(param) if param.required else f"[{self._argument(param)}]"
                pieces.append(name + ("..." if param.nargs != 1 else ""))
        return pieces

    def format_options(self, ctx, formatter) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            if getattr(param, "hidden", False):
                continue
            if param.param_type_name == "argument":
                arguments.append((self._argument(param) + ("..." if param.nargs != 1 else ""), param.help or ""))
            elif param.param_type_name == "option" and (record := param.get_help_record(ctx)) is not None:
                options.append((record[0].replace("<str>", "<text>"), record[1]))
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


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
                   runtime: str = "auto", runtime_flag: str = "--runtime torch"):
    """``Detector.load``, or exit 2 with one line for a model, device or setting that cannot work (torch asked
    for where it is not installed: ``runtime_flag`` needs torch)."""
    from ..detection.detector import Detector, DetectorError, resolve_runtime
    from ..model.modelfile import ModelFileError

    try:
        if resolve_runtime(runtime, model, compute) == "torch":  # auto never picks torch where it is absent
            needs(runtime_flag, "torch")
        return Detector.load(model, settings, compute=compute, threads=threads, runtime=runtime)
    except (DetectorError, ModelFileError) as e:
        fail(str(e))


def detector_from_config(config, **overrides):
    """The detector a configuration (flags already in it) describes, with ``overrides`` of single settings."""
    from ..detection.detector import DetectorSettings

    return build_detector(Path(config.model.path) if config.model.path else None,
                          DetectorSettings.from_config(config, **overrides), config.model.compute,
                          config.model.threads, config.model.runtime, "--runtime torch (model.runtime)")


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
