"""The home benchmark: enrolment as an owner lives it, in simulated homes, through the real commands.

    python benchmarks/home.py [--data ../shared/data/barks-dev] [--holdout FILE|none] [--homes 8] [--seed 0]
                              [--out benchmarks/results/home] [--labels-budget 60] [--day-minutes 60]
                              [--after-minutes 90] [--jobs 2] [--modes default,default+calibrate,...]

A home (built from a data folder with a ``manifest.jsonl`` like ``../shared/data/barks-dev``'s):
- **its dog**: the bark clips of one recording (``source_id``) with 3 or more clips, preferring foreground
  ones. Its clips in name order are split in time: the first half (rounded up) barks on the enrolment day,
  the rest only in the weeks after. Each bark (one clip) has its loudest 23 ms frame at -35..-10 dBFS: a dog
  in the room, near or far from the microphone.
- **the neighbour's dog**: another recording's barks, heard now and then through a wall or a window, its
  loudest frame at -50..-30 dBFS.
- **the home's own sounds**: 4 categories of other sounds, one recording each (its own clips, recurring as a
  real home's do: the same clock, the same television), at a level per category (-45..-20 dBFS RMS over the
  active part, drawn once per home) +-3 dB, one every 40 s on average, never two at once;
- a room-noise floor (pink, -65..-55 dBFS RMS, drawn once per home).
Only recordings of ``--holdout`` are used (by default ``benchmarks/holdout.txt`` for the project's own data,
whose recordings the shipped model never saw; ``none`` for a folder no model was trained on).

Each home has three recordings: ``day1.wav`` (``--day-minutes``: its dog's enrolment clips, 20 an hour,
the neighbour's, 6 an hour, the home's sounds), ``quiet.wav`` (an hour of the same home with no dog barking:
the owner's walk, ``--quiet-minutes``, what ``calibrate`` takes as background) and ``after.wav`` (``--after-minutes``: its dog's
other clips, 20 an hour, and the neighbour's, 6 an hour, with new draws of the home's sounds).

Then the owner's steps, each the real command (``python -m barkwatch ...``):
1. ``record --device file:day1.wav --fast`` keeps every stretch that stands out from the room;
2. the labels an owner would give in ``label``, from the truth (a clip holding the dog's bark ``my_dog``, the
   neighbour's ``other_dog``, else ``not_bark``), in the order ``label`` shows them (``--label-order``:
   ``score``, its default, the most bark-like first; or ``time``), at most ``--labels-budget`` decisions,
   written with ``label``'s own writer to ``labels.jsonl``;
3. ``train --labels labels.jsonl --negatives samples/other --init models/default.pt`` (enrolled) and
   ``train --labels labels.jsonl`` with the notebook's preset and objective (``--preset seed``, one-class:
   a VAE of the dog's barks alone, its RL and KL read by a linear classifier);
4. ``calibrate --background quiet.wav --barks labels.jsonl --budget 0.5`` for the shipped model and the
   enrolled one;
5. ``detect after.wav --scores`` with each model; each mode's events are the window scores replayed through
   ``detect``'s own event rules at that mode's threshold (the shipped model's own, or the calibrated one), and
   the shipped model's own events are checked against what ``detect`` itself reported.

Scored as events (``household.py``'s ``start`` rule: an event finds a bark when it starts after the bark's
onset minus a window and before its offset): ``recall`` (the home's dog's barks found), ``false_alarms_per_hour``
(events that find no bark of either dog), ``delay_median_s`` and ``delay_p95_s`` (onset to ``bark_start``, the
home's dog) and ``other_dog_accept`` (the share of the neighbour's barks that raise an event: "my dog" says
yes to the wrong dog). ``OUT/results.json`` holds every home's rows and, under ``"modes"``, the medians over
homes; ``OUT/results.md`` the table; ``OUT/home.png`` the plot. Homes run in ``--jobs`` processes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(REPO)]

import household as H  # noqa: E402
from barkwatch.detection.events import TrackerSettings  # noqa: E402

NOTEBOOK_RULES = TrackerSettings(threshold=0.5, patience=1)
DETECT_RULES = TrackerSettings(threshold=0.5)  # detect's defaults; the threshold and hold are each model's

DEFAULT_DATA = REPO.parent / "shared" / "data" / "barks-dev"
DEFAULT_HOLDOUT = REPO / "benchmarks" / "holdout.txt"
DEFAULT_MODEL = REPO / "models" / "default.pt"
NEGATIVES = REPO / "samples" / "other"
MODES = ("default", "default+calibrate", "enrolled+calibrate", "notebook")
RATE = H.SAMPLE_RATE

# The home, as the module docstring says.
MY_DOG_DBFS = (-35.0, -10.0)  # loudest 23 ms frame
NEIGHBOUR_DBFS = (-50.0, -30.0)
SOUND_DBFS = (-45.0, -20.0)  # RMS over the active part, per category and home
SOUND_JITTER_DB = 3.0
SOUNDS_PER_HOUR = 90.0
CATEGORIES = 4
FLOOR_DBFS = (-65.0, -55.0)
MY_BARKS_PER_HOUR = 20.0
NEIGHBOUR_PER_HOUR = 6.0
BUDGET_PER_HOUR = 0.5  # calibrate's --budget: the target
# The notebook's model (4 M parameters, 3 s windows) costs about 70 ms a window on a CPU: it is scanned as the
# notebook scored clips, one 3 s window after another, and an event needs one window over its threshold.
NOTEBOOK_HOP_S = 3.0
NOTEBOOK_EPOCHS = 8  # its validation loss is lowest within the first few epochs on a day of labels
START = "2026-06-01T08:00:00+00:00"  # day 1 begins; the weeks after are scored from their own start


class HomeError(Exception):
    """A problem the user can fix: the message says what to do."""


# --- Choosing and building homes -----------------------------------------------------------------------------

@dataclass(frozen=True)
class HomePlan:
    number: int
    dog: str  # the recording ("dataset/source_id") of the home's dog
    enrol: tuple[H.Clip, ...]  # its clips on day 1
    later: tuple[H.Clip, ...]  # its clips in the weeks after
    neighbour: tuple[H.Clip, ...]  # the neighbour's dog: one other recording's clips
    sounds: dict[str, tuple[H.Clip, ...]]  # category -> one recording's clips
    sound_dbfs: dict[str, float]
    floor_dbfs: float


def _rank(seed: int, text: str) -> str:
    return hashlib.sha256(f"{seed}/{text}".encode()).hexdigest()


def plan_homes(clips: Sequence[H.Clip], homes: int, seed: int) -> list[HomePlan]:
    """``homes`` homes from ``clips`` (the usable ones: with sound), reproducibly for ``seed``."""
    by_source: dict[str, list[H.Clip]] = {}
    for c in clips:
        by_source.setdefault(c.source, []).append(c)
    dogs = {s: sorted(cs, key=lambda c: c.file) for s, cs in by_source.items() if cs[0].label == "dog"}
    # Dogs with 3+ clips, foreground ones first (a home's own dog is heard up close), then by hash.
    eligible = sorted((s for s, cs in dogs.items() if len(cs) >= 3),
                      key=lambda s: (dogs[s][0].salience != "foreground", _rank(seed, s)))
    if not eligible:
        raise HomeError("no dog recording with 3 or more clips in the data: a home needs clips for the "
                        "enrolment day and for the weeks after; give --data (or --holdout) with more")
    others: dict[str, dict[str, list[H.Clip]]] = {}
    for s, cs in by_source.items():
        if cs[0].label != "dog":
            others.setdefault(cs[0].category, {})[s] = cs
    if len(others) < CATEGORIES:
        raise HomeError(f"only {len(others)} categories of other sounds in the data; a home needs {CATEGORIES}")
    plans = []
    for number in range(homes):
        rng = np.random.default_rng([seed, number])
        dog = eligible[number % len(eligible)]
        split = math.ceil(len(dogs[dog]) / 2)
        neighbours = sorted((s for s in dogs if s != dog), key=lambda s: _rank(seed * 1000 + number, s))
        if not neighbours:
            raise HomeError("only one dog recording in the data; a home needs a neighbour's dog too")
        categories = sorted(others, key=lambda c: _rank(seed * 1000 + number, c))[:CATEGORIES]
        sounds = {}
        for category in categories:
            source = sorted(others[category], key=lambda s: _rank(seed * 1000 + number, s))[0]
            sounds[category] = tuple(sorted(others[category][source], key=lambda c: c.file))
        plans.append(HomePlan(number, dog, tuple(dogs[dog][:split]), tuple(dogs[dog][split:]),
                              tuple(dogs[neighbours[0]]), sounds,
                              {c: float(rng.uniform(*SOUND_DBFS)) for c in categories},
                              float(rng.uniform(*FLOOR_DBFS))))
    return plans


@dataclass
class Part:
    """One recording of a home: what is placed where, and the truth about it."""

    sounds: list[H.Placed] = field(default_factory=list)
    barks: list[H.Placed] = field(default_factory=list)
    truth_barks: list[dict] = field(default_factory=list)


def plan_part(plan: HomePlan, stats: dict[str, H.ClipStats], load, minutes: float, mine: Sequence[H.Clip],
              neighbour: Sequence[H.Clip], rng: np.random.Generator) -> Part:
    total = round(minutes * 60 * RATE)
    part = Part()
    # The home's sounds: one at a time, exponential gaps, categories in turn at random.
    categories = sorted(plan.sounds)
    gap_mean = 3600.0 / SOUNDS_PER_HOUR
    t = round(rng.exponential(gap_mean / 2) * RATE)
    while t < total:
        category = categories[rng.integers(len(categories))]
        clip = plan.sounds[category][rng.integers(len(plan.sounds[category]))]
        s = stats[clip.file]
        level = plan.sound_dbfs[category] + rng.uniform(-SOUND_JITTER_DB, SOUND_JITTER_DB)
        gain = min(10 ** (level / 20) / s.active_rms, 10 ** (H.BACKGROUND_PEAK_DBFS / 20) / s.peak)
        length = min(s.samples, total - t)
        part.sounds.append(H.Placed(clip, t, length, gain))
        t += length + round(rng.exponential(gap_mean) * RATE)
    # The dogs: whole clips at uniform random times, at least 5 s apart, in a shuffled order.
    chosen = [(c, "mine") for c in _cycle(mine, round(MY_BARKS_PER_HOUR * minutes / 60), rng)]
    chosen += [(c, "neighbour") for c in _cycle(neighbour, round(NEIGHBOUR_PER_HOUR * minutes / 60), rng)]
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    lengths = [stats[c.file].samples for c, _ in chosen]
    gap, margin = round(H.MIN_GAP_S * RATE), round(H.MARGIN_S * RATE)
    slack = total - sum(lengths) - gap * max(0, len(chosen) - 1) - 2 * margin
    if slack < 0:
        raise HomeError(f"{len(chosen)} bark clips do not fit in {minutes:g} minutes; give more minutes")
    spare = np.sort(rng.uniform(0, slack, len(chosen))).astype(np.int64)
    used = 0
    peak_limit = 10 ** (H.PEAK_DBFS / 20)
    for (clip, whose), length, extra in zip(chosen, lengths, spare):
        start = margin + int(extra) + used
        used += length + gap
        s = stats[clip.file]
        under = np.zeros(length)
        H.add_placed(under, start, part.sounds, load)
        peak_dbfs = rng.uniform(*(MY_DOG_DBFS if whose == "mine" else NEIGHBOUR_DBFS))
        gain = H._limited_gain(10 ** (peak_dbfs / 20) / s.peak_frame_rms, load(clip.file), under, peak_limit)
        part.barks.append(H.Placed(clip, start, length, gain))
        floor_power = 10 ** (plan.floor_dbfs / 10)
        background = H._db(float(np.mean(np.square(under[s.first:s.last]))) + floor_power)
        part.truth_barks.append({
            "dog": whose, "file": clip.file, "source": clip.source,
            "start_s": round(start / RATE, 5), "end_s": round((start + length) / RATE, 5),
            "onset_s": round((start + s.first) / RATE, 5), "offset_s": round((start + s.last) / RATE, 5),
            "peak_dbfs": round(20 * math.log10(gain * s.peak_frame_rms), 2),
            "ratio_db": round(20 * math.log10(gain * s.peak_frame_rms) - background, 2)})
    part.barks.sort(key=lambda p: p.start)
    part.truth_barks.sort(key=lambda b: b["start_s"])
    return part


def _cycle(clips: Sequence[H.Clip], count: int, rng: np.random.Generator) -> list[H.Clip]:
    """``count`` clips, all used before any repeats, each round in a new order."""
    out: list[H.Clip] = []
    while len(out) < count and clips:
        out += [clips[i] for i in rng.permutation(len(clips))]
    return out[:count]


def write_part(path: Path, part: Part, minutes: float, floor_dbfs: float, load, rng: np.random.Generator) -> dict:
    """``path`` (16-bit WAV) and its truth beside it (``path`` with ``.json``); returns the truth."""
    import soundfile as sf

    total = round(minutes * 60 * RATE)
    noise = H.RoomNoise(rng, floor_dbfs)
    block = round(H.BLOCK_S * RATE)
    sounds = sorted(part.sounds, key=lambda p: p.start)
    tmp = path.with_suffix(".tmp.wav")
    with sf.SoundFile(str(tmp), "w", RATE, 1, "PCM_16", format="WAV") as f:
        for at in range(0, total, block):
            mix = noise.next(min(block, total - at))
            H.add_placed(mix, at, sounds, load)
            H.add_placed(mix, at, part.barks, load)
            f.write(np.clip(mix, -1.0, 1.0))
    os.replace(tmp, path)
    truth = {"audio": path.name, "duration_s": total / RATE, "floor_dbfs": round(floor_dbfs, 2),
             "barks": part.truth_barks,
             "backgrounds": [{"start_s": round(p.start / RATE, 5), "end_s": round(p.end / RATE, 5),
                              "category": p.clip.category, "file": p.clip.file} for p in sounds]}
    path.with_suffix(".json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
    return truth


def build_home(plan: HomePlan, data: Path, folder: Path, day_minutes: float, quiet_minutes: float,
               after_minutes: float, seed: int) -> dict[str, dict]:
    """The home's three recordings in ``folder``; returns their truths by name."""
    load = H.clip_loader(data)
    every = [*plan.enrol, *plan.later, *plan.neighbour, *(c for cs in plan.sounds.values() for c in cs)]
    stats = {c.file: H.clip_stats(load(c.file)) for c in every}
    folder.mkdir(parents=True, exist_ok=True)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, plan.number]).spawn(6)]
    truths = {}
    for (name, minutes, mine, neighbour), (rng, noise_rng) in zip(
            (("day1", day_minutes, plan.enrol, plan.neighbour), ("quiet", quiet_minutes, (), ()),
             ("after", after_minutes, plan.later, plan.neighbour)), (rngs[0:2], rngs[2:4], rngs[4:6])):
        part = plan_part(plan, stats, load, minutes, mine, neighbour, rng)
        truths[name] = write_part(folder / f"{name}.wav", part, minutes, plan.floor_dbfs, load, noise_rng)
    return truths


