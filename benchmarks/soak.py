"""The long run: hours of audio through the live path at full speed, watching memory and file descriptors.

    python benchmarks/soak.py [--hours 24] [--every-min 5] [--clips-mb 5] [--model models/default.pt]
                              [--out runs/soak.json]

``listen``'s own pieces, together: the ``Listener`` (engine, tracker, worker thread), the service's
``Outputs`` (the daily event log, the clip recorder with its child-process encoder and quota, the state
file), fed from a source that hands over audio as fast as the worker takes it instead of a microphone. The
audio loops the shipped example (60 s, 5 barks over everyday sounds) once every ``--every-min`` minutes,
with a room's pink noise at -50 dBFS between (scored, not gated), so a day holds 1,440 barks at the default.

Every few seconds it samples the process's resident memory (VmRSS) and open file descriptors, by the hour
of audio. It prints JSON: the RSS after the first hour (the warm-up: torch's allocator, the model, the
history) and at the end, the growth between, descriptors at both, the events the listener raised and the
``bark`` records found in the log files, and the clips kept against the quota. The targets (issue 20): for
24 hours, growth <= 10 MB after the first hour, no descriptor growth, every event in the log, the quota held.
The records' times run ahead of the wall clock as the audio does; everything is written under a temporary
folder that is removed at the end.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from barkwatch.config import ClipsConfig, EventsConfig  # noqa: E402
from barkwatch.detection.audio import load_audio  # noqa: E402
from barkwatch.detection.detector import Detector  # noqa: E402
from barkwatch.live.listener import Listener  # noqa: E402
from barkwatch.service.eventlog import EventFolder  # noqa: E402
from barkwatch.service.outputs import Outputs  # noqa: E402
from barkwatch.service.systemd import state_path  # noqa: E402

RATE = 22050
EXAMPLE = REPO / "samples" / "example.ogg"
NOISE_DBFS = -50.0


def pink_noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """Pink noise (1/f power, shaped in the frequency domain) at ``dbfs`` RMS."""
    n = int(seconds * RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum, n)
    return (noise / np.sqrt(np.mean(noise ** 2)) * 10 ** (dbfs / 20)).astype(np.float32)


class LoopedRecording:
    """An ``AudioSource`` with no clock: ``read_indexed`` returns the next block at once, so the listener
    runs as fast as it can. The audio: ``example`` then room noise, repeated every ``every_s``, for
    ``total_s``."""

    channels = 1
    overruns = 0
    samplerate = RATE

    def __init__(self, example: np.ndarray, every_s: float, total_s: float, blocksize: int = 1024):
        noise = pink_noise(10.0, NOISE_DBFS)
        gap = int(every_s * RATE) - len(example)
        if gap < 0:
            raise SystemExit(f"soak: --every-min must be at least the example's {len(example) / RATE:.0f} s")
        self.cycle = np.concatenate([example, np.tile(noise, math.ceil(gap / len(noise)))[:gap]])
        self.total = int(total_s * RATE)
        self.blocksize = blocksize
        self.position = 0

    @property
    def ended(self) -> bool:
        return self.position >= self.total

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.position = self.total

    def read(self, timeout: float | None = None) -> np.ndarray:
        return self.read_indexed(timeout)[1]

    def read_indexed(self, timeout: float | None = None, min_frames: int = 1) -> tuple[int, np.ndarray]:
        first = self.position
        n = min(max(min_frames, self.blocksize), self.total - first)
        at = first % len(self.cycle)
        block = np.take(self.cycle, np.arange(at, at + n), mode="wrap")
        self.position += n
        return first, block[:, None]


class LoopOpener:
    name = "soak"
    reconnects = False
    resync_s = math.inf  # the audio runs ahead of the wall clock on purpose

    def __init__(self, source: LoopedRecording):
        self.source = source

    def open(self, again: bool) -> LoopedRecording:
        return self.source

    def describe(self, source) -> str:
        return "a looped recording at full speed"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settled_fds(most: int, timeout_s: float = 10.0) -> int:
    """Open descriptors once no more than ``most`` are open, or the fewest seen within ``timeout_s``."""
    fewest, until = open_fds(), time.monotonic() + timeout_s
    while fewest > most and time.monotonic() < until:
        time.sleep(0.05)
        fewest = min(fewest, open_fds())
    return fewest


def bark_records(events_dir: Path) -> int:
    return sum(json.loads(line)["event"] == "bark" for f in sorted(events_dir.glob("*.jsonl"))
               for line in f.read_text().splitlines() if line.strip())


def soak(hours: float, every_min: float, clips_mb: float, model: str | None, progress: bool = True) -> dict:
    detector = Detector.load(model, threads=1)
    example = load_audio(EXAMPLE, RATE)
    source = LoopedRecording(example, every_min * 60, hours * 3600)
    with tempfile.TemporaryDirectory(prefix="barkwatch-soak-") as tmp:
        root = Path(tmp)
        clips = ClipsConfig(max_total_mb=clips_mb, max_age_days=0)
        outputs = Outputs(event_log=EventFolder(root / "events", EventsConfig()), clips_dir=root / "clips",
                          clips_settings=clips, state_file=state_path(root), device="soak",
                          model=detector.model.path.name)
        listener = Listener(LoopOpener(source), detector, on_record=outputs.record, hooks=outputs)
        outputs.stats = listener.stats
        samples: list[tuple[float, float, int]] = []  # (audio hours, RSS MB, open descriptors)
        began = time.perf_counter()
        listener.start()
        from tqdm import tqdm

        with tqdm(total=round(hours, 3), unit="h", desc="soak", disable=None if progress else True) as bar:
            while not listener.wait(2.0):
                done_h = source.position / RATE / 3600
                samples.append((done_h, rss_mb(), open_fds()))
                bar.update(round(done_h - bar.n, 3))
        wall_s = time.perf_counter() - began
        # The end, before closing the outputs. The clip writer's encoder holds three pipes while it runs and
        # at full speed it is still catching up, so its descriptors settle first: a leak never does.
        warm = next((s for s in samples if s[0] >= min(1.0, hours / 2)), None)
        samples.append((hours, rss_mb(), settled_fds(most=warm[2] if warm else open_fds())))
        outputs.close()  # waits for the clips still being written
        warm = warm or samples[-1]
        files, size = outputs._clips.usage() if outputs._clips is not None else (0, 0)
        clip_bytes = sum(p.stat().st_size for p in (root / "clips").rglob("*") if p.is_file())
        result = {
            "hours": hours, "every_min": every_min, "model": detector.model.path.name,
            "wall_s": round(wall_s, 1), "speed_x_real_time": round(hours * 3600 / wall_s, 1),
            "rss_mb_after_warmup": round(warm[1], 1), "rss_mb_at_end": round(samples[-1][1], 1),
            "rss_growth_mb": round(samples[-1][1] - warm[1], 1),
            "rss_mb_max": round(max(s[1] for s in samples), 1),
            "fds_after_warmup": warm[2], "fds_at_end": samples[-1][2],
            "events_raised": listener.stats.events, "bark_records_in_log": bark_records(root / "events"),
            "clips_kept": files, "clips_mb_on_disk": round(clip_bytes / 1e6, 2), "clips_quota_mb": clips_mb,
            "clips_written": outputs._clips.stats.written if outputs._clips is not None else 0,
            "clips_deleted": outputs._clips.stats.deleted if outputs._clips is not None else 0,
            # At full speed barks come faster than in any home: past 8 waiting for the encoder, one is skipped.
            "clips_skipped": outputs._clips.stats.skipped if outputs._clips is not None else 0,
            "error": listener.error,
            "samples": [(round(h, 3), round(r, 1), n) for h, r, n in samples[:: max(1, len(samples) // 200)]],
        }
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=24.0, help="hours of audio (default 24)")
    ap.add_argument("--every-min", type=float, default=5.0, help="the example (5 barks) once every this many "
                    "minutes (default 5)")
    ap.add_argument("--clips-mb", type=float, default=5.0, help="the clip quota (default 5 MB)")
    ap.add_argument("--model", default=None, help="model file (default: the shipped one)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    a = ap.parse_args(argv)
    if not a.hours > 0:
        ap.error("--hours must be > 0")
    result = soak(a.hours, a.every_min, a.clips_mb, a.model)
    text = json.dumps(result, indent=1)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    ok = (result["rss_growth_mb"] <= 10 and result["fds_at_end"] <= result["fds_after_warmup"]
          and result["events_raised"] == result["bark_records_in_log"]
          and result["clips_mb_on_disk"] <= a.clips_mb and not result["error"])
    print("soak: " + ("targets met" if ok else "TARGETS MISSED"), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
