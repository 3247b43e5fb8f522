"""Do two ways of running a model make the same detector? Every window of each household mix scored by both
(two runtimes of one model, or a model file and its rebuild), the largest differences, and the events and
figures each gives at the model's own threshold.

    python benchmarks/parity.py --model models/default.pt --against models/default.onnx \\
                                --mix runs/household [--mix runs/household-test2 ...] [--out FILE.json]

Each model file is run as ``barkwatch detect`` runs it (``Detector.load`` on one thread; an ``.onnx`` file
on ONNX Runtime, a ``.pt`` file on torch) through ``household.py``'s scan of the mix (1 s blocks, the -60 dBFS
gate). The report gives, per mix: the windows scored, the largest absolute difference in score and in KL
and the largest relative difference in RL, whether the two event lists are the same (start, confirmation
and end of every event, peak scores within the tolerance), and recall (foreground, background) and false
alarms an hour of each. Exit status 1 when a score differs by more than ``--tolerance`` (default 1e-4) or
the events differ.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's barkwatch, installed or not


def run_one(household, path: Path, mix: Path) -> dict:
    """Score every window of ``mix`` with the model file ``path``; its events and figures at its threshold."""
    from barkwatch.detection.detector import Detector

    detector = Detector.load(path, threads=1, runtime="onnx" if path.suffix == ".onnx" else "torch")
    truth = household.read_truth(mix)
    clock = time.perf_counter()
    windows = household.score_mix(mix / truth.get("audio", household.MIX_NAME), detector.model,
                                  detector.engine_settings.hop_s, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - clock
    tracker = detector.tracker_settings
    events = household.events_at(windows, tracker.threshold, tracker)
    barks = [household.Bark(b["onset_s"], b["offset_s"], household.salience_of(truth, b["file"]))
             for b in truth["barks"]]
    segments = [household.Segment(s["start_s"], s["end_s"], s["category"]) for s in truth["backgrounds"]]
    collar_s = detector.model.window_samples / detector.model.sample_rate
    point = household.score_events(events, barks, segments, float(truth["duration_s"]) / 3600.0,
                                   tracker.threshold, collar_s)
    return {"windows": windows, "events": events, "point": point.summary(), "scoring_s": round(seconds, 1)}


def compare(a: dict, b: dict, tolerance: float) -> dict:
    """The largest differences between two scorings of the same windows, and whether their events agree
    (the same start, confirmation and end of each, peak scores within ``tolerance``)."""
    if [w.start_s for w in a["windows"]] != [w.start_s for w in b["windows"]]:
        raise SystemExit("the two scorings have different windows: not the same mix or hop")
    scored = [(x, y) for x, y in zip(a["windows"], b["windows"]) if np.isfinite(x.rl)]  # gated windows: NaN

    def column(name: str) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([getattr(x, name) for x, _ in scored]), np.array([getattr(y, name) for _, y in scored]))

    (sa, sb), (ra, rb), (ka, kb) = column("score"), column("rl"), column("kl")
    same_events = len(a["events"]) == len(b["events"]) and all(
        (x.start_s, x.detected_s, x.end_s) == (y.start_s, y.detected_s, y.end_s)
        and abs(x.peak_score - y.peak_score) <= tolerance for x, y in zip(a["events"], b["events"]))
    return {"windows": len(a["windows"]), "scored": len(scored),
            "max_abs_score_diff": float(np.abs(sa - sb).max()) if scored else 0.0,
            "max_rel_rl_diff": float((np.abs(ra - rb) / np.maximum(np.abs(ra), 1e-12)).max()) if scored else 0.0,
            "max_abs_kl_diff": float(np.abs(ka - kb).max()) if scored else 0.0,
            "same_events": same_events}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the reference model file (.pt or .onnx)")
    parser.add_argument("--against", type=Path, required=True, help="the model file to compare with it")
    parser.add_argument("--mix", type=Path, action="append", required=True,
                        help="a folder written by `household.py build`; repeatable")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest score difference allowed")
    parser.add_argument("--out", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    import household  # beside this script, which puts its folder first on sys.path
    report, ok = {"model": str(args.model), "against": str(args.against), "tolerance": args.tolerance,
                  "mixes": []}, True
    for mix in args.mix:
        a, b = run_one(household, args.model, mix), run_one(household, args.against, mix)
        row = {"mix": str(mix), **compare(a, b, args.tolerance)}
        for name, run in (("model", a), ("against", b)):
            p = run["point"]
            row[name] = {k: p[k] for k in ("recall", "recall_foreground", "recall_background", "events",
                                           "false_alarms", "false_alarms_per_hour", "delay_median_s")}
            row[name]["scoring_s"] = run["scoring_s"]
        ok = ok and row["same_events"] and row["max_abs_score_diff"] <= args.tolerance
        report["mixes"].append(row)
        print(f"{mix}: {row['scored']} of {row['windows']} windows scored; largest differences: score "
              f"{row['max_abs_score_diff']:.2g}, RL {row['max_rel_rl_diff']:.2g} (relative), KL "
              f"{row['max_abs_kl_diff']:.2g}; events {'the same' if row['same_events'] else 'DIFFER'}")
        for name, path in (("model", args.model), ("against", args.against)):
            r = row[name]
            print(f"  {path}: recall {r['recall']:.3f} (foreground {r['recall_foreground']:.3f}, background "
                  f"{r['recall_background']:.3f}), {r['events']} events, {r['false_alarms_per_hour']:.2f} false "
                  f"alarms an hour; scored in {r['scoring_s']:.0f} s")
    report["ok"] = ok
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
