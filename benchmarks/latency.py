"""Live latency: from a bark's onset to its ``bark_start`` line on disk, through a real capture device.

    python benchmarks/latency.py [--audio samples/example.ogg --truth samples/example.json] [--repeat 1]
                                 [--samplerate file|device|HZ] [--out FILE.json] [-- LISTEN OPTIONS...]

It starts the tests' virtual microphone (``tests/vmic.py``: a private PulseAudio server, so it needs
``pulseaudio``, ``pulseaudio-utils`` and ``libasound2-plugins``), runs ``barkwatch listen --device vmic
--events FILE`` in a subprocess, plays the recording into the microphone in real time with ``paplay``
(``--repeat`` times, 3 s apart), and watches the events file, noting the wall-clock time at which each line
appears. The truth is a JSON file in the format of ``samples/example.json`` (``benchmarks/household.py
build`` writes one, ``truth.json``, beside each mix it builds): each bark's clip ``start_s``, ``onset_s`` and
``offset_s`` in the recording.

A ``bark_start`` belongs to a bark when the event it opens starts between the bark's clip start less one
window and the bark's offset (the event's first window holds some of the bark): the first such line finds
the bark; any other ``bark_start`` is a false start. For each bark found:

- latency = when its line was on disk - (when playback started + the bark's onset);
- of which the detector's own delay is ``detected`` (the end of the window that confirmed the event, from the
  record: stream start + ``detected_offset_s``) - onset: the window length and the patience;
- and the rest, line on disk - ``detected``, is capture, buffering, scoring and writing.

Playback start is taken just before ``paplay`` is started, so its own start-up (measured at 12-19 ms on the
development machine) is counted in the latency: the figures err on the late side.

Prints a summary (median, 95th percentile and maximum) with the machine's load; ``--out`` writes every
figure and each bark's numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Sequence

import numpy as np

from vmic import VirtualMic, missing_programs  # beside this script

REPO = Path(__file__).resolve().parents[1]

TAIL_S = 3.0  # after each playback: long enough for the last event to be confirmed


class LineWatcher:
    """Polls a file every 2 ms and notes the wall-clock time each new complete line appeared."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        pending = ""
        offset = 0
        while not self._stop.is_set():
            try:
                with open(self.path, encoding="utf-8") as f:
                    f.seek(offset)
                    chunk = f.read()
                    offset = f.tell()
            except FileNotFoundError:
                chunk = ""
            if chunk:
                seen = time.time()
                *complete, pending = (pending + chunk).split("\n")
                self.lines += [(seen, line) for line in complete if line]
            self._stop.wait(0.002)

    def stop(self) -> list[tuple[float, str]]:
        self._stop.set()
        self._thread.join()
        return self.lines


def load_truth(path: Path) -> list[dict]:
    truth = json.loads(path.read_text())
    return sorted(truth["barks"], key=lambda b: b["onset_s"])


def match(barks: list[dict], plays: list[float], starts: list[tuple[float, dict]], window_s: float) -> dict:
    """Each bark of each playback and the first ``bark_start`` in its zone; the rest are false starts."""
    found, missed, used = [], [], set()
    for p, played in enumerate(plays):
        for bark in barks:
            zone = (played + bark["start_s"] - window_s, played + bark["offset_s"])
            hit = next((i for i, (_, r) in enumerate(starts)
                        if i not in used and zone[0] <= _wall(r["start"]) <= zone[1]), None)
            if hit is None:
                missed.append({"play": p, "onset_s": bark["onset_s"]})
                continue
            used.add(hit)
            seen, record = starts[hit]
            onset = played + bark["onset_s"]
            detected = _wall(record["start"]) - record["offset_s"] + record["detected_offset_s"]
            found.append({"play": p, "onset_s": bark["onset_s"], "latency_s": seen - onset,
                          "detector_s": detected - onset, "pipeline_s": seen - detected,
                          "event_start_minus_onset_s": _wall(record["start"]) - onset,
                          "peak_score": record["peak_score"]})
    false_starts = [{"start": r["start"], "peak_score": r["peak_score"]}
                    for i, (_, r) in enumerate(starts) if i not in used]
    return {"found": found, "missed": missed, "false_starts": false_starts}