# --- The owner's steps, through the real commands ------------------------------------------------------------

def barkwatch(*args: str, log: Path, threads: int = 1) -> None:
    """Run ``python -m barkwatch ARGS``; its output goes to ``log``; a failure stops the home with its last line."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ barkwatch {' '.join(args)}\n")
        out.flush()
        code = subprocess.run([sys.executable, "-m", "barkwatch", *args], cwd=REPO, env=env, stdout=out,
                              stderr=subprocess.STDOUT).returncode
    if code not in (0, 1):  # detect and calibrate say 1 for "found something / no threshold fits"
        last = log.read_text(encoding="utf-8").strip().splitlines()[-1:]
        raise HomeError(f"barkwatch {args[0]} failed (exit {code}): {last[0] if last else ''}; see {log}")


def label_from_truth(recorded: Path, truth: dict, budget: int, order: str) -> dict[str, int]:
    """Write ``recorded/labels.jsonl`` as an owner would in ``label --order ORDER``: the clips in the order it
    shows them (scored by the shipped model, as ``label`` scores them), at most ``budget`` decisions, each from
    what the clip's stretch holds. Returns the counts by label."""
    import torch

    from barkwatch.detection.detector import Detector, DetectorSettings
    from barkwatch.home.label import LABELS_NAME, LabelFile, find_clips, in_order, scorer_for
    from barkwatch.live.record import read_index

    torch.set_num_threads(1)
    offsets = {e["clip"]: (e["offset_s"], e["offset_s"] + e["duration_s"]) for e in read_index(recorded)}
    counts: dict[str, int] = {}
    score = scorer_for(Detector.load(DEFAULT_MODEL, DetectorSettings(gate_dbfs=-math.inf), compute="cpu"))
    clips, scores = in_order(find_clips(recorded), score, order)
    writer = LabelFile(recorded / LABELS_NAME)
    try:
        for clip in [c for c in clips if c.kind != "background"][:budget]:
            start, end = offsets[clip.name]
            held = {b["dog"] for b in truth["barks"] if b["onset_s"] < end and b["offset_s"] > start}
            label = "my_dog" if "mine" in held else "other_dog" if "neighbour" in held else "not_bark"
            writer.write(clip, label, scores.get(clip.name))
            counts[label] = counts.get(label, 0) + 1
    finally:
        writer.close()
    return counts


