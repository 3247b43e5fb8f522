"""Events as tables other audio tools open: an Audacity label track and a Raven selection table.

Both are tab-separated text with times in seconds from the start of the recording, so a user can open the
recording in Audacity (File > Import > Labels) or Raven Pro (File > Open Selection Table) and step through
what barkwatch found, as BirdNET-Analyzer's users do with its tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .events import Event

RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                 "High Freq (Hz)", "Annotation", "Peak Score", "Begin Path", "File Offset (s)")


def audacity_labels(events: Sequence[Event]) -> str:
    """One ``start<TAB>end<TAB>label`` line per event (Audacity's label track format)."""
    return "".join(f"{e.start_s:.6f}\t{e.end_s:.6f}\tbark {e.peak_score:.2f}\n" for e in events)


def raven_selections(events: Sequence[Event], audio: Path, high_hz: float) -> str:
    """A Raven selection table: one row per event over the whole band up to ``high_hz`` (the Nyquist
    frequency of the rate the model listens at)."""
    rows = ["\t".join(RAVEN_COLUMNS)]
    for i, e in enumerate(events, start=1):
        rows.append("\t".join([str(i), "Spectrogram 1", "1", f"{e.start_s:.6f}", f"{e.end_s:.6f}", "0",
                               f"{high_hz:g}", "bark", f"{e.peak_score:.4f}", str(audio.resolve()), f"{e.start_s:.6f}"]))
    return "\n".join(rows) + "\n"

