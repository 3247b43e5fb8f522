"""barkwatch: a real-time bark detector.

The public API, for barks in your own Python program::

    from barkwatch import Detector

    detector = Detector.load()                     # the shipped model (or Detector.load("rex.pt", threshold=0.9))
    result = detector.scan("samples/example.ogg")  # a file of any length, in blocks, constant memory
    for event in result.events:                    # barkwatch.Event
        print(f"{event.start_s:6.1f} s  {event.duration_s:4.1f} s  peak {event.peak_score:.2f}")

- ``Detector``: a model and the settings that turn its window scores into events (``scan`` a file,
  ``detect`` an array, or ``engine()`` and ``tracker()`` for a stream of your own);
- ``DetectorSettings``: threshold, hop, gate and the event rules (None: the model's own);
- ``load_model(path)``: a model file, ``forward(wave[B, N]) -> (rl, kl, score)`` with its metadata;
- ``Event``: one bark event (times in seconds from the start of the stream, peak and mean score).

The names are imported on first use, so ``import barkwatch`` (and the commands that need no model) stay
free of torch and numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["Detector", "DetectorSettings", "Event", "load_model", "__version__"]

if TYPE_CHECKING:
    from .detection.detector import Detector, DetectorSettings
    from .detection.events import Event
    from .model.modelfile import load as load_model

_WHERE = {"Detector": ("detection.detector", "Detector"), "DetectorSettings": ("detection.detector", "DetectorSettings"),
          "Event": ("detection.events", "Event"), "load_model": ("model.modelfile", "load")}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'barkwatch' has no attribute {name!r}")
    from importlib import import_module

    module, attribute = _WHERE[name]
    value = getattr(import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value