def read_scores(path: Path) -> list:
    """``detect --scores``'s CSV as window scores (gated windows score 0, as the detector treats them)."""
    import csv

    from barkwatch.detection.events import WindowScore

    with open(path, encoding="utf-8") as f:
        return [WindowScore(float(r["start_s"]), float(r["end_s"]), float(r["score"] or 0.0),
                            float(r["rl"] or "nan"), float(r["kl"] or "nan"), float(r["level_dbfs"]))
                for r in csv.DictReader(f)]


def read_events(path: Path) -> list:
    from barkwatch.detection.events import Event

    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        if r.get("event") == "bark":
            events.append(Event(r["id"], r["offset_s"], r["end_offset_s"], r["detected_offset_s"], r["peak_score"],
                                r["mean_score"], r["rl"], r["kl"], r["level_dbfs"], r["windows"]))
    return events


def model_rules(path: Path, rules: TrackerSettings) -> TrackerSettings:
    """``rules`` at a model file's own threshold and hold threshold (as ``detect`` uses them)."""
    from barkwatch.detection.detector import model_hold_threshold
    from barkwatch.model.modelfile import read_metadata

    meta = read_metadata(path)
    return replace(rules, threshold=float(meta["threshold"]), hold_threshold=model_hold_threshold(meta))


