"""A detector: a model and the settings that turn its window scores into bark events.

Every command that detects (``detect``, ``listen`` and the service, ``record``, ``calibrate``, ``label``)
builds its detector here, so the defaults are decided in one place: no threshold given means the model's own,
no hop given means the model's suggested hop, and a SIGHUP reload re-derives the event rules the same way.

    from barkwatch import Detector

    detector = Detector.load()                     # the shipped model, its own threshold
    result = detector.scan("samples/example.ogg")  # any length, in blocks, constant memory
    for event in result.events:
        print(event.start_s, event.duration_s, event.peak_score)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .engine import Engine, EngineSettings, check_hop
from .events import Event, EventTracker, TrackerSettings, WindowScore

if TYPE_CHECKING:
    from ..config import Config
    from ..model.interface import WindowScorer
    from .scan import FileResult

DEFAULT_HOP_S = 0.25  # for a model that suggests none


def model_hold_threshold(metadata: dict) -> float | None:
    """A model's own hold threshold (``EventTracker``'s hysteresis), or None where it has none: a model
    calibrated for a false-alarm budget keeps its clip classifier's threshold for this (``calibrate``)."""
    hold = metadata.get("hold_threshold")
    return None if hold is None else float(hold)


class DetectorError(ValueError):
    """A setting no detector can be built with (a compute device that is absent, a hop of 0, ...)."""


RUNTIMES = ("auto", "torch", "onnx")


def gpu_present() -> bool:
    """Whether torch could find a GPU here, told without importing torch (hundreds of MB and a second): an
    NVIDIA or AMD (ROCm) driver is loaded, or this is an Apple-silicon Mac (MPS)."""
    import platform
    import sys

    return (Path("/proc/driver/nvidia/version").exists() or Path("/dev/kfd").exists()
            or (sys.platform == "darwin" and platform.machine() == "arm64"))