def _wall(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    a = np.asarray(values)
    return {"n": len(a), "median_s": round(float(np.median(a)), 3), "p95_s": round(float(np.percentile(a, 95)), 3),
            "max_s": round(float(a.max()), 3), "min_s": round(float(a.min()), 3)}


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cores": os.cpu_count(), "cpu": cpu or platform.processor(), "load_average": os.getloadavg()}


def run(audio: Path, truth_path: Path, repeat: int, samplerate: str, listen_args: Sequence[str],
        timeout_s: float) -> dict:
    import soundfile as sf

    from barkwatch.model import modelfile

    info = sf.info(str(audio))
    barks = load_truth(truth_path)
    model_path = next((listen_args[i + 1] for i, a in enumerate(listen_args[:-1]) if a == "--model"),
                      str(modelfile.DEFAULT_MODEL))
    if model_path.endswith(".onnx"):
        from barkwatch.model.onnxrt import load_onnx

        window_s = float(load_onnx(model_path).metadata["window_s"])
    else:
        window_s = float(modelfile.read_metadata(model_path)["window_s"])
    load_before = os.getloadavg()
    with VirtualMic(rate=info.samplerate, channels=1) as mic, tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.jsonl"
        rate_args = {"device": [], "file": ["--samplerate", str(info.samplerate)]}.get(samplerate,
                                                                                     ["--samplerate", samplerate])
        command = [sys.executable, "-m", "barkwatch", "listen", "--device", mic.name, "--events", str(events),
                   *rate_args, *listen_args]
        err_path = Path(tmp) / "listen.stderr"
        with open(err_path, "w") as err:
            proc = subprocess.Popen(command, cwd=REPO, env=mic.env(), stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + timeout_s
            while "listening to" not in err_path.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"barkwatch listen did not start:\n{err_path.read_text()[-2000:]}")
                time.sleep(0.02)
            watcher = LineWatcher(events)
            plays = []
            for _ in range(repeat):
                plays.append(time.time())
                player = mic.play(audio)
                if player.wait(timeout=info.duration + 60) != 0:
                    raise SystemExit(f"paplay failed: {player.stderr.read().decode(errors='replace')}")
                time.sleep(TAIL_S)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            lines = watcher.stop()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        listen_log = err_path.read_text()
    starts = [(seen, r) for seen, r in ((s, json.loads(line)) for s, line in lines) if r["event"] == "bark_start"]
    result = match(barks, plays, starts, window_s)
    found = result["found"]
    return {
        "audio": str(audio), "truth": str(truth_path), "repeat": repeat, "barks": len(barks) * repeat,
        "found": len(found), "missed": len(result["missed"]), "false_starts": len(result["false_starts"]),
        "latency": summary([f["latency_s"] for f in found]),
        "detector": summary([f["detector_s"] for f in found]),
        "pipeline": summary([f["pipeline_s"] for f in found]),
        "listen_command": " ".join(["barkwatch", *command[3:5], "vmic", "--events", "FILE", *rate_args,
                                    *listen_args]),
        "machine": dict(machine(), load_average_before=load_before),
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "per_bark": found, "missed_barks": result["missed"], "false_start_records": result["false_starts"],
        "listen_stderr": listen_log[-2000:],
    }


def describe(r: dict) -> str:
    def line(name: str, s: dict) -> str:
        if not s.get("n"):
            return f"{name:<34} n/a"
        return (f"{name:<34} median {s['median_s']:.3f} s, 95th percentile {s['p95_s']:.3f} s, "
                f"max {s['max_s']:.3f} s (n = {s['n']})")

    m = r["machine"]
    return "\n".join([
        f"{r['audio']} played {r['repeat']} time(s) into the virtual microphone: {r['found']} of {r['barks']} barks "
        f"found, {r['false_starts']} false start(s)",
        line("onset -> bark_start on disk", r["latency"]),
        line("  of which detector (window+patience)", r["detector"]),
        line("  of which capture+scoring+writing", r["pipeline"]),
        f"listen: {r['listen_command']}",
        f"machine: {m['cores']} cores ({m['cpu']}), load average {m['load_average_before'][0]:.2f} before, "
        f"{m['load_average'][0]:.2f} after",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    listen_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, listen_args = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--audio", type=Path, default=REPO / "samples" / "example.ogg")
    parser.add_argument("--truth", type=Path, default=REPO / "samples" / "example.json")
    parser.add_argument("--repeat", type=int, default=1, help="play the recording this many times (default 1)")
    parser.add_argument("--samplerate", default="file", help="capture rate: 'file' (the recording's rate, "
                        "the default: audio arrives sample for sample), 'device' (the device's default) or Hz")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for listen to start")
    parser.add_argument("--out", type=Path, help="write the figures and each bark's numbers to this JSON file")
    args = parser.parse_args(argv)
    if missing := missing_programs():
        print(f"latency: needs {', '.join(missing)} (apt-get install pulseaudio pulseaudio-utils "
              "libasound2-plugins, or scripts/setup --tests)", file=sys.stderr)
        return 2
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    result = run(args.audio, args.truth, args.repeat, args.samplerate, listen_args, args.timeout)
    print(describe(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
