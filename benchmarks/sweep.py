"""Train several recipes side by side on one machine and score each on the validation mix.

    python benchmarks/sweep.py --plan PLAN --data ../shared/data/barks-dev --out DIR \
        [--jobs 8] [--device cuda] [--deadline 480] [--mix runs/household-val120]

PLAN has one recipe a line, ``NAME: train flags`` (``#`` starts a comment); every recipe is trained with
``barkwatch train --objective joint --out DIR/NAME.pt`` on the dev data minus the test and validation
recordings, then scored with ``household.py evaluate`` on the validation mix (built first when ``--mix`` does
not exist yet). Each recipe runs in its own process with one CPU thread, so a GPU machine with many cores trains
a dozen recipes at once. ``--deadline`` (seconds from the start) stops what is still running in time for the
results to be written: ``DIR/sweep.json`` and ``DIR/sweep.md`` are rewritten after every recipe, so a sweep cut
short still reports what finished.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from barkwatch.model.modelfile import read_metadata  # noqa: E402
EVAL_SECONDS = 90  # kept back from the deadline for scoring a recipe's model on the mix
EXPORT_SECONDS = 45  # from the end of the last epoch to the model file (measuring every split, export)


def read_plan(path: Path) -> list[tuple[str, list[str]]]:
    """``(name, flags)`` for every ``NAME: flags`` line of a plan file."""
    plan = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, flags = line.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"{path}:{number}: expected 'NAME: train flags', got {line!r}")
        plan.append((name.strip(), flags.split()))
    if not plan:
        raise SystemExit(f"{path}: no recipes in it")
    return plan


class Sweep:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.start = time.monotonic()
        self.results: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.mix_ready = threading.Event()
        self.mix_error: str | None = None
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=path, PYTHONUNBUFFERED="1")

    def left(self) -> float:
        return self.args.deadline - (time.monotonic() - self.start)

    def build_mix(self) -> None:
        mix = self.args.mix
        try:
            if not (mix / "truth.json").exists():
                cmd = [sys.executable, str(ROOT / "benchmarks/household.py"), "build", "--data", str(self.args.data),
                       "--holdout", str(ROOT / "benchmarks/validation.txt"), "--out", str(mix),
                       "--minutes", str(self.args.minutes), "--seed", "1"]
                done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=max(self.left(), 1))
                if done.returncode:
                    self.mix_error = f"building the mix failed: {done.stderr.strip()[-400:]}"
        except subprocess.TimeoutExpired:
            self.mix_error = "building the mix ran past the deadline"
        finally:
            self.mix_ready.set()

    def record(self, name: str, entry: dict) -> None:
        with self.lock:
            self.results[name] = entry
            out = self.args.out
            (out / "sweep.json").write_text(json.dumps(self.results, indent=1))
            (out / "sweep.md").write_text(table(self.results))

    def _step(self, what: str, cmd: list[str], log_path: Path, timeout: float) -> str | None:
        """Run one step with its output in ``log_path``; the error to record, or None."""
        with open(log_path, "w") as log:
            try:
                done = subprocess.run(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired:
                return f"{what} cut off after {timeout:.0f} s"
        return f"{what} exited {done.returncode}" if done.returncode else None

    def run(self, name: str, flags: list[str]) -> None:
        out = self.args.out
        model = out / f"{name}.pt"
        entry: dict = {"flags": " ".join(flags)}
        cmd = [sys.executable, "-m", "barkwatch", "train", "--positives", str(self.args.data / "dog"),
               "--negatives", str(self.args.data / "other"), "--out", str(model), "--objective", "joint",
               "--exclude-sources", str(ROOT / "benchmarks/holdout.txt"),
               "--exclude-sources", str(ROOT / "benchmarks/validation.txt"),
               "--device", self.args.device, "-q", *flags]
        t0 = time.monotonic()
        budget = self.left() - EVAL_SECONDS
        if budget < EXPORT_SECONDS + 30:
            self.record(name, {**entry, "error": "not started: too little time left"})
            return
        if not any(f.split("=")[0] == "--max-minutes" for f in flags):  # stop in time to keep the best epoch
            cmd += ["--max-minutes", f"{(budget - EXPORT_SECONDS) / 60:.2f}"]
        error = self._step("training", cmd, out / f"{name}.train.log", budget)
        entry["train_s"] = round(time.monotonic() - t0, 1)
        if error:
            self.record(name, {**entry, "error": error})
            return
        self.mix_ready.wait()
        if self.mix_error:
            self.record(name, {**entry, "error": self.mix_error})
            return
        result = out / f"{name}.eval.json"
        cmd = [sys.executable, str(ROOT / "benchmarks/household.py"), "evaluate", "--model", str(model),
               "--mix", str(self.args.mix), "--holdout", str(ROOT / "benchmarks/validation.txt"),
               "--data", str(self.args.data), "--out", str(result), "--compute", self.args.device, "--threads", "1"]
        t0 = time.monotonic()
        error = self._step("evaluation", cmd, out / f"{name}.eval.log", max(self.left(), 1))
        entry["eval_s"] = round(time.monotonic() - t0, 1)
        if error:
            self.record(name, {**entry, "error": error})
            return
        training = read_metadata(model)["training"]
        entry.update({k: training.get(k) for k in ("epochs", "best_epoch", "stopped_because", "seconds")})
        self.record(name, {**entry, **json.loads(result.read_text())})


def _point(result: dict, key: str) -> str:
    p = result.get(key) or {}
    return f"{p['recall']:.2f}" if p.get("recall") is not None else "-"


def table(results: dict[str, dict]) -> str:
    lines = ["| recipe | flags | clip AUC | recall <= 2 FA/h | recall <= 0.5 FA/h | delay median s | train s | "
             "epochs (best) |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | `{r['flags']}` | {r['error']} | | | | {r.get('train_s', '')} | |")
            continue
        auc = (r.get("clips") or {}).get("roc_auc")
        auc_text = "-" if auc is None else f"{auc:.3f}"
        delay = (r.get("at_most_2_per_hour") or {}).get("delay_median_s")
        lines.append(f"| {name} | `{r['flags']}` | {auc_text} | {_point(r, 'at_most_2_per_hour')} | "
                     f"{_point(r, 'at_most_0.5_per_hour')} | {'-' if delay is None else f'{delay:.2f}'} | "
                     f"{r.get('train_s', '')} | {r.get('epochs')} ({r.get('best_epoch')}) |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", type=Path, required=True, help="recipes, one 'NAME: train flags' a line")
    parser.add_argument("--data", type=Path, required=True, help="the dev data (dog/, other/, manifest.jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="folder for models, logs, sweep.json, sweep.md")
    parser.add_argument("--mix", type=Path, default=ROOT / "runs/household-val120",
                        help="validation mix folder; built (120 min, seed 1) if missing")
    parser.add_argument("--minutes", type=float, default=120.0, help="length of a mix that is built")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--device", default="cpu", help="where training and scoring run: cpu, cuda or mps")
    parser.add_argument("--deadline", type=float, default=24 * 3600.0, help="seconds until all work stops")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sweep = Sweep(args)
    threading.Thread(target=sweep.build_mix, daemon=True).start()
    plan = read_plan(args.plan)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {name: pool.submit(sweep.run, name, flags) for name, flags in plan}
    for name, future in futures.items():
        if future.exception() is not None:  # a bug in this script, not a failed recipe: still say which
            sweep.record(name, {"flags": " ".join(dict(plan)[name]), "error": f"sweep failed: {future.exception()!r}"})
    print(table(sweep.results), end="")
    return 0 if all("error" not in r for r in sweep.results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
