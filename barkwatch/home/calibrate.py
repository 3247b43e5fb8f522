"""Calibration: the threshold that keeps false alarms within a budget in one particular home.

A model's own threshold is chosen on clips, but how often it fires is decided by a home's own sounds: its TV,
its kettle, the street outside. ``barkwatch calibrate`` scans recordings of the home with the dog not barking
(the background) and, when given, clips of the dog's barks, exactly as ``barkwatch detect`` scans them, then
replays the window scores through the event tracker at every candidate threshold:

- a false alarm is an event on the background; false alarms per hour = events / hours of background;
- a bark clip is found when it raises at least one event; recall = found clips / bark clips.

The safe threshold is the lowest one from which every higher candidate also stays within the budget: the
most sensitive setting that is safe, even where merging makes the event count dip and rise again between
neighbouring thresholds. With bark clips, the threshold chosen is then ``centre``d between it and the highest
threshold that still finds as many of them: an hour of background is a small sample of a home's sounds, and a
threshold just above its loudest false alarm is one new sound away from the next. Everything here but ``scan_windows`` is pure (window scores in, numbers out).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..detection.detector import Detector
from ..detection.events import Event, EventTracker, TrackerSettings, WindowScore

THRESHOLDS = 200


@dataclass(frozen=True)
class OperatingPoint:
    """What the detector does at one threshold."""

    threshold: float
    false_alarms: int
    hours: float
    found: int  # bark clips with at least one event
    barks: int  # bark clips scanned (0: no barks given)

    @property
    def false_alarms_per_hour(self) -> float:
        return self.false_alarms / self.hours if self.hours > 0 else math.nan

    @property
    def recall(self) -> float:
        return self.found / self.barks if self.barks else math.nan

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "false_alarms": self.false_alarms,
                "false_alarms_per_hour": self.false_alarms_per_hour,
                "recall": None if math.isnan(self.recall) else self.recall, "found": self.found,
                "barks": self.barks}


def events_at(windows: Sequence[WindowScore], settings: TrackerSettings) -> list[Event]:
    """The events ``barkwatch detect`` reports for these windows (one stream) with these settings."""
    ids = itertools.count()
    tracker = EventTracker(settings, new_id=lambda: str(next(ids)))
    events: list[Event] = []
    for w in windows:
        events += [e for kind, e in tracker.update(w) if kind == "end"]
    return events + [e for kind, e in tracker.flush() if kind == "end"]


def candidate_thresholds(scores: Sequence[float], count: int = THRESHOLDS) -> list[float]:
    """About ``count`` thresholds, dense where they matter: the operating points of a few false alarms an hour
    lie in the top fraction of a percent of windows, so the quantile levels are 1 - 10^-x for x evenly spaced
    from 0 to log10(windows) (each step leaves about the same fraction fewer windows above it). Every threshold
    is a score that occurs, plus one just above the top score (no events at all) when that is below 1."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    if len(scores) == 0:
        return []
    levels = 1.0 - np.logspace(0.0, -math.log10(max(len(scores), 2)), count)
    values = set(np.quantile(scores, levels, method="lower").tolist()) | {float(scores[-1])}
    if scores[-1] < 1.0:
        values.add(float(np.nextafter(scores[-1], np.inf)))
    return sorted(v for v in values if 0.0 <= v <= 1.0)


def sweep(background: Sequence[Sequence[WindowScore]], hours: float, barks: Sequence[Sequence[WindowScore]],
          settings: TrackerSettings, thresholds: Sequence[float] | None = None) -> list[OperatingPoint]:
    """Every candidate threshold's false alarms on the ``background`` streams and bark clips found among
    ``barks`` (each a stream of its own), in ascending order of threshold. Other tracker settings come from
    ``settings``."""
    if thresholds is None:
        pooled = [w.score for stream in itertools.chain(background, barks) for w in stream]
        thresholds = candidate_thresholds(pooled)
    points = []
    for t in sorted(thresholds):
        at = replace(settings, threshold=float(t))
        false_alarms = sum(len(events_at(stream, at)) for stream in background)
        found = sum(bool(events_at(stream, at)) for stream in barks)
        points.append(OperatingPoint(float(t), false_alarms, hours, found, len(barks)))
    return points


def choose(points: Sequence[OperatingPoint], budget_per_hour: float) -> OperatingPoint | None:
    """The lowest threshold from which every higher one keeps false alarms within the budget; None when even
    the highest candidate does not."""
    chosen = None
    for p in sorted(points, key=lambda p: p.threshold, reverse=True):
        if p.false_alarms_per_hour > budget_per_hour:
            break
        chosen = p
    return chosen


