"""All of barkwatch's speed benchmarks in one run, with the quality figures beside them.

    python benchmarks/run.py [--quick] [--out benchmarks/results] [--only NAME,...] [--models M,...]

writes ``results.json`` (every figure, the machine, the settings) and ``results.md`` (Markdown tables ready to
paste into the README) to ``--out``, both rewritten after each benchmark so an interrupted run keeps what it
measured. A benchmark that fails is recorded as an error and the others still run (exit code 1).

Benchmarks (``--only`` takes these names; the default is all but ``training``; a ``.pt`` model runs on torch
and an ``.onnx`` one on ONNX Runtime, named with ``--runtime``, whatever ``auto`` would choose):

- ``network``: the scorer's cost per window (log-mel features included, as exported): the presets seed, small,
  pooled and medium built fresh with random weights (cost does not depend on them) on 1 s windows and scripted
  as ``modelfile.save`` scripts them, the log-mel features alone, and each ``--models`` file (an ``.onnx``
  file on ONNX Runtime, through ``OnnxModel.forward``: its numpy STFT included); batch 1 and 8,
  one subprocess per thread count (1 and 2), under ``torch.inference_mode``, warm-up calls first. Ratios are
  to the seed preset's figure for the same batch and threads in the same run.
- ``detect``: ``barkwatch detect`` on a long recording (below) in a subprocess, end to end (start-up
  included): times real time, CPU, peak RSS and the share of windows the energy gate kept from the network; with
  1 thread and with one per core, each at the default gate and with the gate off (``--gate=-200``, the worst
  case: every window scored).
- ``listen``: ``barkwatch listen --device file:REC --threads 1`` in a subprocess (``file:`` plays in real
  time): CPU seconds per second of audio, from the child's utime + stime in ``/proc/PID/stat`` read at fixed
  intervals once audio has flowed for a few seconds (so start-up is not counted); its peak RSS; and the time from
  starting the process to its "listening to" line (model loaded, first audio in).
- ``startup``: ``import torch``, ``import barkwatch.cli`` and ``barkwatch detect`` on a 1 s file, each a fresh
  process timed end to end, with its peak RSS.
- ``latency``: ``benchmarks/latency.py`` (bark onset to its ``bark_start`` line on disk, through the virtual
  microphone), skipped with a note when PulseAudio is missing.
- ``training``: ``barkwatch train`` with the default model's recipe (``models/README.md``) on the development
  set, ``OMP_NUM_THREADS=1`` as there; ``--quick``: 1 epoch on ``samples/dog`` and ``samples/other``.
- ``quality``: per ``--models`` file, the clip ROC AUC on the held-out clips (``benchmarks/holdout.txt``) and,
  at the model's threshold on the 90-minute household mix, events and false alarms per hour and recall. Taken
  from an earlier ``household.py evaluate --out`` JSON of the same file (same SHA-256) on the same mix when one is
  in ``runs/`` or ``--out``; else, with the development set, that evaluation is run (``--threads 1``; minutes for
  a small model, half an hour for the notebook's); ``--quick`` without one scores only the held-out recordings
  that are in ``samples/`` and leaves the mix to the quality table.

The long recording is ``runs/household/household.wav`` (90 minutes, ``household.py build`` seed 0) where it
exists, else ``samples/example.ogg`` repeated to 10 minutes; ``--quick`` uses ``samples/example.ogg`` (1 minute)
itself. Every figure is the median of n runs (or timed calls, or intervals), with the minimum, maximum and
quartiles; ``--quick`` makes n small and the recordings short: a smoke test, not a measurement. Child
processes inherit this one's niceness; run it on a quiet machine (the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's barkwatch, installed or not (the network worker needs it too)
EXAMPLE = REPO / "samples" / "example.ogg"
HOUSEHOLD_MIX = REPO / "runs" / "household"  # household.py build --holdout benchmarks/holdout.txt, seed 0
HOLDOUT = REPO / "benchmarks" / "holdout.txt"
DEV_DATA = REPO.parent / "shared" / "data" / "barks-dev"  # where models/README.md trained the default
DEFAULT_MODEL = REPO / "models" / "default.pt"
NOTEBOOK_MODEL = REPO / "runs" / "notebook-3s.pt"  # the notebook's configuration (seed preset, 3 s windows)

PRESET_NAMES = ("seed", "small", "pooled", "medium")
NETWORK_THREADS = (1, 2)
BATCHES = (1, 8)
LIVE_HOP_S = 0.25  # what listen scores: four windows a second


@dataclass(frozen=True)
class Context:
    """What every benchmark gets: the mode, the model files, and a scratch folder removed at the end."""

    quick: bool
    models: tuple[Path, ...]
    out: Path
    scratch: Path

    def runs(self, full: int, quick: int) -> int:
        return quick if self.quick else full


# --- Figures and processes ---------------------------------------------------------------------------------

def stats(values: Sequence[float], digits: int = 3) -> dict:
    """Median, extremes and quartiles of ``values``, rounded; ``{"n": 0}`` for none."""
    import numpy as np

    if not len(values):
        return {"n": 0}
    a = np.asarray(values, dtype=np.float64)
    q1, median, q3 = np.percentile(a, [25, 50, 75])
    return {"n": len(a), "median": round(float(median), digits), "min": round(float(a.min()), digits),
            "max": round(float(a.max()), digits), "q1": round(float(q1), digits), "q3": round(float(q3), digits)}


def progress(name: str, message: str) -> None:
    print(f"[{name}] {message}", file=sys.stderr, flush=True)


# Runs each measured command and reports its own rusage. A child's peak RSS starts at its parent's (Linux counts
# the parent's pages the child shared until exec), so the command must come from a small process: this
# launcher (a bare interpreter, about 10 MB), not this script, which holds numpy and at times torch.
LAUNCHER = """
import json, os, sys, time
result, command = sys.argv[1], sys.argv[2:]
began = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process
pid = os.posix_spawn(command[0], command, os.environ)
with open(result + ".pid", "w") as f:
    f.write(f"{pid} {began!r}")
