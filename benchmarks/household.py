"""The household benchmark: barks from held-out recordings in a long mix of held-out everyday sounds, run
through the detector exactly as ``barkwatch detect`` runs, and judged as a user would judge it: how many
barks it reports, how many false alarms an hour, and how late.

    python benchmarks/household.py holdout --data DIR --out FILE [--fraction 0.2] [--seed 0] [--exclude FILE]
                                           [--rest]
    python benchmarks/household.py build --data DIR --holdout FILE --out DIR [--minutes 90] [--seed 0]
                                         [--barks-per-hour 60]
    python benchmarks/household.py calibrate --model M --result VAL.json [--budget 1] --out M2
    python benchmarks/household.py evaluate (--model M | --baseline loudness) --mix DIR [--hold H]
                                            [--holdout FILE --data DIR] [--out FILE.json] [--match start]
                                            [--compute auto] [--threads N]

``holdout`` picks recordings to keep out of training. A recording is the pair (dataset, source_id), written
``dataset/source_id``. For each (label, category) group of the manifest its recordings are ranked by
sha256("SEED/dataset/source_id") and the first round(fraction x n) are held out (halves round up), at least
one when the group has 3 or more recordings, none otherwise. ESC-50 and UrbanSound8K both cut their clips
from Freesound and use the Freesound id as source_id, so the same id in both is the same recording: when one
is held out its twin is too, or the same dog would be on both sides. ``--exclude FILE`` leaves the
recordings of an earlier holdout out of the draw: a validation split for choices, beside the test holdout.
``--rest`` names every recording the ``--exclude`` files leave instead, the training part: a mix built from it
asks whether a model separates even the recordings it was trained on.

``build`` writes ``household.wav`` (22,050 Hz mono, 16-bit, written block by block) and ``truth.json``:
- a room-noise floor under everything: pink noise (J. O. Smith's 3-pole pinking filter) at -60 dBFS RMS;
- held-out ``other`` clips end to end in random order (a fresh shuffle each time the list runs out), each at
  a level drawn uniformly from -40..-20 dBFS, measured over its active frames (below), lowered where needed
  so its peak stays below -6 dBFS, with 10 ms fades;
- ``barks-per-hour`` held-out ``dog`` clips (a shuffled cycle, so all are used before any repeats) at uniform
  random times, whole clips never closer than 5 s to each other nor 1 s to either end. A bark's level: its
  loudest 23 ms frame sits r dB above the background (clips plus floor, RMS over the bark's active part),
  r uniform in -5..+25 dB; never below -45 dBFS (a bark over a silent stretch would otherwise sit under the
  detector's -60 dBFS gate, which is no test of the model), and lowered where needed so no sample of the bark
  plus what is under it exceeds -1 dBFS (nothing clips). Each bark's drawn and achieved ratios are in the
  truth; over loud backgrounds the achieved one can be lower.
- A clip's active part runs from the first to the last 23 ms frame (512 samples, hop 256) whose energy is
  within 20 dB of the clip's loudest frame: the bark, not the silence ESC-50 pads its clips with. The truth's
  ``onset_s`` and ``offset_s`` are that part's place in the mix.
The same data, holdout file and seed give the same mix, sample for sample, and the barks do not change the
background: ``--barks-per-hour 0`` with the same seed gives the same mix without them.

``calibrate`` writes a copy of a model whose threshold is the one that found the most barks at no more than
``--budget`` false alarms an hour (default 1, half the target's 2, as a margin for new homes) in an earlier
``evaluate --out`` of that model (and the hold threshold that evaluation used), which must be on a
validation mix (``holdout --exclude`` makes its split): choosing the threshold on the test mix would make the
test figures meaningless.

``evaluate`` scores every window of the mix with ``barkwatch.detection.engine.Engine`` (the model's hop, gate
-60 dBFS, 1 s blocks: what ``barkwatch detect`` does) and replays the scores through ``EventTracker`` (its
default patience, release and merge; the hold threshold ``--hold``, else the model's own, else none) at each
of about 200 thresholds; a hold above a threshold is that threshold. For one threshold:
- an event belongs to a bark when it starts in the bark's zone: after onset_s minus one window length and
  before offset_s (``--match start``, the default). Its first window then holds some of the bark, so the
  bark is what set it off. Events are taken in time order, and each finds the earliest of its barks that no
  earlier event found: one event finds at most one bark;
- recall = barks found / barks;
- a false alarm is an event that belongs to no bark, even if it runs on into one; false alarms per hour =
  false alarms / hours of audio; each is put down to the category of the background segment playing where
  the event starts. An event belonging only to barks already found (a bark split in two) is neither;
- delay = the finding event's ``detected_s`` (when ``bark_start`` would be written) minus the bark's onset.
``--match overlap`` is the looser rule: an event belongs to every bark it overlaps (event start < offset_s
and event end > onset_s). It rewards detectors that stay on: on the 90-minute mix the loudness baseline's
best point at <= 2 false alarms an hour was 29 events of minutes each, which "found" 26 barks a median 28 s
before they began. Delays can be negative under it; ``found_early`` counts them.
Reported: the best recall with at most 2 and at most 0.5 false alarms per hour (ties: fewer false alarms,
then the higher threshold), each with its threshold, delays (median and 95th percentile) and false alarms by
category; the same at the model's own threshold. With ``--holdout`` and ``--data``, also the clip ROC AUC of
the held-out clips (each clip through the Engine with the gate off, scored by its highest window) and the
balanced accuracy at the model's threshold. ``--baseline loudness`` replaces the model by the window's level:
score = (level_dbfs + 100) / 100 clipped to [0, 1], on 1 s windows every 0.25 s.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import hashlib
import json
import math
import os
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's barkwatch, installed or not

from barkwatch.detection.detector import model_hold_threshold  # noqa: E402
from barkwatch.detection.events import Event, TrackerSettings, WindowScore  # noqa: E402

SAMPLE_RATE = 22050
FREESOUND = ("ESC-50", "UrbanSound8K")  # both use the Freesound sound id as source_id
MIX_NAME, TRUTH_NAME = "household.wav", "truth.json"
TRUTH_FORMAT = 1

# How the mix is made (written into truth.json, so a figure can always be traced to its recipe).
FRAME, FRAME_HOP = 512, 256  # 23 ms frames for finding a clip's active part
ACTIVE_DB = 20.0  # a frame is active within this many dB of the clip's loudest frame
FLOOR_DBFS = -60.0
BACKGROUND_DBFS = (-40.0, -20.0)  # leaves room for barks 25 dB above the loudest
RATIO_DB = (-5.0, 25.0)
MIN_BARK_DBFS = -45.0
BACKGROUND_PEAK_DBFS = -6.0  # headroom, so a bark over any background can still be loud
PEAK_DBFS = -1.0
MIN_GAP_S = 5.0
MARGIN_S = 1.0
FADE_S = 0.01
BLOCK_S = 10.0

GATE_DBFS = -60.0  # barkwatch detect's default
THRESHOLDS = 200


class BenchError(Exception):
    """A problem the user can fix: the message names the file and says what to do."""


# --- The manifest and the held-out recordings --------------------------------------------------------------

@dataclass(frozen=True)
class Clip:
    file: str  # relative to the data folder
    label: str  # "dog" or "other"
    category: str
    source: str  # "dataset/source_id": the recording it was cut from
    # UrbanSound8K's mark: "foreground" (the sound is the main thing heard) or "background" (a dog far down
    # the street); clips without one (ESC-50's close recordings) count as foreground.
    salience: str = "foreground"


def read_manifest(data: Path) -> list[Clip]:
    """The clips listed in ``data/manifest.jsonl``."""
    path = data / "manifest.jsonl"
    if not path.is_file():
        raise BenchError(f"{path}: no such file; point --data at a folder with a manifest.jsonl")
    clips = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            e = json.loads(line)
            clips.append(Clip(str(e["file"]), str(e["label"]), str(e["category"]),
                              f"{e['dataset']}/{e['source_id']}", str(e.get("salience") or "foreground")))
        except (ValueError, KeyError, TypeError) as err:
            raise BenchError(f"{path}:{number}: not a JSON object with file, label, category, dataset and "
                             f"source_id ({err}); fix that line") from err
    if not clips:
        raise BenchError(f"{path}: lists no clips; point --data at a folder whose manifest lists clips")
    return clips


def rank_key(seed: int, source: str) -> str:
    return hashlib.sha256(f"{seed}/{source}".encode()).hexdigest()


def choose_holdout(clips: Sequence[Clip], fraction: float, seed: int) -> tuple[set[str], int]:
    """The held-out recordings and how many of them are Freesound twins added to a chosen recording."""
    groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    for c in clips:
        groups[(c.label, c.category)].add(c.source)
    held: set[str] = set()
    for key in sorted(groups):
        ranked = sorted(groups[key], key=lambda s: rank_key(seed, s))
        n = len(ranked)
        # floor(x + 0.5) rather than round(): Python's round() sends 2.5 to 2 and 3.5 to 4.
        count = min(n, max(1, math.floor(fraction * n + 0.5))) if n >= 3 else 0
        held.update(ranked[:count])
    everything = {c.source for c in clips}
    twins = {f"{other}/{s.split('/', 1)[1]}" for s in held if s.split("/", 1)[0] in FREESOUND
             for other in FREESOUND}
    twins = (twins & everything) - held
    return held | twins, len(twins)


def write_holdout(path: Path, held: set[str], header: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {header}\n" + "".join(f"{s}\n" for s in sorted(held)), encoding="utf-8")


def read_holdout(path: Path) -> set[str]:
    """The ``dataset/source_id`` lines of a holdout file (``#`` lines are comments)."""
    if not path.is_file():
        raise BenchError(f"{path}: no such file; make it with `python benchmarks/household.py holdout`")
    held = {line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")}
    if not held:
        raise BenchError(f"{path}: names no recordings; make it with `python benchmarks/household.py holdout`")
    return held


def held_out_clips(data: Path, holdout: Path) -> list[Clip]:
    """The manifest's clips from held-out recordings; every recording the file names must be in the manifest."""
    clips = read_manifest(data)
    held = read_holdout(holdout)
    missing = sorted(held - {c.source for c in clips})
    if missing:
        raise BenchError(f"{holdout}: {len(missing)} recording(s) not in {data / 'manifest.jsonl'} (e.g. "
                         f"{missing[0]}); give the --data folder the holdout was made from")
    return [c for c in clips if c.source in held]


# --- Clips: reading and finding the active part ------------------------------------------------------------

@dataclass(frozen=True)
class ClipStats:
    samples: int
    first: int  # first sample of the active part
    last: int  # one past its last sample
    active_rms: float  # RMS over the active frames
    peak_frame_rms: float  # RMS of the loudest frame
    peak: float  # largest absolute sample


def clip_stats(audio: np.ndarray) -> ClipStats | None:
    """Where the clip's sound is (see the module docstring); None for a clip of digital silence."""
    frames = max(1, math.ceil((len(audio) - FRAME) / FRAME_HOP) + 1)
    padded = np.zeros((frames - 1) * FRAME_HOP + FRAME)
    padded[: len(audio)] = audio
    power = np.lib.stride_tricks.sliding_window_view(padded, FRAME)[::FRAME_HOP].astype(np.float64)
    power = np.mean(np.square(power), axis=1)
    loudest = float(power.max())
    if loudest <= 0.0:
        return None
    active = np.flatnonzero(power >= loudest * 10.0 ** (-ACTIVE_DB / 10.0))
    return ClipStats(samples=len(audio), first=int(active[0]) * FRAME_HOP,
                     last=min(len(audio), int(active[-1]) * FRAME_HOP + FRAME),
                     active_rms=math.sqrt(float(power[active].mean())), peak_frame_rms=math.sqrt(loudest),
                     peak=float(np.abs(audio).max()))


def clip_loader(data: Path) -> Callable[[str], np.ndarray]:
    """Reads a clip as float32 mono at 22,050 Hz with 10 ms fades at both ends (no clicks where a clip starts
    mid-sound); keeps the last 64 clips, so memory stays small however long the mix."""
    from barkwatch.detection.audio import AudioError, load_audio

    fade = int(FADE_S * SAMPLE_RATE)

    @lru_cache(maxsize=64)
    def load(file: str) -> np.ndarray:
        try:
            audio = load_audio(data / file, SAMPLE_RATE)
        except AudioError as e:
            raise BenchError(f"{e}; fix the file or remove it from the manifest") from e
        n = min(fade, len(audio) // 2)
        ramp = np.linspace(0.0, 1.0, n + 2, dtype=np.float32)[1:-1]
        audio = audio.copy()
        audio[:n] *= ramp
        audio[len(audio) - n:] *= ramp[::-1]
        audio.setflags(write=False)
        return audio

    return load


# --- Building the mix --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Placed:
    """A clip placed in the mix: samples ``[start, start + length)`` of the mix get ``gain`` times the clip."""

    clip: Clip
    start: int
    length: int
    gain: float

    @property
    def end(self) -> int:
        return self.start + self.length


def add_placed(out: np.ndarray, at: int, placed: Sequence[Placed], load: Callable[[str], np.ndarray]) -> None:
    """Add to ``out`` (mix samples ``[at, at + len(out))``) every placed clip overlapping it; ``placed`` must
    be sorted and non-overlapping, so both its starts and its ends are sorted."""
    end = at + len(out)
    lo = bisect.bisect_right([p.end for p in placed], at)
    hi = bisect.bisect_left([p.start for p in placed], end, lo=lo)
    for p in placed[lo:hi]:
        a, b = max(at, p.start), min(end, p.end)
        out[a - at : b - at] += p.gain * load(p.clip.file)[a - p.start : b - p.start]


class RoomNoise:
    """Pink noise at ``dbfs`` RMS, made block after block with the filter's state carried over: one seamless
    noise floor of any length."""

    B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)  # J. O. Smith, "Spectral Audio Signal
    A = (1.0, -2.494956002, 2.017265875, -0.522189400)  # Processing": 1/f within about 0.3 dB

    def __init__(self, rng: np.random.Generator, dbfs: float = FLOOR_DBFS):
        from scipy.signal import lfilter

        self._lfilter = lfilter
        self._rng = rng
        impulse = np.zeros(1 << 16)
        impulse[0] = 1.0
        unit_rms = math.sqrt(float(np.sum(np.square(lfilter(self.B, self.A, impulse)))))
        self._scale = 10.0 ** (dbfs / 20.0) / unit_rms
        self._state = np.zeros(len(self.A) - 1)
        self.next(SAMPLE_RATE)  # settle the filter, so the floor starts at its full level

    def next(self, n: int) -> np.ndarray:
        out, self._state = self._lfilter(self.B, self.A, self._rng.standard_normal(n), zi=self._state)
        return out * self._scale


@dataclass
class MixPlan:
    backgrounds: list[Placed]
    barks: list[Placed]
    bark_info: list[dict] = field(default_factory=list)  # per bark: active part and levels, for the truth


def _db(power: float) -> float:
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def _limited_gain(gain: float, bark: np.ndarray, under: np.ndarray, limit: float, floor: float = 0.01) -> float:
    """``gain``, or the largest gain below it at which the bark plus what is under it stays within ``limit``
    (less ``floor`` for the noise floor's peaks). The peak is convex in the gain, so bisection finds it; some
    gain always fits, as backgrounds peak below -6 dBFS."""
    def peak(g: float) -> float:
        return float(np.abs(g * bark + under).max())

    limit -= floor
    if peak(gain) <= limit:
        return gain
    lo, hi = 0.0, gain
    for _ in range(40):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if peak(mid) <= limit else (lo, mid)
    return lo


def plan_mix(clips: Sequence[Clip], stats: dict[str, ClipStats], load: Callable[[str], np.ndarray],
             total: int, barks: int, rng: np.random.Generator) -> MixPlan:
    """Where every clip goes and at what gain (see the module docstring for the rules)."""
    others = [c for c in clips if c.label != "dog"]
    dogs = [c for c in clips if c.label == "dog"]
    peak_limit = 10.0 ** (PEAK_DBFS / 20.0)

    backgrounds: list[Placed] = []
    t = 0
    while t < total:
        for i in rng.permutation(len(others)):
            s = stats[others[i].file]
            gain = min(10.0 ** (rng.uniform(*BACKGROUND_DBFS) / 20.0) / s.active_rms,
                       10.0 ** (BACKGROUND_PEAK_DBFS / 20.0) / s.peak)
            length = min(s.samples, total - t)
            backgrounds.append(Placed(others[i], t, length, gain))
            t += length
            if t >= total:
                break

    chosen: list[Clip] = []
    while len(chosen) < barks:
        chosen += [dogs[i] for i in rng.permutation(len(dogs))]
    chosen = chosen[:barks]
    lengths = [stats[c.file].samples for c in chosen]
    gap, margin = round(MIN_GAP_S * SAMPLE_RATE), round(MARGIN_S * SAMPLE_RATE)
    slack = total - sum(lengths) - gap * max(0, barks - 1) - 2 * margin
    if slack < 0:
        raise BenchError(f"{barks} barks of {sum(lengths) / SAMPLE_RATE:.0f} s with {MIN_GAP_S:g} s between them "
                         f"do not fit in {total / SAMPLE_RATE:.0f} s; raise --minutes or lower --barks-per-hour")
    # Uniform random placement under a minimum gap: the spare time is cut at sorted uniform points.
    spare = np.sort(rng.uniform(0.0, slack, barks)).astype(np.int64)
    ratios = rng.uniform(*RATIO_DB, barks)
    plan = MixPlan(backgrounds, [])
    used = 0
    floor_power = 10.0 ** (FLOOR_DBFS / 10.0)
    for clip, length, extra, ratio in zip(chosen, lengths, spare, ratios):
        start = margin + int(extra) + used
        used += length + gap
        s = stats[clip.file]
        under = np.zeros(length)
        add_placed(under, start, backgrounds, load)
        background_db = _db(float(np.mean(np.square(under[s.first : s.last]))) + floor_power)
        peak_db = max(background_db + ratio, MIN_BARK_DBFS)
        gain = _limited_gain(10.0 ** (peak_db / 20.0) / s.peak_frame_rms, load(clip.file), under, peak_limit)
        plan.barks.append(Placed(clip, start, length, gain))
        achieved = 20.0 * math.log10(gain * s.peak_frame_rms)
        plan.bark_info.append({
            "file": clip.file, "category": clip.category, "source": clip.source,
            "start_s": round(start / SAMPLE_RATE, 5), "end_s": round((start + length) / SAMPLE_RATE, 5),
            "onset_s": round((start + s.first) / SAMPLE_RATE, 5), "offset_s": round((start + s.last) / SAMPLE_RATE, 5),
            "peak_dbfs": round(achieved, 2), "background_dbfs": round(background_db, 2),
            "ratio_db": round(achieved - background_db, 2), "drawn_ratio_db": round(float(ratio), 2),
            "gain_db": round(20.0 * math.log10(gain), 2),
        })
    return plan


def build_mix(data: Path, holdout: Path, out: Path, minutes: float, seed: int, barks_per_hour: float,
              progress: bool = False) -> dict:
    """Write ``household.wav`` and ``truth.json`` to ``out``; returns the truth."""
    import soundfile as sf
    from tqdm import tqdm

    if not minutes > 0:
        raise BenchError(f"--minutes {minutes}: must be more than 0")
    if not barks_per_hour >= 0:
        raise BenchError(f"--barks-per-hour {barks_per_hour}: must be 0 or more")
    clips = held_out_clips(data, holdout)
    load = clip_loader(data)
    stats: dict[str, ClipStats] = {}
    for c in clips:
        s = clip_stats(load(c.file))
        if s is not None:  # digital silence has no level to set
            stats[c.file] = s
    clips = [c for c in clips if c.file in stats]
    total = round(minutes * 60.0 * SAMPLE_RATE)
    barks = round(barks_per_hour * minutes / 60.0)
    if not any(c.label != "dog" for c in clips):
        raise BenchError(f"{holdout}: no held-out other clip with sound in {data}; hold out more recordings")
    if barks > 0 and not any(c.label == "dog" for c in clips):
        raise BenchError(f"{holdout}: no held-out dog clip with sound in {data}; hold out more recordings")

    rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    plan = plan_mix(clips, stats, load, total, barks, rng)
    noise = RoomNoise(noise_rng)

    out.mkdir(parents=True, exist_ok=True)
    wav, tmp = out / MIX_NAME, out / (MIX_NAME + ".tmp")
    clipped = 0
    block = round(BLOCK_S * SAMPLE_RATE)
    try:
        with sf.SoundFile(str(tmp), "w", SAMPLE_RATE, 1, "PCM_16", format="WAV") as f, \
                tqdm(total=round(total / SAMPLE_RATE), unit="s", desc="mixing", disable=None if progress else True,
                     dynamic_ncols=True) as bar:
            for at in range(0, total, block):
                mix = noise.next(min(block, total - at))
                add_placed(mix, at, plan.backgrounds, load)
                add_placed(mix, at, plan.barks, load)
                clipped += int(np.count_nonzero(np.abs(mix) > 1.0))
                f.write(np.clip(mix, -1.0, 1.0))
                bar.update(len(mix) / SAMPLE_RATE)
        os.replace(tmp, wav)
    except (OSError, sf.LibsndfileError) as e:
        tmp.unlink(missing_ok=True)
        raise BenchError(f"{wav}: cannot write the mix ({e}); check the --out folder") from e

    truth = {
        "format": TRUTH_FORMAT, "audio": MIX_NAME, "sample_rate": SAMPLE_RATE, "duration_s": total / SAMPLE_RATE,
        "seed": seed, "minutes": minutes, "barks_per_hour": barks_per_hour,
        "data": str(data), "holdout": str(holdout),
        "parameters": {
            "floor": f"pink noise at {FLOOR_DBFS:g} dBFS RMS", "background_dbfs": list(BACKGROUND_DBFS),
            "background_level": "RMS over the clip's active frames", "ratio_db": list(RATIO_DB),
            "ratio": "bark's loudest 23 ms frame over the RMS of background plus floor across its active part",
            "min_bark_dbfs": MIN_BARK_DBFS, "background_peak_dbfs": BACKGROUND_PEAK_DBFS, "peak_dbfs": PEAK_DBFS,
            "min_gap_s": MIN_GAP_S, "margin_s": MARGIN_S,
            "active_db": ACTIVE_DB, "frame": FRAME, "frame_hop": FRAME_HOP, "fade_s": FADE_S,
        },
        "clipped_samples": clipped,
        "barks": plan.bark_info,
        "backgrounds": [{"start_s": round(p.start / SAMPLE_RATE, 5), "end_s": round(p.end / SAMPLE_RATE, 5),
                         "category": p.clip.category, "file": p.clip.file, "source": p.clip.source,
                         "level_dbfs": round(20.0 * math.log10(p.gain * stats[p.clip.file].active_rms), 2)}
                        for p in plan.backgrounds],
    }
    (out / TRUTH_NAME).write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return truth


# --- Scoring events against the truth (pure: no audio, no torch) ------------------------------------------

@dataclass(frozen=True)
class Bark:
    onset_s: float
    offset_s: float
    salience: str = "foreground"


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    category: str


@dataclass(frozen=True)
class Point:
    """What the detector reports at one threshold."""

    threshold: float
    barks: int
    found: int
    events: int
    false_alarms: int
    hours: float
    delays_s: tuple[float, ...]  # one per found bark, in the order of the barks
    false_alarms_by_category: dict[str, int]
    barks_by_salience: dict[str, int] = field(default_factory=dict)
    found_by_salience: dict[str, int] = field(default_factory=dict)
    delays_by_salience: dict[str, tuple[float, ...]] = field(default_factory=dict)
    barking_s: float = 0.0  # seconds of true barking (the barks' onset-offset spans, overlaps once)
    event_s: float = 0.0  # seconds inside events
    overlap_s: float = 0.0  # seconds both

    def recall_of(self, salience: str) -> float:
        n = self.barks_by_salience.get(salience, 0)
        return self.found_by_salience.get(salience, 0) / n if n else math.nan

    @property
    def recall(self) -> float:
        return self.found / self.barks if self.barks else math.nan

    @property
    def false_alarms_per_hour(self) -> float:
        return self.false_alarms / self.hours

    def summary(self) -> dict:
        delays = np.asarray(self.delays_s)
        return {
            "threshold": self.threshold, "recall": self.recall, "found": self.found, "barks": self.barks,
            "recall_foreground": self.recall_of("foreground"), "recall_background": self.recall_of("background"),
            "barks_by_salience": dict(self.barks_by_salience), "found_by_salience": dict(self.found_by_salience),
            "found_early": sum(d < 0 for d in self.delays_s),
            "events": self.events, "false_alarms": self.false_alarms,
            "false_alarms_per_hour": self.false_alarms_per_hour,
            "delay_median_s": float(np.median(delays)) if len(delays) else None,
            "delay_p95_s": float(np.percentile(delays, 95)) if len(delays) else None,
            "false_alarms_by_category": dict(sorted(self.false_alarms_by_category.items(),
                                                    key=lambda kv: (-kv[1], kv[0]))),
            # How long the barking lasted, as the events tell it: the share of barking time inside events
            # and of event time that is barking (events run up to a window past each end of a bark).
            "time_recall": self.overlap_s / self.barking_s if self.barking_s else None,
            "time_precision": self.overlap_s / self.event_s if self.event_s else None,
        }


def events_at(windows: Sequence[WindowScore], threshold: float,
              settings: TrackerSettings = TrackerSettings(threshold=0.5)) -> list[Event]:
    """The events ``barkwatch detect`` would report at ``threshold`` (other tracker settings from ``settings``)."""
    from barkwatch.home.calibrate import events_at as replay

    return replay(windows, replace(settings, threshold=threshold))


def score_events(events: Sequence[Event], barks: Sequence[Bark], segments: Sequence[Segment], hours: float,
                 threshold: float, collar_s: float | None = None) -> Point:
    """Recall, false alarms and delays of ``events`` against the true ``barks`` (see the module docstring).

    Which barks an event can find: with ``collar_s``, those whose zone (onset - collar_s, offset) the event
    starts in (the ``start`` rule); without, every bark it overlaps (the ``overlap`` rule). An event that can
    find none is a false alarm. ``segments`` are the background's segments in time order, for naming where
    false alarms start."""
    barks = sorted(barks, key=lambda b: b.onset_s)
    onsets = np.array([b.onset_s for b in barks])
    offsets = np.array([b.offset_s for b in barks])
    starts = [s.start_s for s in segments]
    delays: list[float | None] = [None] * len(barks)
    false_by_category: Counter[str] = Counter()
    for e in sorted(events, key=lambda e: e.start_s):
        if collar_s is None:
            hits = np.flatnonzero((onsets < e.end_s) & (offsets > e.start_s))
        else:
            hits = np.flatnonzero((onsets - collar_s < e.start_s) & (offsets > e.start_s))
        if len(hits) == 0:
            i = bisect.bisect_right(starts, e.start_s) - 1
            inside = i >= 0 and e.start_s < segments[i].end_s
            false_by_category[segments[i].category if inside else "(none)"] += 1
            continue
        free = [i for i in hits if delays[i] is None]
        if free:  # else its barks were found already (a bark split in two): neither a find nor a false alarm
            delays[free[0]] = e.detected_s - barks[free[0]].onset_s
    found = [d for d in delays if d is not None]
    bark_spans = merged_spans([(b.onset_s, b.offset_s) for b in barks])
    event_spans = merged_spans([(e.start_s, e.end_s) for e in events])
    return Point(threshold=float(threshold), barks=len(barks), found=len(found), events=len(events),
                 barking_s=spans_length(bark_spans), event_s=spans_length(event_spans),
                 overlap_s=spans_overlap(bark_spans, event_spans),
                 false_alarms=sum(false_by_category.values()), hours=hours, delays_s=tuple(found),
                 false_alarms_by_category=dict(false_by_category),
                 barks_by_salience=dict(Counter(b.salience for b in barks)),
                 found_by_salience=dict(Counter(b.salience for b, d in zip(barks, delays) if d is not None)),
                 delays_by_salience={s: tuple(d for b, d in zip(barks, delays) if d is not None and b.salience == s)
                                     for s in {b.salience for b in barks}})


def merged_spans(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Time spans as disjoint spans in time order (overlapping or touching ones joined)."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        elif end > start:
            out.append((start, end))
    return out


def spans_length(spans: Sequence[tuple[float, float]]) -> float:
    return float(sum(end - start for start, end in spans))


def spans_overlap(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> float:
    """Seconds inside both of two lists of disjoint, ordered spans."""
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def thresholds_for(scores: Sequence[float], count: int = THRESHOLDS) -> list[float]:
    """About ``count`` thresholds, dense among the top scores (``barkwatch.home.calibrate.candidate_thresholds``)."""
    from barkwatch.home.calibrate import candidate_thresholds

    return candidate_thresholds(scores, count)


def sweep(windows: Sequence[WindowScore], barks: Sequence[Bark], segments: Sequence[Segment], hours: float,
          thresholds: Sequence[float], collar_s: float | None = None,
          settings: TrackerSettings = TrackerSettings(threshold=0.5)) -> list[Point]:
    return [score_events(events_at(windows, t, settings), barks, segments, hours, t, collar_s) for t in thresholds]


def best_point(points: Sequence[Point], max_per_hour: float) -> Point | None:
    """The most barks found with at most ``max_per_hour`` false alarms an hour; ties go to fewer false alarms,
    then to the higher threshold."""
    allowed = [p for p in points if p.false_alarms_per_hour <= max_per_hour]
    return max(allowed, key=lambda p: (p.found, -p.false_alarms, p.threshold), default=None)


# --- Running the detector ----------------------------------------------------------------------------------

class LoudnessModel:
    """A ``WindowScorer`` (``barkwatch/model/interface.py``) standing in for a model file: score = (level_dbfs + 100) / 100 clipped to
    [0, 1], a monotone map of the window's RMS level, so a threshold on it is a threshold on loudness."""

    sample_rate = SAMPLE_RATE
    window_samples = SAMPLE_RATE  # 1 s windows
    hop_s = 0.25
    threshold = None
    path = Path("loudness")  # what detect's records name the model by
    sha256 = ""
    description = "loudness: score = (level_dbfs + 100) / 100 clipped to [0, 1]; 1 s windows every 0.25 s"
    metadata = {"hop_s": hop_s}

    @staticmethod
    def score(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        power = np.mean(np.square(windows, dtype=np.float64), axis=1)
        level = 10.0 * np.log10(np.maximum(power, 1e-12))  # -120 dBFS for digital silence, as the Engine has it
        nan = np.full_like(level, math.nan)  # no loss terms
        return nan, nan, np.clip((level + 100.0) / 100.0, 0, 1)


def _bar(progress: bool, total: float, desc: str, unit: str = "s"):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, disable=None if progress else True, dynamic_ncols=True)


def score_mix(path: Path, model, hop_s: float, device: str = "cpu", progress: bool = False) -> list[WindowScore]:
    """Every window of the recording, scored by ``barkwatch detect``'s own file scan: 1 s blocks, gate -60 dBFS."""
    from barkwatch.detection.detector import Detector, DetectorSettings

    windows: list[WindowScore] = []
    detector = Detector(model, DetectorSettings(threshold=1.0, hop_s=hop_s, gate_dbfs=GATE_DBFS), device)
    result = detector.scan(path, on_window=windows.append, progress=progress)
    if result.error:
        raise BenchError(f"{result.error}; build the mix with `python benchmarks/household.py build`")
    return windows


def score_clips(data: Path, clips: Sequence[Clip], model, hop_s: float, device: str = "cpu",
                progress: bool = False) -> np.ndarray:
    """Each clip's highest window score, through the Engine with the gate off (every window is scored)."""
    import soundfile as sf

    from barkwatch.detection.engine import Engine, EngineSettings

    settings = EngineSettings(hop_s=hop_s, gate_dbfs=-math.inf)
    scores = []
    with _bar(progress, len(clips), "held-out clips", unit="clip") as bar:
        for c in clips:
            try:
                audio, rate = sf.read(str(data / c.file), dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, OSError) as e:
                raise BenchError(f"{data / c.file}: cannot read audio ({e}); fix it or remove it from the manifest")
            engine = Engine(model, rate, settings)
            windows = engine.feed(audio) + engine.finish()
            scores.append(max(w.score for w in windows))
            bar.update(1)
    return np.asarray(scores)


def read_truth(mix: Path) -> dict:
    path = mix / TRUTH_NAME
    if not path.is_file():
        raise BenchError(f"{path}: no such file; build the mix with `python benchmarks/household.py build`")
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise BenchError(f"{path}: not valid JSON ({e}); rebuild the mix") from e
    missing = [k for k in ("barks", "backgrounds", "duration_s") if not isinstance(truth, dict) or k not in truth]
    if missing:
        raise BenchError(f"{path}: not a household truth file (no {', '.join(missing)}); rebuild the mix")
    return truth


def salience_of(truth: dict, file: str) -> str:
    """A bark clip's salience from the manifest of the data the mix was built from (foreground where that
    manifest is not at hand or says nothing)."""
    return _salience_by_file(str(truth.get("data", ""))).get(file, "foreground")


@functools.lru_cache(maxsize=8)
def _salience_by_file(data: str) -> dict[str, str]:
    try:
        return {c.file: c.salience for c in read_manifest(Path(data))}
    except BenchError:
        return {}


def evaluate(mix: Path, model_path: Path | None, baseline: str | None, data: Path | None, holdout: Path | None,
             match: str = "start", compute: str = "auto", progress: bool = False, patience: int | None = None,
             hop_s: float | None = None, hold: float | None = None) -> dict:
    """All figures of one model (or the loudness baseline) on one mix, as a JSON-ready dict."""
    from barkwatch.training import metrics

    truth = read_truth(mix)
    clock = time.perf_counter()
    if baseline == "loudness":
        model, device, hop_s, threshold = LoudnessModel(), "cpu", hop_s or LoudnessModel.hop_s, None
        patience = patience or 2
        described = {"baseline": "loudness", "description": LoudnessModel.description,
                     "window_s": 1.0, "hop_s": hop_s}
    else:
        from barkwatch.model import compute as compute_
        from barkwatch.model.modelfile import ModelFileError, load

        import torch

        torch.set_flush_denormal(True)  # as Detector.load: subnormal weights would make scoring many times slower
        try:
            device = str(compute_.resolve(compute))
            model = load(model_path, device=device)
        except (ValueError, ModelFileError) as e:
            raise BenchError(str(e)) from e
        hop_s, threshold = hop_s or float(model.metadata.get("hop_s", 0.25)), model.threshold
        patience = patience or int(model.metadata.get("patience", 2))
        hold = model_hold_threshold(model.metadata) if hold is None else hold
        described = {"file": str(model_path), "sha256": model.sha256, "threshold": threshold,
                     "window_s": model.metadata.get("window_s"), "hop_s": hop_s, "preset": model.metadata.get("preset")}

    windows = score_mix(mix / truth.get("audio", MIX_NAME), model, hop_s, device, progress)
    scoring_s = time.perf_counter() - clock

    clock = time.perf_counter()
    barks = [Bark(b["onset_s"], b["offset_s"], salience_of(truth, b["file"])) for b in truth["barks"]]
    segments = [Segment(s["start_s"], s["end_s"], s["category"]) for s in truth["backgrounds"]]
    hours = float(truth["duration_s"]) / 3600.0
    collar_s = model.window_samples / model.sample_rate if match == "start" else None
    tracker = TrackerSettings(threshold=0.5, patience=patience, hold_threshold=hold)
    points = sweep(windows, barks, segments, hours, thresholds_for([w.score for w in windows]), collar_s, tracker)
    at_model = (score_events(events_at(windows, threshold, tracker), barks, segments, hours, threshold, collar_s)
                if threshold is not None else None)
    sweep_s = time.perf_counter() - clock

    def summary(p: Point | None) -> dict | None:
        return p.summary() if p is not None else None

    result = {
        "mix": str(mix), "duration_s": truth["duration_s"], "barks": len(barks), "seed": truth.get("seed"),
        "model": described,
        "engine": {"gate_dbfs": GATE_DBFS, "block_s": 1.0, "windows": len(windows),
                   "gated": sum(w.level_dbfs < GATE_DBFS for w in windows)},
        "tracker": {k: v for k, v in vars(tracker).items() if k != "threshold"},
        "matching": {"rule": match, "collar_s": collar_s},
        "at_most_2_per_hour": summary(best_point(points, 2.0)),
        "at_most_0.5_per_hour": summary(best_point(points, 0.5)),
        "at_model_threshold": summary(at_model),
        "sweep": [{"threshold": p.threshold, "recall": p.recall, "false_alarms_per_hour": p.false_alarms_per_hour}
                  for p in points],
    }
    if data is not None and holdout is not None:
        clock = time.perf_counter()
        clips = held_out_clips(data, holdout)
        labels = np.array([c.label == "dog" for c in clips])
        scores = score_clips(data, clips, model, hop_s, device, progress)
        result["clips"] = {
            "positives": int(labels.sum()), "negatives": int((~labels).sum()),
            "roc_auc": metrics.roc_auc(labels, scores), "threshold": threshold,
            "balanced_accuracy": (metrics.balanced_accuracy(labels, scores >= threshold)
                                  if threshold is not None else None),
        }
        result["clips_s"] = round(time.perf_counter() - clock, 2)
    result["scoring_s"], result["sweep_s"] = round(scoring_s, 2), round(sweep_s, 2)
    return result


def calibrate(model_path: Path, result_path: Path, budget: float, out: Path) -> str:
    """Write ``model_path`` to ``out`` with the threshold that found the most barks at no more than ``budget``
    false alarms an hour in the evaluation ``result_path`` (ties: the higher threshold). That evaluation must
    be on a validation mix: a threshold chosen on the test mix would make its figures meaningless."""
    from barkwatch.model.modelfile import ModelFileError, file_hash, update_metadata

    try:
        result = json.loads(result_path.read_text(encoding="utf-8"))
        sweep = result["sweep"]
    except (OSError, ValueError, KeyError) as e:
        raise BenchError(f"{result_path}: not an `evaluate --out` result ({e})") from e
    if result["model"].get("sha256") != file_hash(model_path):
        raise BenchError(f"{result_path}: evaluated a different model file than {model_path}")
    allowed = [p for p in sweep if p["false_alarms_per_hour"] is not None and p["false_alarms_per_hour"] <= budget]
    if not allowed:
        raise BenchError(f"{result_path}: no threshold kept false alarms within {budget:g} an hour")
    best = max(allowed, key=lambda p: (p["recall"] or 0.0, p["threshold"]))
    calibration = {"threshold": best["threshold"], "budget_per_hour": budget, "mix": result["mix"],
                   "recall": best["recall"], "false_alarms_per_hour": best["false_alarms_per_hour"],
                   "previous_threshold": result["model"].get("threshold")}
    changes = {"threshold": best["threshold"], "calibration": calibration}
    if result.get("tracker", {}).get("hold_threshold") is not None:  # the events the sweep counted
        changes["hold_threshold"] = result["tracker"]["hold_threshold"]
    try:
        update_metadata(model_path, out, changes)
    except ModelFileError as e:
        raise BenchError(str(e)) from e
    return (f"{out}: threshold {best['threshold']:.4f} (recall {best['recall']:.2f} at "
            f"{best['false_alarms_per_hour']:.2f} false alarms an hour on {result['mix']})")


def _finite(value):
    """JSON has no NaN: undefined figures (recall without barks, AUC without a class) are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def describe(result: dict) -> str:
    """The figures as a few readable lines."""
    m = result["model"]
    who = (f"loudness baseline ({m['window_s']:g} s windows every {m['hop_s']:g} s)" if "baseline" in m
           else f"{Path(m['file']).name} (threshold {m['threshold']:.3f}, hop {m['hop_s']:g} s)")
    lines = [f"{result['mix']}: {result['duration_s'] / 60:.1f} min, {result['barks']} barks; {who}"]

    def point(name: str, p: dict | None) -> None:
        if p is None:
            lines.append(f"  {name:<24} no threshold qualifies")
            return
        lines.append(f"  {name:<24} recall {_fmt(p['recall'])} ({p['found']}/{p['barks']}; foreground "
                     f"{_fmt(p.get('recall_foreground'))}, background {_fmt(p.get('recall_background'))}), "
                     f"{p['false_alarms_per_hour']:.2f} false alarms/h, threshold {p['threshold']:.4f}, "
                     f"delay median {_fmt(p['delay_median_s'])} s, p95 {_fmt(p['delay_p95_s'])} s")

    point("<= 2 false alarms/h", result["at_most_2_per_hour"])
    point("<= 0.5 false alarms/h", result["at_most_0.5_per_hour"])
    if result["at_model_threshold"] is not None:
        point("at the model's threshold", result["at_model_threshold"])
        at = result["at_model_threshold"]
        if at.get("time_recall") is not None:
            lines.append(f"  barking time there:      {_fmt(at['time_recall'])} of it inside events, "
                         f"{_fmt(at['time_precision'])} of event time barking")
    by_category = (result["at_most_2_per_hour"] or {}).get("false_alarms_by_category") or {}
    lines.append("  false alarms at <= 2/h:  " +
                 (", ".join(f"{k} {v}" for k, v in by_category.items()) or "none"))
    if "clips" in result:
        c = result["clips"]
        lines.append(f"  held-out clips:          AUC {_fmt(c['roc_auc'], '.3f')} ({c['positives']} barks, "
                     f"{c['negatives']} others), balanced accuracy {_fmt(c['balanced_accuracy'], '.3f')}"
                     + (f" at {c['threshold']:.3f}" if c["threshold"] is not None else ""))
    lines.append(f"  {result['engine']['windows']} windows scored in {result['scoring_s']:.1f} s, "
                 f"{len(result['sweep'])} thresholds swept in {result['sweep_s']:.1f} s")
    return "\n".join(lines)


# --- The command line --------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="household.py", description=__doc__.split("\n\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("holdout", help="choose held-out recordings")
    p.add_argument("--data", type=Path, required=True, help="folder with manifest.jsonl")
    p.add_argument("--out", type=Path, required=True, help="text file to write, one dataset/source_id a line")
    p.add_argument("--fraction", type=float, default=0.2, help="share of each group's recordings (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude", type=Path, action="append", default=[],
                   help="holdout file whose recordings are not candidates (for a validation split beside the "
                   "test holdout); repeatable")
    p.add_argument("--rest", action="store_true",
                   help="name every recording the --exclude files leave (the training part), for a mix of the "
                   "recordings a model was trained on: does it separate even those?")

    p = commands.add_parser("build", help="build the household mix from held-out clips")
    p.add_argument("--data", type=Path, required=True, help="folder with manifest.jsonl and the clips")
    p.add_argument("--holdout", type=Path, required=True, help="file written by `holdout`")
    p.add_argument("--out", type=Path, required=True, help="folder for household.wav and truth.json")
    p.add_argument("--minutes", type=float, default=90.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--barks-per-hour", type=float, default=60.0)

    p = commands.add_parser("calibrate", help="set a model's threshold from an evaluation on a validation mix")
    p.add_argument("--model", type=Path, required=True, help="the model file that was evaluated")
    p.add_argument("--result", type=Path, required=True, help="its `evaluate --out` JSON on a validation mix")
    p.add_argument("--budget", type=float, default=1.0, help="false alarms per hour allowed (default 1)")
    p.add_argument("--out", type=Path, required=True, help="model file to write (may be --model itself)")

    p = commands.add_parser("evaluate", help="score a model (or the loudness baseline) on a mix")
    p.add_argument("--model", type=Path, help="barkwatch model file")
    p.add_argument("--baseline", choices=["loudness"], help="score by loudness instead of a model")
    p.add_argument("--mix", type=Path, required=True, help="folder written by `build`")
    p.add_argument("--holdout", type=Path, help="with --data: also the clip AUC of the held-out clips")
    p.add_argument("--data", type=Path, help="with --holdout: the folder the holdout was made from")
    p.add_argument("--out", type=Path, help="write all figures to this JSON file")
    p.add_argument("--match", choices=["start", "overlap"], default="start",
                   help="start: an event finds a bark only if it starts within one window before the bark's "
                   "onset or during the bark (default); overlap: any overlapping event finds it")
    p.add_argument("--compute", default="auto", help="where the network runs: auto, cpu, cuda or mps")
    p.add_argument("--patience", type=int, help="high windows that open an event (default: the model's, else 2)")
    p.add_argument("--hop", type=float, help="seconds between windows (default: the model's)")
    p.add_argument("--hold", type=float, help="score that keeps an open event going (default: the model's own, "
                   "else none); calibrate copies it into the model")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; 1 is much faster "
                   "beside another busy process, whose cores torch's threads would otherwise fight for)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    progress = sys.stderr.isatty()
    try:
        if args.command == "holdout":
            if not 0.0 < args.fraction < 1.0:
                raise BenchError(f"--fraction {args.fraction}: must be between 0 and 1")
            clips = read_manifest(args.data)
            excluded = set().union(*(read_holdout(f) for f in args.exclude))
            clips = [c for c in clips if c.source not in excluded]
            sources = {c.source for c in clips}
            if args.rest:
                if not args.exclude:
                    raise BenchError("--rest names what the --exclude files leave; give at least one --exclude")
                held = sources
                header = (f"every recording of {args.data / 'manifest.jsonl'} not in the excluded files; "
                          f"{len(held)} recordings; benchmarks/household.py holdout --rest")
            else:
                held, twins = choose_holdout(clips, args.fraction, args.seed)
                header = (
                    f"held-out recordings of {args.data / 'manifest.jsonl'}: in each (label, category) group with "
                    f"3 or more recordings, the first floor({args.fraction:g} n + 0.5) ranked by sha256(\"{args.seed}/"
                    f"dataset/source_id\"), plus {twins} Freesound twin(s) (same id in ESC-50 and UrbanSound8K); "
                    f"{len(held)} of {len(sources)} recordings; benchmarks/household.py holdout --fraction "
                    f"{args.fraction:g} --seed {args.seed}")
            write_holdout(args.out, held, header + "".join(f" --exclude {f}" for f in args.exclude))
            held_clips = [c for c in clips if c.source in held]
            print(f"{args.out}: {len(held)} of {len(sources)} recordings held out "
                  f"({sum(c.label == 'dog' for c in held_clips)} dog and "
                  f"{sum(c.label != 'dog' for c in held_clips)} other clips)")
        elif args.command == "build":
            truth = build_mix(args.data, args.holdout, args.out, args.minutes, args.seed, args.barks_per_hour,
                              progress)
            print(f"{args.out / MIX_NAME}: {truth['duration_s'] / 60:.1f} min, {len(truth['barks'])} barks over "
                  f"{len(truth['backgrounds'])} background segments; truth in {args.out / TRUTH_NAME}")
        elif args.command == "calibrate":
            print(calibrate(args.model, args.result, args.budget, args.out))
        else:
            if (args.model is None) == (args.baseline is None):
                raise BenchError("give either --model FILE or --baseline loudness")
            if (args.holdout is None) != (args.data is None):
                raise BenchError("--holdout and --data go together: give both for the clip AUC, or neither")
            if args.threads is not None:
                if args.threads < 1:
                    raise BenchError(f"--threads {args.threads}: must be 1 or more")
                import torch

                torch.set_num_threads(args.threads)
            result = _finite(evaluate(args.mix, args.model, args.baseline, args.data, args.holdout, args.match,
                                      args.compute, progress, args.patience, args.hop, args.hold))
            print(describe(result))
            if args.out is not None:
                try:
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n", encoding="utf-8")
                except OSError as e:
                    raise BenchError(f"{args.out}: cannot write the figures ({e.strerror or e})") from e
    except BenchError as e:
        print(f"household: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