def _installed(package: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(package) is not None
    except ImportError:  # a finder that refuses it
        return False


def resolve_runtime(runtime: str, model: Path | None = None, compute: str = "auto",
                    gpu: bool | None = None) -> str:
    """``torch`` or ``onnx`` for a ``--runtime`` choice and the model file it will run (None: the shipped one).

    ``auto`` is ONNX Runtime where it can run this model on the CPU that would run it anyway: onnxruntime is
    installed, the model has its ONNX export beside it (``rex.onnx`` for ``rex.pt``; ``load`` checks that it
    was exported from this very file), and no GPU is asked for (``compute`` cpu, or auto with no GPU present:
    ``gpu``, default ``gpu_present()``). It scores the same (to 1e-5) with a third of torch's memory and less
    CPU. Otherwise torch, or onnx where torch is not installed. An ``.onnx`` file means onnx."""
    if runtime not in RUNTIMES:
        raise DetectorError(f"runtime {runtime}: choose one of {', '.join(RUNTIMES)}")
    from ..model.compute import CHOICES as COMPUTE_CHOICES

    if compute not in COMPUTE_CHOICES:  # a mistyped choice is that, before anything it would mean for a runtime
        raise DetectorError(f"compute {compute}: choose one of {', '.join(COMPUTE_CHOICES)}")
    if model is not None and model.suffix == ".onnx":
        if runtime == "torch":
            raise DetectorError(f"runtime torch: {model} is an ONNX model; give its .pt file or --runtime onnx")
        return "onnx"
    if runtime != "auto":
        return runtime
    if not _installed("torch"):
        return "onnx"
    from ..model.modelfile import DEFAULT_MODEL

    wants_gpu = compute in ("cuda", "mps") or (compute == "auto" and (gpu_present() if gpu is None else gpu))
    exported = (model or DEFAULT_MODEL).with_suffix(".onnx").is_file()
    return "onnx" if exported and not wants_gpu and _installed("onnxruntime") else "torch"


@dataclass(frozen=True)
class DetectorSettings:
    """How a model's window scores become events. ``None`` means "the model's own" (its calibrated threshold,
    its suggested hop). The field names are the ``detector:`` section of ``config.yaml``."""

    threshold: float | None = None  # a window at or above it is high
    hop_s: float | None = None  # seconds between window starts
    gate_dbfs: float = -60.0  # windows quieter than this score 0 without running the network
    patience: int = 2  # consecutive high windows that open an event
    release_s: float = 1.0  # within this after the last high window, one high window continues the event
    merge_s: float = 2.0  # within this, a run of ``patience`` high windows rejoins the event
    max_duration_s: float = 600.0  # longer events are cut
    channel: int | None = None  # None mixes the input's channels; N picks channel N (0-based)
    hold_threshold: float | None = None  # an open event goes on through windows at or above it

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> DetectorSettings:
        """The settings a configuration gives (``detector:`` and ``audio.channel``), with ``overrides``."""
        d = config.detector
        settings = cls(threshold=d.threshold, hop_s=d.hop_s, gate_dbfs=d.gate_dbfs, patience=d.patience,
                       release_s=d.release_s, merge_s=d.merge_s, max_duration_s=d.max_duration_s,
                       channel=config.audio.channel, hold_threshold=d.hold_threshold)
        return replace(settings, **overrides)


class Detector:
    """A model (anything with the ``WindowScorer`` interface) on a compute device, with its settings resolved
    into the engine's and the event tracker's. Raises ``DetectorError`` for settings that cannot work."""

    def __init__(self, model: WindowScorer, settings: DetectorSettings = DetectorSettings(),
                 device: str = "cpu"):
        self.model = model
        self.settings = settings
        self.device = str(device)
        threshold = float(model.metadata["threshold"]) if settings.threshold is None else settings.threshold
        hold = model_hold_threshold(model.metadata) if settings.hold_threshold is None else settings.hold_threshold
        hop_s = float(model.metadata.get("hop_s", DEFAULT_HOP_S)) if settings.hop_s is None else settings.hop_s
        try:
            self.engine_settings = EngineSettings(hop_s=hop_s, gate_dbfs=settings.gate_dbfs,
                                                  channel=settings.channel)
            check_hop(model, hop_s)
            self.tracker_settings = TrackerSettings(threshold=threshold, patience=settings.patience,
                                                    release_s=settings.release_s, merge_s=settings.merge_s,
                                                    max_duration_s=settings.max_duration_s,
                                                    hold_threshold=hold)
        except ValueError as e:
            raise DetectorError(str(e)) from None

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, settings: DetectorSettings | None = None, *,
             compute: str = "auto", threads: int | None = None, runtime: str = "auto",
             **overrides: Any) -> Detector:
        """Load a model file (default: the shipped model) and build a detector. ``runtime`` ``torch`` runs
        the TorchScript file on ``compute`` (``auto``: CUDA, then MPS, then the CPU); ``onnx`` runs its ONNX
        export (``model.onnx`` beside ``model.pt``, or an ``.onnx`` file given) on ONNX Runtime on the CPU,
        without importing torch; ``auto`` is onnx where that export exists, is current and no GPU is to be
        used, else torch (``resolve_runtime``). ``threads`` sets the CPU threads for scoring. Keyword
        ``overrides`` change single settings: ``Detector.load("rex.pt", threshold=0.9)``.

        Raises ``ModelFileError`` for a model file that cannot be used and ``DetectorError`` for a setting;
        both name what is wrong in one line."""
        from ..model import compute as compute_module
        from ..model.modelfile import DEFAULT_MODEL, ModelFileError, load

        settings = replace(settings or DetectorSettings(), **overrides)
        if threads is not None and threads < 1:
            raise DetectorError(f"threads {threads}: give 1 or more")
        path = Path(model) if model is not None else None
        chosen = resolve_runtime(runtime, path, compute)
        compute_module.keep_freed_memory()
        if chosen == "onnx":
            from ..model.onnxrt import is_export_of, load_onnx

            if compute not in ("auto", "cpu"):
                raise DetectorError(f"compute {compute}: the onnx runtime runs on the CPU; use --runtime torch "
                                    "for a GPU")
            source = path or DEFAULT_MODEL
            onnx_path = source if source.suffix == ".onnx" else source.with_suffix(".onnx")
            if not onnx_path.is_file():
                raise ModelFileError(f"{onnx_path}: no ONNX export of {source.name}; write it with "
                                     f"`barkwatch export-onnx {source}` (where torch is installed)")
            onnx_model = load_onnx(onnx_path, threads or 1)
            if source.suffix == ".onnx" or is_export_of(onnx_model, source):
                return cls(onnx_model, settings, "cpu")
            if runtime != "auto" or not _installed("torch"):
                raise ModelFileError(f"{onnx_path}: exported from another {source.name} than the one beside it "
                                     f"(retrained since?); export it again with `barkwatch export-onnx {source}`")
            # auto: a stale export is passed over for the file itself, and said so once
            logging.getLogger("barkwatch").warning(
                "%s is older than %s: running %s on torch; `barkwatch export-onnx %s` brings the export up to "
                "date", onnx_path, source.name, source.name, source)

        import torch

        try:
            device = compute_module.resolve(compute)
        except ValueError as e:
            raise DetectorError(f"compute {e}") from None
        torch.set_flush_denormal(True)  # subnormal floats are many times slower on x86 and never move a score
        if threads is not None:
            torch.set_num_threads(threads)  # on a loaded machine one thread is often faster than several
        return cls(load(path or DEFAULT_MODEL, device=str(device)), settings, str(device))

    @property
    def threshold(self) -> float:
        return self.tracker_settings.threshold

    def with_settings(self, settings: DetectorSettings) -> Detector:
        """The same model with other settings (a SIGHUP reload); ``DetectorError`` if they cannot work."""
        return Detector(self.model, settings, self.device)

    def engine(self, input_rate: int) -> Engine:
        """A fresh engine for a stream at ``input_rate`` Hz."""
        return Engine(self.model, input_rate, self.engine_settings)

    def tracker(self) -> EventTracker:
        """A fresh event tracker with these event rules."""
        return EventTracker(self.tracker_settings)

    def scan(self, path: str | os.PathLike, *, on_record: Callable[[dict], None] | None = None,
             on_window: Callable[[WindowScore], None] | None = None, progress: bool = False,
             **options: Any) -> FileResult:
        """Scan one recording in blocks: its events, its length, and ``error`` (one line) if it could not be
        read to the end. ``on_record`` gets each ``bark_start`` and ``bark`` record as it happens; other
        options are ``detection.scan.scan_file``'s (``start``, ``clips_dir``, ``block_s``)."""
        from .scan import scan_file

        return scan_file(Path(path), self, on_record=on_record or (lambda record: None), on_window=on_window,
                         progress=progress, **options)

    def detect(self, samples: np.ndarray, sample_rate: int) -> list[Event]:
        """The events in an array of audio (``[frames]`` or ``[frames, channels]``, float in [-1, 1]),
        timed in seconds from its first sample."""
        engine, tracker = self.engine(sample_rate), self.tracker()
        events: list[Event] = []
        windows = engine.feed(np.asarray(samples, dtype=np.float32)) + engine.finish()
        for w in windows:
            events += [e for kind, e in tracker.update(w) if kind == "end"]
        end_s = len(samples) / sample_rate
        events += [e for kind, e in tracker.flush(at_s=end_s) if kind == "end"]
        return events
