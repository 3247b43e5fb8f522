"""The activity report: when and how long the dog barked, from the event log.

``summarise`` turns ``bark`` records into numbers (pure: records in, an ``Activity`` out): barks and barking
time per day and per hour of the day, an hour-by-date grid of barking minutes, and episodes (barks less than
``gap_s`` apart, grouped: what a neighbour means by "it barked for an hour"). ``write_activity_report`` draws the plots
and one self-contained HTML page (the images are inside it) with links to the clips. Hours are local wall-clock
hours: a bark that runs over the hour counts in both, by its seconds in each.
"""

from __future__ import annotations

import base64
import html
import math
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np


@dataclass(frozen=True)
class Bark:
    """One finished bark event, as logged."""

    start: datetime  # local, timezone-aware
    end: datetime
    peak_score: float
    source: str
    clip: str | None

    @property
    def duration_s(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)


@dataclass(frozen=True)
class Episode:
    """Barks less than the gap apart: from the first one's start to the last one's end."""

    barks: tuple[Bark, ...]

    @property
    def start(self) -> datetime:
        return self.barks[0].start

    @property
    def end(self) -> datetime:
        return max(b.end for b in self.barks)

    @property
    def span_s(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def barking_s(self) -> float:
        return sum(b.duration_s for b in self.barks)


@dataclass
class Activity:
    """Everything the report shows for the days ``days[0]`` to ``days[-1]``."""

    days: list[date]
    barks: list[Bark]
    episodes: list[Episode]
    seconds: np.ndarray  # [day, hour]: seconds of barking in each local hour
    counts: np.ndarray  # [day, hour]: barks starting in each local hour
    gap_s: float
    skipped: int = 0  # records without a usable start or end
    sources: set[str] = field(default_factory=set)

    @property
    def total_s(self) -> float:
        return float(self.seconds.sum())


def barks_from(records: Iterable[dict]) -> tuple[list[Bark], int]:
    """The ``bark`` records as Barks in time order (``bark_start`` records are skipped: the ``bark`` record of
    the same event has its full length), and how many ``bark`` records could not be read."""
    barks, bad = [], 0
    for r in records:
        if r.get("event") != "bark":
            continue
        try:
            start = datetime.fromisoformat(r["start"]).astimezone()
            end = datetime.fromisoformat(r["end"]).astimezone()
            peak = float(r.get("peak_score") or math.nan)
        except (KeyError, TypeError, ValueError):
            bad += 1
            continue
        barks.append(Bark(start, end, peak, str(r.get("source", "")), r.get("clip")))
    return sorted(barks, key=lambda b: b.start), bad


def episodes_of(barks: Sequence[Bark], gap_s: float) -> list[Episode]:
    """Group barks (in time order) whose start is within ``gap_s`` of the previous one's end."""
    groups: list[list[Bark]] = []
    for b in barks:
        if groups and (b.start - max(x.end for x in groups[-1])).total_seconds() <= gap_s:
            groups[-1].append(b)
        else:
            groups.append([b])
    return [Episode(tuple(g)) for g in groups]


def hour_pieces(start: datetime, end: datetime) -> list[tuple[date, int, float]]:
    """``[start, end)`` cut at local hour boundaries: (local date, hour, seconds) for each piece."""
    pieces = []
    t = start
    while t < end:
        local = t.astimezone()
        boundary = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        stop = min(boundary, end)
        pieces.append((local.date(), local.hour, (stop - t).total_seconds()))
        t = stop
    return pieces


def summarise(records: Iterable[dict], first_day: date | None = None, last_day: date | None = None,
              gap_s: float = 60.0) -> Activity:
    """The activity in the records, on the local days ``first_day``..``last_day`` (default: those of the first
    and last bark; today when there are none)."""
    barks, skipped = barks_from(records)
    first_day = first_day or (barks[0].start.date() if barks else datetime.now().astimezone().date())
    last_day = last_day or (max(b.end for b in barks).astimezone().date() if barks else first_day)
    days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    row = {d: i for i, d in enumerate(days)}
    seconds = np.zeros((len(days), 24))
    counts = np.zeros((len(days), 24), dtype=int)
    for b in barks:
        local = b.start.astimezone()
        if local.date() in row:
            counts[row[local.date()], local.hour] += 1
        for day, hour, s in hour_pieces(b.start, b.end):
            if day in row:
                seconds[row[day], hour] += s
    return Activity(days, barks, episodes_of(barks, gap_s), seconds, counts, gap_s, skipped,
                    {b.source for b in barks})


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s" if m else f"{s} s"


def summary_lines(activity: Activity, longest: int = 5) -> list[str]:
    """The report in a few lines of text, for the terminal."""
    a = activity
    period = f"{a.days[0]} to {a.days[-1]}" if len(a.days) > 1 else f"{a.days[0]}"
    lines = [f"{period}: {len(a.barks)} bark(s), {_duration(a.total_s)} of barking, "
             f"{len(a.episodes)} episode(s) (barks under {a.gap_s:g} s apart grouped)"]
    if a.barks:
        per_day = a.seconds.sum(axis=1)
        busiest = int(np.argmax(per_day))
        hour = int(np.argmax(a.seconds.sum(axis=0)))
        lines.append(f"busiest day {a.days[busiest]} ({_duration(per_day[busiest])}); busiest hour of the day "
                     f"{hour:02d}:00-{(hour + 1) % 24:02d}:00 ({_duration(a.seconds[:, hour].sum())} over the period)")
        lines.append("longest episodes:")
        for e in sorted(a.episodes, key=lambda e: -e.span_s)[:longest]:
            lines.append(f"  {e.start:%Y-%m-%d %H:%M:%S}  {_duration(e.span_s):>12}  {len(e.barks):3d} bark(s), "
                         f"{_duration(e.barking_s)} barking")
    if a.skipped:
        lines.append(f"{a.skipped} bark record(s) without a readable start or end were left out")
    return lines


# -- plots and the page -----------------------------------------------------------------------------------------


def plot_days(activity: Activity, out: Path) -> Path:
    """Barks and barking minutes per day, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = activity
    x = np.arange(len(a.days))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(a.days) + 2), 3.6))
    minutes = a.seconds.sum(axis=1) / 60.0
    bars = ax.bar(x, minutes, color="tab:orange")
    ax.bar_label(bars, labels=[f"{n} bark{'s' if n != 1 else ''}" if n else "" for n in a.counts.sum(axis=1)],
                 fontsize=7, padding=2)
    ax.set_ylabel("minutes of barking")
    ax.set_ylim(0, max(float(minutes.max()), 0.5) * 1.15)
    ax.set_xticks(x, [f"{d:%a %d %b}" for d in a.days], rotation=45, ha="right", fontsize=8)
    ax.set_title("Per day")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_heatmap(activity: Activity, out: Path) -> Path:
    """Minutes of barking in each hour of each day (rows: dates, columns: hour of the day), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = activity
    minutes = a.seconds / 60.0
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.32 * len(a.days) + 1.4)))
    image = ax.imshow(minutes, aspect="auto", cmap="YlOrRd", vmin=0, vmax=max(float(minutes.max()), 1.0),
                      interpolation="nearest")
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    ax.set_yticks(range(len(a.days)), [f"{d:%a %d %b}" for d in a.days], fontsize=8)
    ax.set_xlabel("hour of the day")
    fig.colorbar(image, ax=ax, label="minutes of barking")
    if len(a.days) <= 31:  # the number of barks in each hour, where there is room to read it
        for (row, hour), n in np.ndenumerate(a.counts):
            if n:
                ax.text(hour, row, str(n), ha="center", va="center", fontsize=7)
    ax.set_title("When: minutes of barking (colour) and barks (number) by hour and date")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _clip_link(clip: str | None, out_dir: Path) -> str:
    if not clip:
        return ""
    path = Path(clip)
    href = os.path.relpath(path.resolve(), out_dir.resolve()) if path.is_absolute() or path.exists() else clip
    name = html.escape(path.name)
    return f'<a href="{html.escape(Path(href).as_posix())}">{name}</a>' if path.exists() else f"{name} (gone)"