def judge(events: Sequence, truth: dict, threshold: float, window_s: float) -> dict:
    """The figures of one mode on the weeks after (see the module docstring); an event finds a bark when it
    starts less than ``window_s`` (the model's window) before its onset, or in it."""
    barks = [H.Bark(b["onset_s"], b["offset_s"], b["dog"]) for b in truth["barks"]]
    segments = [H.Segment(s["start_s"], s["end_s"], s["category"]) for s in truth["backgrounds"]]
    point = H.score_events(events, barks, segments, truth["duration_s"] / 3600, threshold, collar_s=window_s)
    delays = point.delays_by_salience.get("mine", ())
    return {"threshold": round(threshold, 4), "recall": point.recall_of("mine"),
            "false_alarms_per_hour": point.false_alarms_per_hour,
            "delay_median_s": float(np.median(delays)) if delays else None,
            "delay_p95_s": float(np.percentile(delays, 95)) if delays else None,
            "other_dog_accept": point.recall_of("neighbour"),
            "barks": point.barks_by_salience.get("mine", 0),
            "neighbour_barks": point.barks_by_salience.get("neighbour", 0),
            "false_alarms": point.false_alarms,
            "false_alarms_by_category": point.false_alarms_by_category}


def run_home(plan: HomePlan, data: Path, out: Path, day_minutes: float, quiet_minutes: float,
             after_minutes: float, seed: int, budget: int, modes: Sequence[str], label_order: str = "score",
             margin: str = "centre", train_args: Sequence[str] = ()) -> dict:
    """Every step for one home; returns its row."""
    from barkwatch.home.calibrate import events_at

    clock = time.perf_counter()
    folder = out / f"home{plan.number:02d}"
    log = folder / "commands.log"
    folder.mkdir(parents=True, exist_ok=True)
    log.write_text("", encoding="utf-8")
    truths = build_home(plan, data, folder, day_minutes, quiet_minutes, after_minutes, seed)
    took = {"build_s": time.perf_counter() - clock}

    def step(name: str, *args: str) -> None:
        t = time.perf_counter()
        barkwatch(*args, log=log)
        took[f"{name}_s"] = took.get(f"{name}_s", 0.0) + time.perf_counter() - t

    recorded = folder / "recorded"
    step("record", "record", "--device", f"file:{folder / 'day1.wav'}", "--fast", "--out", str(recorded),
         "--background-every", "0", "--model", str(DEFAULT_MODEL), "-q")
    t = time.perf_counter()
    labels = label_from_truth(recorded, truths["day1"], budget, label_order)
    took["label_s"] = time.perf_counter() - t
    labels_file = recorded / "labels.jsonl"
    models: dict[str, Path] = {}
    rules: dict[str, TrackerSettings] = {}
    wanted = set(modes)
    if wanted & {"default", "default+calibrate"}:
        models["default"] = DEFAULT_MODEL
        rules["default"] = model_rules(DEFAULT_MODEL, DETECT_RULES)
    if "default+calibrate" in wanted:
        step("calibrate", "calibrate", "--model", str(DEFAULT_MODEL), "--background", str(folder / "quiet.wav"),
             "--barks", str(labels_file), "--budget", str(BUDGET_PER_HOUR), "--margin", margin,
             "--out", str(folder / "default-cal.pt"), "-q")
        rules["default+calibrate"] = model_rules(folder / "default-cal.pt", DETECT_RULES)
    if "enrolled+calibrate" in wanted:
        step("train", "train", "--labels", str(labels_file), "--negatives", str(NEGATIVES), "--init",
             str(DEFAULT_MODEL), "--out", str(folder / "enrolled.pt"), "--seed", str(seed), *train_args)
        step("calibrate", "calibrate", "--model", str(folder / "enrolled.pt"), "--background",
             str(folder / "quiet.wav"), "--barks", str(labels_file), "--budget", str(BUDGET_PER_HOUR), "--margin",
             margin, "--out", str(folder / "enrolled-cal.pt"), "-q")
        models["enrolled+calibrate"] = folder / "enrolled-cal.pt"
        rules["enrolled+calibrate"] = model_rules(folder / "enrolled-cal.pt", DETECT_RULES)
    if "notebook" in wanted:
        step("train", "train", "--labels", str(labels_file), "--preset", "seed", "--epochs", str(NOTEBOOK_EPOCHS),
             "--out", str(folder / "notebook.pt"), "--seed", str(seed))
        models["notebook"] = folder / "notebook.pt"
        rules["notebook"] = model_rules(folder / "notebook.pt", NOTEBOOK_RULES)

    after = truths["after"]
    rows: dict[str, dict] = {}
    for name, path in models.items():
        scores, events = folder / f"after-{name}.csv", folder / f"after-{name}.jsonl"
        for f in (scores, events):
            f.unlink(missing_ok=True)
        step("detect", "detect", str(folder / "after.wav"), "--model", str(path), "--scores", str(scores),
             "--events", str(events), "--start", START, "--patience", str(rules[name].patience),
             *(("--hop", str(NOTEBOOK_HOP_S)) if name == "notebook" else ()), "-q")
        windows = read_scores(scores)
        for mode in [m for m in modes if (m == name or (name == "default" and m == "default+calibrate"))]:
            replayed = events_at(windows, rules[mode])
            if mode == name:  # the replay is detect's own event rules: check it against detect's events
                reported = read_events(events)
                spans = [[(round(e.start_s, 3), round(e.end_s, 3)) for e in es] for es in (reported, replayed)]
                if spans[0] != spans[1]:
                    first = next(i for i, (a, b) in enumerate(zip(spans[0] + [None], spans[1] + [None])) if a != b)
                    said = lambda es: f"{es[first][0]}-{es[first][1]} s" if first < len(es) else "none"  # noqa: E731
                    raise HomeError(f"{events}: detect's events differ from the replayed scores' from event "
                                    f"{first + 1} on (detect: {said(spans[0])}, replayed: {said(spans[1])}); a bug")
            rows[mode] = judge(replayed, after, rules[mode].threshold, windows[0].end_s - windows[0].start_s)
    took["total_s"] = time.perf_counter() - clock
    return {"home": plan.number, "dog": plan.dog, "neighbour": plan.neighbour[0].source,
            "enrol_clips": [c.file for c in plan.enrol], "later_clips": [c.file for c in plan.later],
            "sounds": sorted(plan.sounds), "floor_dbfs": round(plan.floor_dbfs, 1),
            "labels": labels, "modes": rows, "seconds": {k: round(v, 1) for k, v in took.items()}}


