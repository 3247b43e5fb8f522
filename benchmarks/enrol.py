"""Enrolment: can a model learn *one* dog from a few of its clips? The measure of issue 9.

    python benchmarks/enrol.py --data ../shared/data/barks-dev [--dogs 10] [--seed 0] [--out benchmarks/results]
                               [--modes notebook,scratch,fine-tuned] [--part 1/2]

Each dog recording of the data with 4 clips (UrbanSound8K keeps at most 4 slices of a recording here) stands for
one dog. For a reproducible sample of them (ranked by sha256 of "SEED/recording") and k = 1, 2, 3: enrol with the
first k clips (by name) and test on the other 4 - k. The rest of the data is split in two by recording (again by
hash): one half gives the enrolment's negatives, as an owner's "other dog" and "not a bark" labels would (every
other-dog clip of that half and 150 of its other sounds); the other half is the test's unseen other dogs and
sounds. Reported, averaged over dogs: the clip ROC AUC (a clip scores its highest window) of the dog's held-back
clips against the unseen other dogs' barks, and against the unseen other sounds.

Modes, all on 1 s windows with the shipped model's features and preset:
- notebook: the notebook's idea, a VAE trained on the k clips alone, and a logistic classifier on its RL and KL
  fitted on the k clips and the negatives;
- scratch: the VAE with its joint bark head, from random weights, on the k clips against the negatives;
- fine-tuned: the same, starting from models/default.pt's network (learning rate 3e-4, fewer epochs).
``--part i/n`` runs every n-th dog from the i-th, so that n processes can share the work; ``--merge`` joins
their JSON files into the table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODES = ("notebook", "scratch", "fine-tuned")
KS = (1, 2, 3)
NOT_BARKS_PER_RUN = 150


def rank(seed: int, names) -> list[str]:
    return sorted(names, key=lambda n: hashlib.sha256(f"{seed}/{n}".encode()).hexdigest())


def load_clips(data: Path, windows_per_clip: int):
    from barkwatch.training.train import TrainConfig, read_clips

    config = TrainConfig(positives=data / "dog", negatives=data / "other", out=Path("unused.pt"), window_s=1,
                         max_windows_per_clip=windows_per_clip, other_active_db=100.0, progress=True)
    clips, skipped = read_clips(config)
    if skipped:
        print(f"skipped {len(skipped)} unreadable file(s)", file=sys.stderr)
    return clips


def plan(clips, dogs: int, seed: int):
    by_group: dict[str, list] = {}
    for c in clips:
        by_group.setdefault(c.group, []).append(c)
    dog_groups = [g for g, cs in by_group.items() if all(c.label == 1 for c in cs)]
    enrolable = rank(seed, [g for g in dog_groups if len(by_group[g]) == 4])[:dogs]
    return by_group, enrolable


def windows_of(clips):
    from barkwatch.training.train import Windows

    return Windows.of(clips)


def run_one(mode: str, positives, negatives, tests: dict, init_weights, seed: int, epochs: int):
    """Train one model for one dog and k, and return its clip AUC against each test set."""
    import torch

    from barkwatch.model.features import FeatureParams, Spectrogram
    from barkwatch.training.metrics import roc_auc
    from barkwatch.training.train import (TrainConfig, Windows, classifier_for, ensemble_scores, measure, train_vae)

    config = TrainConfig(positives=None, out=Path("unused.pt"), preset="small", window_s=1, normalisation="minmax",
                         objective="one-class" if mode == "notebook" else "joint", epochs=epochs,
                         lr=3e-4 if mode == "fine-tuned" else 1e-3, seed=seed, progress=False,
                         batch_size=16)
    device = torch.device("cpu")
    spectrogram = Spectrogram(FeatureParams(normalisation="minmax"))
    train = windows_of(positives + negatives)
    others = train.waves[train.labels == 0]
    fit_on = train.select(train.labels == 1) if mode == "notebook" else train
    run = train_vae(config, spectrogram, fit_on, fit_on, others, 1e8, device,
                    init_weights if mode == "fine-tuned" else None)
    _, clf = classifier_for(config, run, spectrogram, train, device)
    out = {}
    for name, test_clips in tests.items():
        w = windows_of(test_clips)
        terms = measure(run.vae, run.head, spectrogram, w, device)
        labels, scores = terms.clip_scores(ensemble_scores([terms], [(run, clf)]))
        out[name] = roc_auc(labels, scores)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "barks-dev")
    parser.add_argument("--dogs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--epochs", type=int, default=12, help="scratch and notebook; fine-tuned gets half")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--part", default="1/1")
    parser.add_argument("--merge", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.merge is not None:
        return merge(args.merge, args.out)

    import torch
    from tqdm import tqdm

    from barkwatch.model.modelfile import DEFAULT_MODEL
    from barkwatch.training.train import initial_weights

    torch.set_num_threads(1)
    modes = [m for m in args.modes.split(",") if m]
    part, parts = (int(x) for x in args.part.split("/"))
    clips = load_clips(args.data, windows_per_clip=2)
    by_group, enrolable = plan(clips, args.dogs, args.seed)
    _, init_weights, _ = initial_weights(DEFAULT_MODEL)
    rest = rank(args.seed + 1, [g for g in by_group if g not in enrolable])
    enrol_half, test_half = set(rest[0::2]), set(rest[1::2])
    rng = np.random.default_rng(args.seed)

    def pick(half, label):
        return [c for g in sorted(half) for c in by_group[g] if c.label == label]

    enrol_dogs, enrol_other = pick(enrol_half, 1), pick(enrol_half, 0)
    test_dogs, test_other = pick(test_half, 1), pick(test_half, 0)
    mine = enrolable[part - 1::parts]
    results = []
    bar = tqdm(total=len(mine) * len(KS) * len(modes), desc="enrolment runs", dynamic_ncols=True)
    for dog in mine:
        own = sorted(by_group[dog], key=lambda c: c.path.name)
        for k in KS:
            enrol, held = own[:k], own[k:]
            negatives = [replace(c, label=0) for c in enrol_dogs]
            negatives += [enrol_other[i] for i in rng.choice(len(enrol_other), NOT_BARKS_PER_RUN, replace=False)]
            tests = {"other_dogs": held + [replace(c, label=0) for c in test_dogs], "not_barks": held + test_other}
            for mode in modes:
                started = time.monotonic()
                epochs = args.epochs // 2 if mode == "fine-tuned" else args.epochs
                aucs = run_one(mode, list(enrol), negatives, tests, init_weights, args.seed, epochs)
                results.append({"dog": dog, "k": k, "mode": mode, "held_out_clips": len(held),
                                "seconds": round(time.monotonic() - started, 1), **aucs})
                bar.update(1)
                bar.set_postfix(dog=dog, k=k, mode=mode, dogs=f"{aucs['other_dogs']:.2f}")
    bar.close()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"enrol-part{part}of{parts}.json"
    path.write_text(json.dumps({"seed": args.seed, "dogs": len(mine), "tests": {
        "other_dogs": len(test_dogs), "not_barks": len(test_other)}, "enrol_negatives": {
        "other_dogs": len(enrol_dogs), "not_barks": NOT_BARKS_PER_RUN}, "results": results}, indent=1))
    print(f"wrote {path}")
    if parts == 1:
        return merge([path], args.out)
    return 0


def merge(paths: list[Path], out: Path) -> int:
    rows, meta = [], {}
    for p in paths:
        data = json.loads(p.read_text())
        rows += data["results"]
        meta = {k: v for k, v in data.items() if k != "results"}
    dogs = sorted({r["dog"] for r in rows})
    lines = [f"Enrolment on {len(dogs)} dogs (each a recording of 4 clips; enrol with k, test on the other "
             f"4 - k), against {meta['tests']['other_dogs']} clips of unseen other dogs and "
             f"{meta['tests']['not_barks']} unseen other sounds. Clip ROC AUC, mean over dogs (min-max).", "",
             "| mode | k = 1: vs other dogs | vs other sounds | k = 2: vs other dogs | vs other sounds | "
             "k = 3: vs other dogs | vs other sounds | s per run |", "|---|---|---|---|---|---|---|---|"]
    for mode in MODES:
        cells = []
        for k in KS:
            for key in ("other_dogs", "not_barks"):
                v = [r[key] for r in rows if r["mode"] == mode and r["k"] == k]
                cells.append(f"{np.mean(v):.2f} ({min(v):.2f}-{max(v):.2f})" if v else "")
        secs = [r["seconds"] for r in rows if r["mode"] == mode]
        if secs:
            lines.append(f"| {mode} | " + " | ".join(cells) + f" | {np.median(secs):.0f} |")
    table = "\n".join(lines) + "\n"
    (out / "enrol.md").write_text(table)
    (out / "enrol.json").write_text(json.dumps({**meta, "dogs": len(dogs), "results": rows}, indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