def write_activity_report(activity: Activity, out_dir: Path, title: str = "barkwatch: barking report",
                 longest: int = 10, latest: int = 50) -> Path:
    """``out_dir/index.html`` (images inside it, so the one file can be mailed), ``days.png`` and
    ``hours.png``. Returns the page's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    a = activity
    days_png = plot_days(a, out_dir / "days.png")
    hours_png = plot_heatmap(a, out_dir / "hours.png")
    esc = html.escape

    def bark_row(b: Bark) -> str:
        return (f"<tr><td>{b.start:%Y-%m-%d %H:%M:%S}</td><td class=n>{b.duration_s:.1f} s</td>"
                f"<td class=n>{b.peak_score:.2f}</td><td>{_clip_link(b.clip, out_dir)}</td></tr>")

    episode_rows = "\n".join(
        f"<tr><td>{e.start:%Y-%m-%d %H:%M:%S}</td><td class=n>{esc(_duration(e.span_s))}</td>"
        f"<td class=n>{len(e.barks)}</td><td class=n>{esc(_duration(e.barking_s))}</td>"
        f"<td>{_clip_link(e.barks[0].clip, out_dir)}</td></tr>"
        for e in sorted(a.episodes, key=lambda e: -e.span_s)[:longest])
    day_rows = "\n".join(
        f"<tr><td>{d:%a %Y-%m-%d}</td><td class=n>{int(a.counts[i].sum())}</td>"
        f"<td class=n>{esc(_duration(a.seconds[i].sum()))}</td></tr>" for i, d in enumerate(a.days))
    latest_rows = "\n".join(bark_row(b) for b in a.barks[-latest:][::-1])
    summary = "".join(f"<p>{esc(line)}</p>" for line in summary_lines(a, longest=0)[:2])
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{esc(title)}</h1>
{summary}
<p>Made {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} from {len(a.sources)} source(s).
Times are local. An episode is barks less than {a.gap_s:g} s apart.</p>
<h2>When</h2>
<img alt="minutes of barking by hour and date" src="{_data_uri(hours_png)}">
<h2>Per day</h2>
<img alt="barks and minutes of barking per day" src="{_data_uri(days_png)}">
<table><tr><th>day</th><th>barks</th><th>barking</th></tr>
{day_rows}
</table>
<h2>Longest episodes</h2>
<table><tr><th>began</th><th>lasted</th><th>barks</th><th>barking</th><th>first clip</th></tr>
{episode_rows}
</table>
<h2>Latest barks</h2>
<table><tr><th>began</th><th>length</th><th>peak score</th><th>clip</th></tr>
{latest_rows}
</table>
</body></html>
"""
    page_path = out_dir / "index.html"
    page_path.write_text(page, encoding="utf-8")
    return page_path