# --- Summaries -----------------------------------------------------------------------------------------------

def medians(rows: Sequence[dict], modes: Sequence[str]) -> dict[str, dict]:
    out = {}
    for mode in modes:
        values = [r["modes"][mode] for r in rows if mode in r["modes"]]
        out[mode] = {key: _median([v[key] for v in values])
                     for key in ("recall", "false_alarms_per_hour", "delay_median_s", "other_dog_accept")}
        out[mode]["homes"] = len(values)
    return out


def _median(values) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.median(values)) if values else None


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def table(result: dict) -> str:
    lines = ["| mode | recall | false alarms / h | delay median | other dog accepted | homes |",
             "|---|---|---|---|---|---|"]
    for mode, m in result["modes"].items():
        lines.append(f"| {mode} | {_fmt(m['recall'])} | {_fmt(m['false_alarms_per_hour'])} | "
                     f"{_fmt(m['delay_median_s'])} s | {_fmt(m['other_dog_accept'])} | {m['homes']} |")
    lines += ["", "| home | dog | labels (my dog / other dog / not a bark) | " +
              " | ".join(f"{m}: recall, FA/h, other dog" for m in result["modes"]) + " |",
              "|---|---|---|" + "---|" * len(result["modes"])]
    for r in result["homes"]:
        lab = r["labels"]
        cells = []
        for mode in result["modes"]:
            m = r["modes"].get(mode)
            cells.append("-" if m is None else f"{_fmt(m['recall'])}, {_fmt(m['false_alarms_per_hour'], '.1f')}, "
                         f"{_fmt(m['other_dog_accept'])}")
        lines.append(f"| {r['home']} | {r['dog']} | {lab.get('my_dog', 0)} / {lab.get('other_dog', 0)} / "
                     f"{lab.get('not_bark', 0)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {"default": "tab:grey", "default+calibrate": "tab:blue", "enrolled+calibrate": "tab:green",
               "notebook": "tab:red"}
    for mode in result["modes"]:
        xs = [r["modes"][mode]["false_alarms_per_hour"] for r in result["homes"] if mode in r["modes"]]
        ys = [r["modes"][mode]["recall"] for r in result["homes"] if mode in r["modes"]]
        ax.scatter(xs, ys, s=18, alpha=0.5, color=colours.get(mode))
        m = result["modes"][mode]
        if m["recall"] is not None:
            ax.scatter([m["false_alarms_per_hour"]], [m["recall"]], s=120, marker="*", color=colours.get(mode),
                       label=f"{mode} (median)")
    ax.axvline(0.5, color="k", lw=0.6, ls=":")
    ax.axhline(0.95, color="k", lw=0.6, ls=":")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("false alarms per hour (weeks after enrolment)")
    ax.set_ylabel("recall of the home's dog")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{len(result['homes'])} simulated homes: one dot per home, stars the medians")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="The home benchmark: enrolment through the real commands, in "
                                 "simulated homes (see the module docstring).")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with a manifest.jsonl")
    ap.add_argument("--holdout", default=None, help="use only these recordings (a holdout file), or 'none' "
                    "(default: benchmarks/holdout.txt with the default --data, else none)")
    ap.add_argument("--homes", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "home")
    ap.add_argument("--labels-budget", type=int, default=60, help="most labelling decisions per home")
    ap.add_argument("--label-order", default="score", choices=("score", "time"),
                    help="the order the owner labels in (label --order): score, label's default, or time")
    ap.add_argument("--margin", default="centre", choices=("centre", "none"),
                    help="calibrate --margin: centre, its default, or none")
    ap.add_argument("--day-minutes", type=float, default=60.0, help="length of the enrolment day's recording")
    ap.add_argument("--quiet-minutes", type=float, default=60.0, help="length of the home's hour with no "
                    "barking, for calibrate")
    ap.add_argument("--after-minutes", type=float, default=90.0, help="length of the weeks after, scored")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--train-args", default="", help="more `train` options for the enrolled model, e.g. "
                    "--train-args=--onset-windows (one string, after '=')")
    ap.add_argument("--jobs", type=int, default=2, help="homes run at once (one CPU thread each)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        modes = [m for m in a.modes.split(",") if m]
        unknown = sorted(set(modes) - set(MODES))
        if unknown:
            raise HomeError(f"--modes {unknown[0]}: choose from {', '.join(MODES)}")
        if a.homes < 1 or a.jobs < 1 or a.labels_budget < 1:
            raise HomeError("--homes, --jobs and --labels-budget must be 1 or more")
        holdout = a.holdout or (str(DEFAULT_HOLDOUT) if a.data.resolve() == DEFAULT_DATA.resolve() else "none")
        clips = H.read_manifest(a.data) if holdout == "none" else H.held_out_clips(a.data, Path(holdout))
        load = H.clip_loader(a.data)
        clips = [c for c in clips if H.clip_stats(load(c.file)) is not None]
        plans = plan_homes(clips, a.homes, a.seed)
        a.out.mkdir(parents=True, exist_ok=True)
        from tqdm import tqdm

        rows = []
        clock = time.perf_counter()
        with ProcessPoolExecutor(max_workers=a.jobs) as pool, \
                tqdm(total=len(plans), unit="home", desc="homes", dynamic_ncols=True) as bar:
            futures = [pool.submit(run_home, p, a.data, a.out, a.day_minutes, a.quiet_minutes, a.after_minutes,
                                   a.seed, a.labels_budget, modes, a.label_order, a.margin, a.train_args.split())
                       for p in plans]
            for future in as_completed(futures):
                rows.append(future.result())
                bar.update(1)
        rows.sort(key=lambda r: r["home"])
    except (HomeError, H.BenchError) as e:
        print(f"home.py: {e}", file=sys.stderr)
        return 2
    result = {"data": str(a.data), "holdout": holdout, "seed": a.seed, "homes_count": len(rows),
              "labels_budget": a.labels_budget, "label_order": a.label_order, "margin": a.margin,
              "train_args": a.train_args, "day_minutes": a.day_minutes, "quiet_minutes": a.quiet_minutes,
              "after_minutes": a.after_minutes,
              "calibrate_budget_per_hour": BUDGET_PER_HOUR, "model": str(DEFAULT_MODEL.relative_to(REPO)),
              "wall_s": round(time.perf_counter() - clock, 1), "jobs": a.jobs,
              "modes": medians(rows, modes), "homes": rows}
    (a.out / "results.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (a.out / "results.md").write_text(table(result), encoding="utf-8")
    plot(result, a.out / "home.png")
    print(table(result))
    print(f"{len(rows)} homes in {result['wall_s']:.0f} s; {a.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