_, status, usage = os.wait4(pid, 0)
wall = time.monotonic() - began
with open(result, "w") as f:
    json.dump({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
               "returncode": os.waitstatus_to_exitcode(status)}, f)
"""

_children = 0


def run_child(ctx: Context, command: Sequence[str], timeout_s: float, env: dict | None = None,
              during: Callable[[int, float, Path], dict] | None = None) -> dict:
    """Run ``command`` (its first item an absolute path) in the repository through the launcher and measure
    it: wall seconds from its start to its exit, CPU seconds (user + system, its threads and children) and peak
    RSS (MB). Its stdout and stderr go to files in the scratch folder and their text is returned;
    ``during(pid, started, stderr_path)`` runs while the command does (``started``: ``time.monotonic()`` at its
    start), and what it returns is added. Raises TimeoutError past ``timeout_s`` (the command is killed) and
    RuntimeError on a non-zero exit status."""
    global _children
    _children += 1
    base = ctx.scratch / f"child{_children}"
    result, pid_path, err_path = base.with_suffix(".json"), base.with_suffix(".json.pid"), base.with_suffix(".err")
    with open(base.with_suffix(".out"), "wb") as out, open(err_path, "wb") as err:
        launcher = subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER, str(result), *map(str, command)],
                                    cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    deadline = time.perf_counter() + timeout_s
    pid = None
    try:
        while pid is None:
            if launcher.poll() is not None:
                raise RuntimeError(f"the launcher failed: {err_path.read_text(errors='replace')[-1500:]}")
            fields = pid_path.read_text().split() if pid_path.is_file() else []
            if len(fields) == 2:  # else not written yet
                pid, started = int(fields[0]), float(fields[1])
            time.sleep(0.002)
        extra = during(pid, started, err_path) if during is not None else {}
        launcher.wait(timeout=max(deadline - time.perf_counter(), 1.0))
    except BaseException as e:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        launcher.kill()
        launcher.wait()
        if isinstance(e, subprocess.TimeoutExpired):
            raise TimeoutError(f"{' '.join(map(str, command[:5]))} ...: no exit within {timeout_s:.0f} s") from None
        raise
    measured = json.loads(result.read_text())
    measured["stdout"] = base.with_suffix(".out").read_text(errors="replace")
    measured["stderr"] = err_path.read_text(errors="replace")
    if measured["returncode"] != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} exited with {measured['returncode']}: "
                           f"{measured['stderr'].strip()[-1500:]}")
    return {**measured, **extra}


def barkwatch(*args: str) -> list[str]:
    """The command line of ``barkwatch ARGS`` from this checkout."""
    return [sys.executable, "-m", "barkwatch", *args]


def model_args(model: Path) -> list[str]:
    """``--model FILE --runtime R``: a ``.pt`` file is timed on torch and an ``.onnx`` file on ONNX Runtime,
    whatever ``auto`` would pick on this machine."""
    return ["--model", str(model), "--runtime", "onnx" if model.suffix == ".onnx" else "torch"]


def audio_seconds(path: Path) -> float:
    import soundfile as sf

    info = sf.info(str(path))
    return info.frames / info.samplerate


def long_recording(ctx: Context, quick_s: float = 60.0) -> tuple[Path, str]:
    """The recording ``detect`` and ``listen`` are measured on, and what it is, in words; ``--quick``: the
    first ``quick_s`` seconds of the example (all of it at 60)."""
    if ctx.quick and quick_s >= 60.0:
        return EXAMPLE, "samples/example.ogg (1 min, Ogg Vorbis)"
    if ctx.quick:
        import soundfile as sf

        path = ctx.scratch / f"example-{quick_s:g}s.wav"
        rate = sf.info(str(EXAMPLE)).samplerate
        audio, _ = sf.read(str(EXAMPLE), frames=int(quick_s * rate), dtype="float32")
        sf.write(str(path), audio, rate, subtype="PCM_16")
        return path, f"the first {quick_s:g} s of samples/example.ogg"
    mix = HOUSEHOLD_MIX / "household.wav"
    if mix.is_file():
        return mix, "runs/household/household.wav (90-minute household mix of the held-out recordings, seed 0)"
    path = ctx.scratch / "example-10min.wav"
    if not path.is_file():
        import numpy as np
        import soundfile as sf

        audio, rate = sf.read(str(EXAMPLE), dtype="float32")
        sf.write(str(path), np.tile(audio, 10), rate, subtype="PCM_16")
    return path, "samples/example.ogg repeated to 10 min (runs/household/household.wav was not there)"


def rel(path: Path | str) -> str:
    """``path`` relative to the repository, as the README writes paths (``../shared/...`` included)."""
    return os.path.relpath(os.path.abspath(path), REPO)  # abspath: models/default.pt is a link, keep its name


# --- The machine -------------------------------------------------------------------------------------------

def machine() -> dict:
    """What the figures were measured on: CPU, cores, memory, software, load and niceness. Without importing
    torch (seconds, and the network benchmark reports torch's default thread count)."""
    from importlib.metadata import version

    from barkwatch import __version__

    def first(path: str, key: str) -> str:
        try:
            return next(line.split(":", 1)[1].strip() for line in Path(path).read_text().splitlines()
                        if line.startswith(key))
        except (OSError, StopIteration):
            return ""

    memory_kb = (first("/proc/meminfo", "MemTotal").split() or [""])[0]  # "16377428 kB"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True)
    return {
        "cpu": first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(int(memory_kb) / 2**20, 1) if memory_kb else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": version("torch"),
        "barkwatch": __version__,
        "commit": (commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")) or None,
        "niceness": os.nice(0),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


# --- 1. Network cost per window -----------------------------------------------------------------------------

def bench_network(ctx: Context) -> dict:
    """ms per window of each preset, the features alone and each model file; one subprocess per thread count."""
    entries = [{"name": p, "preset": p, "window_s": 1.0} for p in PRESET_NAMES]
    entries.append({"name": "log-mel features only", "features": True, "window_s": 1.0})
    entries += [{"name": rel(m), "file": str(m)} for m in ctx.models]
    # As the engine scores a stream on ONNX Runtime: consecutive windows sharing their STFT frames.
    entries += [{"name": f"{rel(m)}, a stream's windows", "file": str(m), "stream": True}
                for m in ctx.models if m.suffix == ".onnx"]
    timing = ({"warmup": 1, "min_n": 1, "max_n": 1, "budget_s": 0.0} if ctx.quick
              else {"warmup": 5, "min_n": 10, "max_n": 50, "budget_s": 3.0})
    rows: dict[str, dict] = {}
    for threads in NETWORK_THREADS:
        progress("network", f"{threads} thread(s): {len(entries)} models, batches {BATCHES}")
        spec = {"threads": threads, "batches": list(BATCHES), "models": entries, **timing}
        child = run_child(ctx, [sys.executable, __file__, "--network-worker", json.dumps(spec)], timeout_s=1800)
        report = json.loads(child["stdout"].strip().splitlines()[-1])
        for row in report["rows"]:
            merged = rows.setdefault(row["name"], {k: v for k, v in row.items() if k != "ms_per_window"})
            merged.setdefault("ms_per_window", {}).update(row.get("ms_per_window", {}))
            if "error" in row:
                merged["error"] = row["error"]
    seed = rows.get("seed", {}).get("ms_per_window", {})
    for row in rows.values():
        cells = row.get("ms_per_window", {})
        row["ratio_to_seed"] = {k: round(v["median"] / seed[k]["median"], 3) for k, v in cells.items()
                                if k in seed and seed[k].get("median")}
        live = cells.get("batch1_threads1", {}).get("median")
        hop = row.get("hop_s") or LIVE_HOP_S
        # What listening costs in network time: one window every hop, scored alone, on one thread.
        row["live_core_share"] = round(live / 1000.0 / hop, 4) if live else None
    return {"rows": list(rows.values()), "timing": timing, "threads": list(NETWORK_THREADS),
            "torch_threads_default": report["torch_threads_default"],
            "batches": list(BATCHES), "input": "random noise at about -20 dBFS",
            "note": "presets: random weights, 1 s windows, features with the default parameters, scripted as "
                    "exported; cells are ms per window (a batch's time / its size) over n timed calls"}


def stream_scorer(model) -> Callable:
    """A callable that scores, for each call with a batch of ``B`` windows, the next ``B`` windows of a noise
    stream as the engine places and scores them on ONNX Runtime (``detection/engine.py``): on the STFT frame
    grid every hop, each frame computed once (``spectrum.StreamFrames``), then ``score_power``. The batch's
    own samples are ignored; only its size counts."""
    import numpy as np

    from barkwatch.detection.engine import frame_grid, window_start
    from barkwatch.model.spectrum import StreamFrames

    n, grid = model.window_samples, frame_grid(model)
    hop = float(model.metadata.get("hop_s", LIVE_HOP_S)) * model.sample_rate
    stream = (np.random.default_rng(0).standard_normal(64 * n) * 0.1).astype(np.float32)
    state: dict = {"k": 0, "frames": None}

    def score(x):
        starts = [window_start(state["k"] + i, hop, grid) for i in range(len(x))]
        if state["frames"] is None or starts[-1] + n > len(stream):  # start the stream over
            state["k"], state["frames"] = 0, StreamFrames(int(model.metadata["features"]["n_fft"]), grid, n)
            starts = [window_start(i, hop, grid) for i in range(len(x))]
        state["k"] += len(x)
        samples = np.stack([stream[s : s + n] for s in starts])
        return model.score_power(state["frames"].windows(starts, samples), samples)

    return score


def network_worker(spec: dict) -> None:
    """In a subprocess: time each model of ``spec`` at its thread count; print the rows as one JSON line."""
    import torch

    from barkwatch.model import modelfile
    from barkwatch.model.classifier import LinearClassifier
    from barkwatch.model.features import FeatureParams, Spectrogram, window_samples
    from barkwatch.model.vae import PRESETS, VAE
    from barkwatch.model.scorer import Scorer

    default_threads = torch.get_num_threads()
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    params = FeatureParams()
    rows = []
    for entry in spec["models"]:
        row = {"name": entry["name"]}
        try:
            if "file" in entry and entry["file"].endswith(".onnx"):
                from barkwatch.model.onnxrt import load_onnx

                loaded = load_onnx(entry["file"], threads=spec["threads"])
                n = loaded.window_samples

                if entry.get("stream"):
                    module = stream_scorer(loaded)
                else:
                    def module(x, model=loaded):  # the runtime's own forward: numpy STFT, then the graph
                        return model.forward(x.numpy())
                row.update(kind="model file, ONNX Runtime" + (", frames once per hop" if entry.get("stream") else ""),
                           preset=loaded.metadata.get("preset"),
                           window_s=loaded.metadata.get("window_s"), hop_s=loaded.metadata.get("hop_s"))
            elif "file" in entry:
                loaded = modelfile.load(entry["file"])
                module, n = loaded.module, loaded.window_samples
                row.update(kind="model file", preset=loaded.metadata.get("preset"),
                           window_s=loaded.metadata.get("window_s"), hop_s=loaded.metadata.get("hop_s"))
            else:
                n = window_samples(entry["window_s"], params.sample_rate)
                if entry.get("features"):
                    net = Spectrogram(params)
                    row.update(kind="features", window_s=entry["window_s"])
                else:
                    vae = VAE(PRESETS[entry["preset"]], params.n_mels, params.frames(n))
                    clf = LinearClassifier(mean=(0.0, 0.0), std=(1.0, 1.0), weight=(1.0, 1.0), bias=0.0,
                                           threshold=0.5, kind="logistic")
                    net = Scorer(Spectrogram(params), vae, n, clf)
                    row.update(kind="preset, random weights", preset=entry["preset"], window_s=entry["window_s"])
                with modelfile._quiet_torchscript():  # as modelfile.save scripts it
                    module = torch.jit.script(net.eval().requires_grad_(False))
            row["parameters"] = (sum(p.numel() for p in module.parameters()) if hasattr(module, "parameters")
                                 else loaded.metadata.get("parameters"))
            row["ms_per_window"] = {}
            for batch in spec["batches"]:
                x = torch.randn(batch, n) * 0.1
                times = []
                with torch.inference_mode():
                    for _ in range(spec["warmup"]):  # TorchScript optimises on the first calls of each shape
                        module(x)
                    began = time.perf_counter()
                    while len(times) < spec["max_n"] and (len(times) < spec["min_n"]
                                                          or time.perf_counter() - began < spec["budget_s"]):
                        t = time.perf_counter()
                        module(x)
                        times.append((time.perf_counter() - t) * 1000.0 / batch)
                row["ms_per_window"][f"batch{batch}_threads{spec['threads']}"] = stats(times)
        except Exception as e:  # one model that fails must not hide the others' figures
            row["error"] = f"{type(e).__name__}: {e}"
        rows.append(row)
    print(json.dumps({"rows": rows, "torch_threads_default": default_threads}))


# --- 2. detect throughput ------------------------------------------------------------------------------------

GATE_LINE = re.compile(r"\((\d+) of (\d+) windows below the gate\)")


def bench_detect(ctx: Context) -> dict:
    """``barkwatch detect`` end to end on the long recording: 1 thread and one per core, gate on and off."""
    audio, described = long_recording(ctx, quick_s=10.0)
    model = ctx.models[0]
    seconds = audio_seconds(audio)
    cores = os.cpu_count() or 1
    n = ctx.runs(3, 1)
    settings = []
    for gate in (None, -200.0):
        for threads in sorted({1, cores}):
            runs = []
            for i in range(n):
                progress("detect", f"{threads} thread(s), gate {'off' if gate else 'on'}, run {i + 1} of {n}")
                args = [str(audio), *model_args(model), "--threads", str(threads)]
                args += [f"--gate={gate:g}"] if gate is not None else []
                runs.append(run_child(ctx, barkwatch("detect", *args), timeout_s=max(600.0, seconds)))
            gated = [GATE_LINE.search(r["stdout"]) for r in runs]
            settings.append({
                "threads": threads, "gate_dbfs": gate if gate is not None else -60.0,
                "x_real_time": stats([seconds / r["wall_s"] for r in runs], 1),
                "wall_s": stats([r["wall_s"] for r in runs], 2),
                "cpu_s_per_audio_s": stats([r["cpu_s"] / seconds for r in runs], 4),
                "peak_rss_mb": stats([r["peak_rss_mb"] for r in runs], 1),
                "windows": int(gated[0].group(2)) if gated[0] else None,
                # The summary line says how many windows the gate kept from the network.
                "gated_share": round(int(gated[0].group(1)) / int(gated[0].group(2)), 4) if gated[0] else None,
            })
    return {"audio": described, "audio_s": round(seconds, 1), "model": rel(model), "settings": settings,
            "note": "end to end, start-up included (see startup); gate off is --gate=-200: every window scored"}


# --- 3. listen: steady CPU, RSS, start-up --------------------------------------------------------------------

def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of all threads of ``pid`` so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def bench_listen(ctx: Context) -> dict:
    """CPU per second of audio of ``barkwatch listen --threads 1`` on a ``file:`` source, measured over
    intervals once audio flows; then SIGTERM, and its peak RSS."""
    audio, described = long_recording(ctx)
    model = ctx.models[0]
    settle_s, interval_s, intervals = (2.0, 2.0, 5) if ctx.quick else (5.0, 10.0, 6)
    if audio_seconds(audio) < settle_s + interval_s * intervals + 5.0:
        raise RuntimeError(f"{audio}: too short for {settle_s + interval_s * intervals:.0f} s of listening")

    def measure(pid: int, started: float, err_path: Path) -> dict:
        while "listening to" not in err_path.read_text(errors="replace"):  # logged when the first audio arrives
            if not Path(f"/proc/{pid}").exists() or time.monotonic() - started > 120:
                raise RuntimeError(f"listen did not start: {err_path.read_text(errors='replace')[-1500:]}")
            time.sleep(0.005)
        first_audio_s = time.monotonic() - started
        time.sleep(settle_s)  # past the first windows and any lazy initialisation
        marks = [(time.monotonic(), proc_cpu_s(pid))]
        for _ in range(intervals):
            time.sleep(interval_s)
            if not Path(f"/proc/{pid}").exists():
                raise RuntimeError(f"listen ended before the measurement did: {err_path.read_text()[-1500:]}")
            marks.append((time.monotonic(), proc_cpu_s(pid)))
        os.kill(pid, signal.SIGTERM)
        per_s = [(c1 - c0) / (t1 - t0) for (t0, c0), (t1, c1) in zip(marks, marks[1:])]
        return {"first_audio_s": first_audio_s, "cpu_per_audio_s": per_s}

    progress("listen", f"{settle_s + interval_s * intervals:.0f} s of {described}, real time")
    r = run_child(ctx, barkwatch("listen", "--device", f"file:{audio}", "--events", str(ctx.scratch / "listen.jsonl"),
                                 *model_args(model), "--threads", "1"),
                  timeout_s=settle_s + interval_s * intervals + 180, during=measure)
    overruns = re.search(r"(\d+) overrun", r["stdout"] + r["stderr"])
    return {"audio": described, "model": rel(model), "threads": 1,
            "cpu_s_per_audio_s": stats(r["cpu_per_audio_s"], 4),
            "interval_s": interval_s, "settle_s": settle_s,
            "peak_rss_mb": round(r["peak_rss_mb"], 1),
            "start_to_first_audio_s": round(r["first_audio_s"], 2),
            "overruns": int(overruns.group(1)) if overruns else None,
            "note": "a file: source plays in real time, so CPU seconds per wall second = per second of audio; "
                    "each interval's figure is the child's utime+stime difference / the interval"}


# --- 4. start-up ---------------------------------------------------------------------------------------------

def bench_startup(ctx: Context) -> dict:
    """Fresh processes timed end to end: the imports, and ``detect`` on a 1 s file (model load, one window)."""
    import soundfile as sf

    one_second = ctx.scratch / "one-second.wav"
    audio, rate = sf.read(str(EXAMPLE), frames=22050, dtype="float32")
    sf.write(str(one_second), audio, rate)
    commands = {
        "import torch": [sys.executable, "-c", "import torch"],
        "import barkwatch.cli": [sys.executable, "-c", "import barkwatch.cli"],
        "barkwatch detect (1 s file)": barkwatch("detect", str(one_second), *model_args(ctx.models[0]), "-q"),
    }
    n = ctx.runs(5, 2)
    rows = []
    for name, command in commands.items():
        progress("startup", f"{name}, {n} runs")
        runs = [run_child(ctx, command, timeout_s=300) for _ in range(n)]
        rows.append({"name": name, "wall_s": stats([r["wall_s"] for r in runs], 3),
                     "cpu_s": stats([r["cpu_s"] for r in runs], 3),
                     "peak_rss_mb": stats([r["peak_rss_mb"] for r in runs], 1)})
    return {"rows": rows, "model": rel(ctx.models[0])}


# --- 5. Detection delay through the virtual microphone --------------------------------------------------------

def bench_latency(ctx: Context) -> dict:
    """``benchmarks/latency.py`` on the shipped example; skipped when its PulseAudio programs are missing."""
    from vmic import missing_programs  # beside this script

    if missing := missing_programs():
        return {"skipped": f"needs {', '.join(missing)} (scripts/setup --tests installs them)"}
    repeat = ctx.runs(3, 1)
    out = ctx.scratch / "latency.json"
    progress("latency", f"samples/example.ogg played {repeat} time(s) into the virtual microphone")
    run_child(ctx, [sys.executable, str(REPO / "benchmarks" / "latency.py"), "--repeat", str(repeat), "--out",
                    str(out), "--", *model_args(ctx.models[0])],
              timeout_s=repeat * (audio_seconds(EXAMPLE) + 5) + 300)
    r = json.loads(out.read_text())
    return {k: r[k] for k in ("audio", "repeat", "barks", "found", "missed", "false_starts", "latency", "detector",
                              "pipeline", "listen_command")}


# --- 6. Training time ----------------------------------------------------------------------------------------

def bench_training(ctx: Context) -> dict:
    """``barkwatch train`` with the default model's recipe; quick: one epoch on the sample clips."""
    from barkwatch.model.modelfile import read_metadata

    if ctx.quick:
        data, extra, epochs = REPO / "samples", [], 1
    elif (DEV_DATA / "dog").is_dir():
        data, extra, epochs = DEV_DATA, ["--exclude-sources", HOLDOUT], 40
    else:
        raise RuntimeError(f"{DEV_DATA}: no development set; --quick trains on samples/ instead")
    out = ctx.scratch / "trained.pt"
    recipe = ["--preset", "small", "--window", "1", "--objective", "joint", "--epochs", str(epochs), *extra,
              "--device", "cpu"]
    progress("training", f"{epochs} epoch(s) at most on {rel(data)}")
    r = run_child(ctx, barkwatch("train", "--positives", str(data / "dog"), "--negatives", str(data / "other"),
                                 "--out", str(out), *recipe, "-q"),
                  timeout_s=4 * 3600, env=dict(os.environ, OMP_NUM_THREADS="1"))  # as models/README.md has it
    training = read_metadata(out).get("training", {})
    shown = [rel(x) if isinstance(x, Path) else x for x in recipe]
    return {"command": f"OMP_NUM_THREADS=1 barkwatch train --positives {rel(data / 'dog')} --negatives "
                       f"{rel(data / 'other')} --out M.pt " + " ".join(shown),
            "data": rel(data), "wall_s": round(r["wall_s"], 1), "cpu_s": round(r["cpu_s"], 1),
            "peak_rss_mb": round(r["peak_rss_mb"], 1), "epochs": training.get("epochs"),
            "training_seconds": training.get("seconds"), "runs": 1,
            "note": "one run (minutes to tens of minutes); wall includes reading and measuring the files"}


# --- 7. Quality beside speed ---------------------------------------------------------------------------------

def household_module():
    """``benchmarks/household.py`` as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("household", REPO / "benchmarks" / "household.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["household"] = module  # its dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def cached_evaluation(ctx: Context, sha256: str) -> Path | None:
    """An earlier ``household.py evaluate --out`` of this very file on the household mix, with clip figures."""
    for path in sorted([*(REPO / "runs").glob("**/*.json"), *ctx.out.glob("quality-*.json")]):
        try:
            r = json.loads(path.read_text(encoding="utf-8"))
            mix = Path(r["mix"]) if Path(r["mix"]).is_absolute() else REPO / r["mix"]
            if r["model"].get("sha256") == sha256 and "clips" in r and mix.resolve() == HOUSEHOLD_MIX.resolve():
                return path
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return None


def quality_from(evaluation: dict) -> dict:
    point = evaluation.get("at_model_threshold") or {}
    hours = evaluation["duration_s"] / 3600.0
    return {"clip_roc_auc": evaluation["clips"]["roc_auc"], "clips": f"{evaluation['clips']['positives']} barks, "
            f"{evaluation['clips']['negatives']} others: benchmarks/holdout.txt",
            "threshold": evaluation["model"].get("threshold"),
            "events_per_hour": round(point["events"] / hours, 1) if point else None,
            "false_alarms_per_hour": round(point["false_alarms_per_hour"], 1) if point else None,
            "recall": round(point["recall"], 3) if point else None,
            "mix": f"{evaluation['mix']} ({evaluation['duration_s'] / 60:.0f} min, {evaluation['barks']} barks)"}


def sample_clip_auc(ctx: Context, model_path: Path) -> dict:
    """Clip ROC AUC on the held-out recordings that are in ``samples/`` (``household.py``'s clip scoring)."""
    import numpy as np
    import torch

    from barkwatch.model import modelfile
    from barkwatch.training import metrics

    household = household_module()
    present = {c.source for c in household.read_manifest(REPO / "samples")}
    holdout = ctx.scratch / "holdout-in-samples.txt"
    held = household.read_holdout(HOLDOUT) & present
    holdout.write_text("".join(f"{s}\n" for s in sorted(held)))
    clips = household.held_out_clips(REPO / "samples", holdout)
    torch.set_num_threads(1)
    model = modelfile.load(model_path)
    scores = household.score_clips(REPO / "samples", clips, model, float(model.metadata.get("hop_s", 0.25)))
    labels = np.array([c.label == "dog" for c in clips])
    return {"clip_roc_auc": metrics.roc_auc(labels, scores), "threshold": model.threshold,
            "clips": f"{int(labels.sum())} barks, {int((~labels).sum())} others: the {len(held)} recordings of "
                     "benchmarks/holdout.txt in samples/",
            "events_per_hour": None, "mix": None}


def bench_quality(ctx: Context) -> dict:
    """Clip AUC and events per hour at the threshold for each model file, reused from earlier evaluations."""
    from barkwatch.model.modelfile import file_hash

    rows = []
    for model in ctx.models:
        row = {"model": rel(model), "sha256": file_hash(model)}
        try:
            cached = cached_evaluation(ctx, row["sha256"])
            if cached is None and not ctx.quick and (DEV_DATA / "manifest.jsonl").is_file():
                cached = ctx.out / f"quality-{model.stem}-{row['sha256']}.json"
                progress("quality", f"{rel(model)}: household.py evaluate (clips and the 90-minute mix)")
                run_child(ctx, [sys.executable, str(REPO / "benchmarks" / "household.py"), "evaluate", "--model",
                                str(model), "--mix", str(HOUSEHOLD_MIX), "--holdout", str(HOLDOUT), "--data",
                                str(DEV_DATA), "--threads", "1", "--out", str(cached)], timeout_s=4 * 3600)
            if cached is not None:
                progress("quality", f"{rel(model)}: from {rel(cached)}")
                row.update(quality_from(json.loads(cached.read_text(encoding="utf-8"))), source=rel(cached))
            else:
                progress("quality", f"{rel(model)}: held-out clips in samples/")
                row.update(sample_clip_auc(ctx, model), source="scored now")
        except Exception as e:  # one model's failure leaves the others' figures
            row["error"] = f"{type(e).__name__}: {e}"
        rows.append(row)
    return {"rows": rows}


BENCHMARKS: dict[str, Callable[[Context], dict]] = {
    "network": bench_network,
    "detect": bench_detect,
    "listen": bench_listen,
    "startup": bench_startup,
    "latency": bench_latency,
    "training": bench_training,
    "quality": bench_quality,
}
DEFAULT_SET = [name for name in BENCHMARKS if name != "training"]  # training takes minutes to an hour


# --- Markdown ------------------------------------------------------------------------------------------------

def cell(s: dict | None, unit: str = "", digits: int = 2) -> str:
    """``median (min-max)`` of a ``stats`` dict."""
    if not s or not s.get("n"):
        return "n/a"
    if s["n"] == 1:
        return f"{s['median']:.{digits}f}{unit}"
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def number(value, spec: str = ".2f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def md_network(r: dict) -> list[str]:
    keys = [f"batch{b}_threads{t}" for b in r["batches"] for t in r["threads"]]
    head = " | ".join(f"batch {b}, {t} thread{'s' * (t > 1)}" for b in r["batches"] for t in r["threads"])
    lines = [f"| model | window | parameters | {head} | vs seed (batch 1, 1 thread) | one core, live |",
             "|---|---|---|" + "---|" * (len(keys) + 2)]
    for row in r["rows"]:
        if "error" in row and not row.get("ms_per_window"):
            lines.append(f"| {row['name']} | | | error: {row['error']} |")
            continue
        ms = row["ms_per_window"]
        ratio = row["ratio_to_seed"].get("batch1_threads1")
        lines.append(f"| {row['name']} ({row.get('kind')}) | {number(row.get('window_s'), 'g', ' s')} | "
                     f"{row.get('parameters', 0):,} | " + " | ".join(cell(ms.get(k), "", 2) for k in keys)
                     + f" | {number(ratio, '.3f', 'x')} | {number(row.get('live_core_share'), '.1%')} |")
    n = sorted({c["n"] for row in r["rows"] for c in row.get("ms_per_window", {}).values()}) or [0]
    lines += ["", f"ms per window, median (min-max) of {n[0] if n[0] == n[-1] else f'{n[0]}-{n[-1]}'} timed call(s) after "
              f"{r['timing']['warmup']} warm-up call(s); {r['note']}. \"one core, live\": the share of one core the "
              "scorer takes scoring one window every hop (0.25 s) alone, on one thread."]
    return lines


def md_detect(r: dict) -> list[str]:
    lines = [f"`barkwatch detect` on {r['audio']}, model `{r['model']}`, end to end:", "",
             "| threads | gate | times real time | wall | CPU s per audio s | peak RSS | windows skipped by the gate |",
             "|---|---|---|---|---|---|---|"]
    for s in r["settings"]:
        gate = "off (-200 dBFS)" if s["gate_dbfs"] < -100 else f"{s['gate_dbfs']:g} dBFS"
        lines.append(f"| {s['threads']} | {gate} | {cell(s['x_real_time'], 'x', 0)} | {cell(s['wall_s'], ' s', 1)} "
                     f"| {cell(s['cpu_s_per_audio_s'], '', 4)} | {cell(s['peak_rss_mb'], ' MB', 0)} | "
                     f"{number(s['gated_share'], '.1%')} of {s['windows'] or 'n/a'} |")
    n = r["settings"][0]["wall_s"]["n"] if r["settings"] else 0
    return lines + ["", f"Median (min-max) of {n} run(s); start-up included."]


def md_listen(r: dict) -> list[str]:
    c = r["cpu_s_per_audio_s"]
    return [f"`barkwatch listen --device file:REC --threads 1`, model `{r['model']}`, REC {r['audio']}:", "",
            "| CPU s per s of audio | peak RSS | start to first audio | overruns |", "|---|---|---|---|",
            f"| {cell(c, '', 4)} | {r['peak_rss_mb']:.0f} MB | {r['start_to_first_audio_s']:.2f} s | "
            f"{number(r['overruns'], 'd')} |", "",
            f"CPU: median (min-max) of {c['n']} intervals of {r['interval_s']:g} s, from {r['settle_s']:g} s after "
            "the first audio."]


def md_startup(r: dict) -> list[str]:
    lines = ["| fresh process | wall | CPU | peak RSS |", "|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| `{row['name']}` | {cell(row['wall_s'], ' s', 2)} | {cell(row['cpu_s'], ' s', 2)} | "
                     f"{cell(row['peak_rss_mb'], ' MB', 0)} |")
    n = r["rows"][0]["wall_s"]["n"] if r["rows"] else 0
    return lines + ["", f"Median (min-max) of {n} runs; model `{r['model']}`."]


def md_latency(r: dict) -> list[str]:
    def s(x: dict) -> str:
        return (f"{x['median_s']:.2f} / {x['p95_s']:.2f} / {x['max_s']:.2f} s (n = {x['n']})" if x.get("n")
                else "n/a")

    return ["| recording | barks found | false starts | onset -> `bark_start` on disk: median / p95 / max | "
            "of which capture, scoring, writing |", "|---|---|---|---|---|",
            f"| `{Path(r['audio']).name}` x {r['repeat']} | {r['found']} of {r['barks']} | {r['false_starts']} | "
            f"{s(r['latency'])} | {s(r['pipeline'])} |"]


def md_training(r: dict) -> list[str]:
    return ["| command | wall | CPU | peak RSS | epochs |", "|---|---|---|---|---|",
            f"| `{r['command']}` | {r['wall_s']:.0f} s | {r['cpu_s']:.0f} s | {r['peak_rss_mb']:.0f} MB | "
            f"{r['epochs']} |"]


def md_quality(r: dict, network: dict | None) -> list[str]:
    live = {row["name"]: row for row in (network or {}).get("rows", [])}
    lines = ["| model | ms per window (batch 1, 1 thread) | clip ROC AUC (held-out) | threshold | events / h | "
             "false alarms / h | recall | from |", "|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        if "error" in row:
            lines.append(f"| `{row['model']}` | error: {row['error']} |")
            continue
        ms = live.get(row["model"], {}).get("ms_per_window", {}).get("batch1_threads1")
        lines.append(f"| `{row['model']}` | {cell(ms, '', 2) if ms else 'n/a'} | "
                     f"{number(row['clip_roc_auc'], '.3f')} ({row['clips']}) | {number(row['threshold'], '.3f')} | "
                     f"{number(row['events_per_hour'], '.1f')} | {number(row.get('false_alarms_per_hour'), '.1f')} | "
                     f"{number(row.get('recall'), '.2f')} | {row['source']} |")
    mixes = sorted({row["mix"] for row in r["rows"] if row.get("events_per_hour") is not None})
    lines.append("")
    if mixes:
        lines.append(f"Events, false alarms and recall at the model's own threshold on {'; '.join(mixes)}.")
    if any(row.get("events_per_hour") is None and "error" not in row for row in r["rows"]):
        lines.append("n/a: the household mix was not scored (--quick, or no development set); see the quality "
                     "table in the README.")
    return lines


def markdown(results: dict) -> str:
    m = results["machine"]
    b = results["benchmarks"]
    default_threads = b.get("network", {}).get("torch_threads_default")
    threads = f" ({default_threads} threads by default)" if default_threads else ""
    lines = [
        "# barkwatch benchmarks", "",
        f"{m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), {m['memory_gib']} GiB; {m['os']}; Python "
        f"{m['python']}, torch {m['torch']}{threads}; barkwatch "
        f"{m['barkwatch']} at {m['commit']}; load average {m['load_average_start'][0]:.2f} at the start, "
        f"{m.get('load_average_end', [float('nan')])[0]:.2f} at the end; niceness {m['niceness']}. "
        f"{results['started']}, {'--quick (a smoke test: few runs, short audio)' if results['quick'] else 'full run'}.",
    ]
    sections = [("network", "Network cost per window", md_network), ("detect", "`detect` throughput", md_detect),
                ("listen", "`listen`, steady cost", md_listen), ("startup", "Start-up", md_startup),
                ("latency", "Detection delay through the virtual microphone", md_latency),
                ("training", "Training the default model", md_training)]
    for name, title, render in sections:
        if name not in b:
            continue
        lines += ["", f"## {title}", ""]
        if "error" in b[name]:
            lines.append(f"Error: {b[name]['error']}")
        elif "skipped" in b[name]:
            lines.append(f"Skipped: {b[name]['skipped']}")
        else:
            lines += render(b[name])
    if "quality" in b:
        lines += ["", "## Quality beside speed", ""]
        lines += [f"Error: {b['quality']['error']}"] if "error" in b["quality"] else md_quality(b["quality"],
                                                                                                   b.get("network"))
    return "\n".join(lines) + "\n"


# --- Running -------------------------------------------------------------------------------------------------

def write(out: Path, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(results), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--network-worker"]:
        network_worker(json.loads(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few runs on short audio: a smoke test")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results",
                        help="folder for results.json and results.md (default: benchmarks/results)")
    parser.add_argument("--only", help=f"comma-separated: {', '.join(BENCHMARKS)} (default: all but training)")
    parser.add_argument("--models", help="comma-separated model files for network, quality, and (the first) "
                        "detect, listen, startup and latency (default: models/default.pt, and "
                        "runs/notebook-3s.pt where it exists, except with --quick)")
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(args.only.split(","))) if args.only else DEFAULT_SET
    if unknown := [n for n in names if n not in BENCHMARKS]:
        parser.error(f"--only {','.join(unknown)}: not a benchmark (choose from {', '.join(BENCHMARKS)})")
    if args.models:
        models = tuple(Path(m).resolve() for m in args.models.split(",") if m)
    else:
        models = (DEFAULT_MODEL,) + ((NOTEBOOK_MODEL,) if NOTEBOOK_MODEL.is_file() and not args.quick else ())
    if missing := [str(m) for m in models if not m.is_file()]:
        parser.error(f"--models: no such file: {', '.join(missing)}")

    began = time.perf_counter()
    results = {"started": datetime.now().astimezone().isoformat(timespec="seconds"), "quick": args.quick,
               "command": " ".join(["python benchmarks/run.py", *argv]), "models": [rel(m) for m in models],
               "machine": machine(), "benchmarks": {}}
    failed = []
    with tempfile.TemporaryDirectory(prefix="barkwatch-bench-") as scratch:
        ctx = Context(quick=args.quick, models=models, out=args.out.resolve(), scratch=Path(scratch))
        for name in names:
            progress(name, "starting")
            clock = time.perf_counter()
            try:
                results["benchmarks"][name] = BENCHMARKS[name](ctx)
            except Exception as e:  # recorded; the other benchmarks still run
                failed.append(name)
                results["benchmarks"][name] = {"error": f"{type(e).__name__}: {e}",
                                               "traceback": traceback.format_exc().splitlines()[-6:]}
                progress(name, f"error: {type(e).__name__}: {e}")
            results["benchmarks"][name]["seconds"] = round(time.perf_counter() - clock, 1)
            results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
            results["seconds"] = round(time.perf_counter() - began, 1)
            write(args.out, results)
            progress(name, f"done in {results['benchmarks'][name]['seconds']:.1f} s")
    print(f"written: {args.out / 'results.json'} and {args.out / 'results.md'} ({results['seconds']:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else "") + ")")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