def centre(points: Sequence[OperatingPoint], safe: OperatingPoint) -> float:
    """With bark clips, the threshold halfway in log-odds between ``safe`` (``choose``'s answer) and the highest
    threshold above it that still finds as many of the clips: as far above the home's own sounds as the dog's
    barks allow, so that sounds a little more bark-like than those of the background recordings (next week's
    television) do not become false alarms at once. Without bark clips, or when none is found, ``safe``'s."""
    if not safe.barks or not safe.found:
        return safe.threshold
    top = safe.threshold
    for p in sorted((p for p in points if p.threshold > safe.threshold), key=lambda p: p.threshold):
        if p.found < safe.found:
            break
        top = p.threshold
    lo, hi = (min(max(t, 1e-6), 1 - 1e-6) for t in (safe.threshold, top))
    middle = (math.log(lo / (1 - lo)) + math.log(hi / (1 - hi))) / 2
    return 1 / (1 + math.exp(-middle))


def scan_windows(paths: Sequence[Path], detector: Detector,
                 progress: bool = False) -> tuple[list[list[WindowScore]], float, list[str]]:
    """Every window of every file, scored as ``barkwatch detect`` scores it. Returns the windows per file,
    the seconds of audio read, and one error line per file that could not be read (its windows up to the
    failure are kept)."""
    from ..detection.scan import scan_file

    streams: list[list[WindowScore]] = []
    seconds = 0.0
    errors: list[str] = []
    for path in paths:
        windows: list[WindowScore] = []
        result = scan_file(path, detector, on_record=lambda record: None, on_window=windows.append,
                           progress=progress)
        if result.error:
            errors.append(result.error)
        streams.append(windows)
        seconds += min(result.duration_s, windows[-1].end_s if windows else 0.0) if result.error else result.duration_s
    return streams, seconds, errors


def format_table(points: Sequence[OperatingPoint], chosen: OperatingPoint | None, rows: int = 12) -> str:
    """A short table: the chosen point and thresholds around it, spread over the range of false-alarm rates."""
    if not points:
        return ""
    ordered = sorted(points, key=lambda p: p.threshold)
    picks = set(np.linspace(0, len(ordered) - 1, min(rows, len(ordered))).round().astype(int).tolist())
    if chosen is not None:
        i = ordered.index(chosen)
        picks |= {j for j in (i - 1, i, i + 1) if 0 <= j < len(ordered)}
    with_barks = ordered[0].barks > 0
    lines = ["  threshold  false alarms/h" + ("  recall" if with_barks else "")]
    for j in sorted(picks):
        p = ordered[j]
        mark = "  <- chosen" if p is chosen else ""
        recall = f"  {p.recall:6.2f}" if with_barks else ""
        lines.append(f"  {p.threshold:9.4f}  {p.false_alarms_per_hour:14.2f}{recall}{mark}")
    return "\n".join(lines)


def plot_sweep(points: Sequence[OperatingPoint], chosen: OperatingPoint | None, budget: float, out: Path,
               title: str) -> Path:
    """False alarms per hour (log scale) and, with barks, recall against the threshold, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(points, key=lambda p: p.threshold)
    t = [p.threshold for p in ordered]
    rate = [max(p.false_alarms_per_hour, 1e-2) for p in ordered]  # 0 drawn at the axis floor
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.step(t, rate, where="post", color="tab:red", label="false alarms per hour (background)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-2)
    # The decisions happen among the top scores (0.9, 0.99, 0.999...): a logit axis spreads them out.
    ax.set_xscale("logit", nonpositive="clip")
    ax.set_xlabel("threshold (score, logit scale)")
    ax.set_ylabel("false alarms per hour", color="tab:red")
    ax.axhline(budget, color="tab:red", linestyle=":", linewidth=1, label=f"budget {budget:g}/h")
    handles = ax.get_legend_handles_labels()
    if ordered and ordered[0].barks:
        ax2 = ax.twinx()
        ax2.step(t, [p.recall for p in ordered], where="post", color="tab:blue", label="recall (bark clips)")
        ax2.set_ylim(0, 1.02)
        ax2.set_ylabel("recall", color="tab:blue")
        extra = ax2.get_legend_handles_labels()
        handles = (handles[0] + extra[0], handles[1] + extra[1])
    if chosen is not None:
        ax.axvline(chosen.threshold, color="black", linewidth=1)
        handles[0].append(ax.lines[-1])
        handles[1].append(f"chosen {chosen.threshold:.4f}")
    ax.legend(*handles, loc="lower left", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
