"""YAMNet beside a barkwatch model: measure both on the household mixes once, then compare combinations.

    python benchmarks/yamnet.py measure --model M --tflite T --mix DIR [--holdout FILE --data DIR] --out F.npz
    python benchmarks/yamnet.py embeddings --model M --tflite T --data DIR --exclude FILE... --out F.npz
    python benchmarks/yamnet.py finetune --model M --tflite T --data DIR --exclude FILE... --mixes VAL.npz --out DIR/ft
    python benchmarks/yamnet.py compare --val VAL.npz --test T1.npz [T2.npz ...] [--head F.npz] [--out F.json]
    python benchmarks/yamnet.py build --model M --tflite T --val VAL.npz --report F.json --out M2
    python benchmarks/yamnet.py quiet-room [--minutes 10] [--dbfs -50] --out F.wav
    python benchmarks/yamnet.py cascade --model M AUDIO...

``measure`` scans a mix exactly as ``household.py evaluate`` does (``barkwatch detect``'s engine: the model's
hop, windows on its STFT frame grid, gate -60 dBFS) and keeps, for every window, the model's own decision
logit ``z`` (the logit of its score) and the YAMNet float port's bark logit ``max(logit[Dog], logit[Bark])``
on the same window (the torch port in ``barkwatch/model/yamnet.py``, the window resampled to 16 kHz inside
the module, its last 0.975 s). With ``--holdout`` and ``--data``, the same for every window of the held-out
clips (gate off), for clip ROC AUC.

``compare`` turns those into scorers without scoring again: the model alone (``z``), YAMNet alone (its
logit), and the weighted means ``a z + (1 - a) yamnet`` for ``a`` in 0.1..0.9 (``a = 0.5`` is the plain mean of
the two logits). Each is replayed through the event tracker as ``household.py evaluate`` does (the model's
patience, hold threshold from its clip-balanced point) at about 200 thresholds. The weight and the threshold
are chosen on the validation mix (the most barks at <= 1 false alarm an hour); the test mixes report them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import household  # noqa: E402  (the script beside this one)

# Dog, Bark, Yip, Howl, Bow-wow, Growling, Whimper (dog) in yamnet_class_map.csv; the first two make the logit.
DOG_CLASSES = (69, 70, 71, 72, 73, 74, 75)
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(1, 10))
BUDGET = 1.0


class _Measured:
    """A ``WindowScorer`` around a loaded model and the YAMNet branch that returns, in place of RL and KL,
    the model's decision logit and YAMNet's bark logit (the engine keeps both per window)."""

    def __init__(self, model, branch):
        self.model, self.branch = model, branch
        self.sample_rate, self.window_samples, self.metadata = model.sample_rate, model.window_samples, model.metadata
        self.path, self.sha256, self.threshold = model.path, model.sha256, model.threshold

        self.embeddings: list[np.ndarray] = []  # per scored window, in order (float16)
        self.dog_logits: list[np.ndarray] = []  # AudioSet's dog classes, DOG_CLASSES

    def score(self, windows: np.ndarray):
        import torch

        _, _, score = self.model.score(windows)
        with torch.inference_mode():
            embedding = self.branch.yamnet.embed(self.branch.patch(torch.from_numpy(
                np.ascontiguousarray(windows, dtype=np.float32))))
            logits = self.branch.yamnet.dense(embedding)
        self.embeddings.append(embedding.numpy().astype(np.float16))
        self.dog_logits.append(logits[:, list(DOG_CLASSES)].numpy())
        yamnet = torch.maximum(logits[:, DOG_CLASSES[0]], logits[:, DOG_CLASSES[1]]).double().numpy()
        p = np.clip(score, 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p)), yamnet, score

    def taken(self) -> tuple[np.ndarray, np.ndarray]:
        """The embeddings and dog-class logits stashed since the last call."""
        e, d = np.concatenate(self.embeddings), np.concatenate(self.dog_logits)
        self.embeddings, self.dog_logits = [], []
        return e, d


def measure(model_path: Path, tflite: Path, mix: Path, data: Path | None, holdout: Path | None, out: Path) -> None:
    import torch

    from barkwatch.model.modelfile import load
    from barkwatch.model.yamnet import YamnetBranch, from_tflite

    torch.set_flush_denormal(True)
    model = load(model_path)
    scorer = _Measured(model, YamnetBranch(from_tflite(tflite), model.sample_rate, model.window_samples).eval())
    hop_s = float(model.metadata.get("hop_s", 0.25))
    windows = household.score_mix(mix / household.read_truth(mix).get("audio", household.MIX_NAME), scorer, hop_s,
                                  progress=True)
    arrays = {
        "start_s": np.array([w.start_s for w in windows]), "end_s": np.array([w.end_s for w in windows]),
        "level_dbfs": np.array([w.level_dbfs for w in windows]),
        "z": np.array([w.rl for w in windows]), "yamnet": np.array([w.kl for w in windows]),
    }
    # The scorer saw only the windows the gate let through, in order.
    arrays["embedding"], arrays["dog_logits"] = scorer.taken()
    arrays["scored"] = arrays["level_dbfs"] >= household.GATE_DBFS
    assert arrays["scored"].sum() == len(arrays["embedding"])
    if data is not None and holdout is not None:
        from barkwatch.detection.engine import Engine, EngineSettings
        import soundfile as sf

        clips = household.held_out_clips(data, holdout)
        clip_z, clip_y, labels = [], [], []
        for c in clips:
            audio, rate = sf.read(str(data / c.file), dtype="float32", always_2d=True)
            engine = Engine(scorer, rate, EngineSettings(hop_s=hop_s, gate_dbfs=-math.inf))
            scored = engine.feed(audio) + engine.finish()
            clip_z.append([w.rl for w in scored])
            clip_y.append([w.kl for w in scored])
            labels.append(c.label == "dog")
        arrays["clip_labels"] = np.array(labels)
        arrays["clip_index"] = np.repeat(np.arange(len(clips)), [len(z) for z in clip_z])
        arrays["clip_z"] = np.concatenate(clip_z)
        arrays["clip_yamnet"] = np.concatenate(clip_y)
        arrays["clip_embedding"], arrays["clip_dog_logits"] = scorer.taken()
    meta = {"mix": str(mix), "model": str(model_path), "sha256": model.sha256, "hop_s": hop_s,
            "patience": int(model.metadata.get("patience", 2)),
            "hold": household.model_hold_threshold(model.metadata), "threshold": model.threshold,
            "yamnet": "float torch port (barkwatch/model/yamnet.py) of " + str(tflite)}
    np.savez(out, meta=json.dumps(meta), **arrays)
    print(f"{out}: {len(windows)} windows of {mix}")


def embeddings(branch, waves, batch: int = 64, progress: bool = False):
    """YAMNet's 1,024-d embedding of every window ``waves[n, N]`` (torch, at the model's rate) through a
    ``YamnetBranch``, frozen."""
    import torch
    from tqdm import tqdm

    out = []
    with torch.inference_mode():
        for first in tqdm(range(0, len(waves), batch), disable=None if progress else True, desc="YAMNet embeddings",
                          unit="batch", dynamic_ncols=True):
            out.append(branch.yamnet.embed(branch.patch(waves[first:first + batch])))
    return torch.cat(out) if out else torch.zeros(0, 1024)


def fit_head(x, labels, l2: float = 1e-3, steps: int = 300):
    """A class-balanced logistic regression ``[1024] -> 1`` on embeddings (L-BFGS, L2 on the weights): the bark
    head. Returns an ``nn.Linear(1024, 1)``."""
    import torch

    x = x.float()
    y = labels.float()
    w = torch.where(y > 0.5, 0.5 / y.sum(), 0.5 / (1 - y).sum())
    head = torch.nn.Linear(x.size(1), 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    optimiser = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = (w * torch.nn.functional.binary_cross_entropy_with_logits(head(x).squeeze(1), y, reduction="none")).sum()
        loss = loss + l2 * head.weight.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return head.eval().requires_grad_(False)


def default_training_windows(model_path: Path, tflite: Path, data: Path, exclude: list[Path], out: Path):
    """The default model's training recipe (models/README.md: the development set less the ``exclude``
    recordings, 8 windows a clip, split 0.85/0.15 by recording, seed 0, windows placed in rooms): its config,
    its split clips, the loaded model and a YAMNet branch for its windows."""
    from barkwatch.model.modelfile import load
    from barkwatch.model.yamnet import YamnetBranch, from_tflite
    from barkwatch.training import train as training

    excluded = frozenset().union(*(household.read_holdout(p) for p in exclude))
    config = training.TrainConfig(positives=data / "dog", negatives=data / "other", out=out.with_suffix(".pt"),
                                  window_s=1, max_windows_per_clip=8, other_active_db=100.0, scene=True,
                                  floor_dbfs=(-70.0, -55.0), lowpass_p=0.5, shift_p=0.5, split=(0.85, 0.15, 0.0),
                                  objective="joint", exclude_sources=excluded, seed=0)
    clips, _ = training.read_clips(config)
    splits = training.split_groups(clips, config.split, config.seed)
    model = load(model_path)
    branch = YamnetBranch(from_tflite(tflite), model.sample_rate, model.window_samples).eval()
    return config, splits, model, branch


def training_embeddings(model_path: Path, tflite: Path, data: Path, exclude: list[Path], copies: int,
                        out: Path) -> None:
    """YAMNet's embeddings of the default model's own training windows (its recipe in models/README.md: the
    development set less the test and validation recordings, 8 windows a clip, split 0.85/0.15 by recording,
    seed 0), each placed in a room ``copies`` times as its training did (``--scene``, a pink floor at -70..-55
    dBFS, low-pass and time shift with chance 0.5)."""
    import torch

    from barkwatch.training import train as training

    config, splits, model, branch = default_training_windows(model_path, tflite, data, exclude, out)
    arrays = {}
    for name in ("train", "val"):
        windows = training.Windows.of(splits[name])
        parts = [windows, training.augmented(windows, config, copies if name == "train" else 1)]
        waves = torch.cat([p.waves for p in parts])
        arrays[f"{name}_x"] = embeddings(branch, waves, progress=True).numpy().astype(np.float16)
        arrays[f"{name}_y"] = torch.cat([p.labels for p in parts]).numpy()
        arrays[f"{name}_clip"] = np.concatenate([p.clip_index for p in parts])
        print(f"{name}: {len(waves)} windows ({int(arrays[f'{name}_y'].sum())} barks)", flush=True)
    np.savez(out, **arrays)


CUT = 23  # YAMNet's body up to here stays frozen in ``finetune``: the last two blocks (layers 13-14) learn


def finetune(model_path: Path, tflite: Path, data: Path, exclude: list[Path], copies: int, mixes: list[Path],
             epochs: int, lr: float, out: Path) -> None:
    """YAMNet's last two blocks and its Dog and Bark rows fine-tuned on e40's training windows placed in rooms
    (as ``embeddings`` makes them), from Google's weights: class-balanced cross-entropy on max(logit[Dog],
    logit[Bark]), Adam, the frozen part's output cached once. Then the fine-tuned bark logit of every window
    of ``mixes`` (measured with ``measure``: the same windows), written as ``y_ft`` into a copy of each
    measurement beside ``out``, for ``compare``-style replay; and the early-stopping split's clip AUC."""
    import copy

    import torch

    from barkwatch.model.yamnet import BARK, DOG
    from barkwatch.training import metrics
    from barkwatch.training import train as training

    torch.manual_seed(0)
    config, splits, model, branch = default_training_windows(model_path, tflite, data, exclude, out)
    frozen = branch.yamnet.body[:CUT]

    def cached(waves: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.cat([frozen(branch.patch(waves[i:i + 64]).unsqueeze(1)).half()
                              for i in range(0, len(waves), 64)])

    sets = {}
    for name in ("train", "val"):
        windows = training.Windows.of(splits[name])
        parts = [windows, training.augmented(windows, config, copies if name == "train" else 1)]
        sets[name] = (cached(torch.cat([p.waves for p in parts])), torch.cat([p.labels for p in parts]),
                      np.concatenate([p.clip_index for p in parts]))
        print(f"{name}: {len(sets[name][1])} windows cached", flush=True)
    top = copy.deepcopy(branch.yamnet.body[CUT:]).train()
    head = torch.nn.Linear(1024, 2)
    with torch.no_grad():
        head.weight.copy_(branch.yamnet.dense.weight[[DOG, BARK]])
        head.bias.copy_(branch.yamnet.dense.bias[[DOG, BARK]])
    params = [*top.parameters(), *head.parameters()]
    optimiser = torch.optim.Adam(params, lr=lr)
    x, y, _ = sets["train"]
    weight = torch.where(y > 0.5, 0.5 / y.sum(), 0.5 / (1 - y).sum()) * len(y)

    def logit(batch: torch.Tensor) -> torch.Tensor:
        return head(top(batch.float()).mean(dim=(2, 3))).amax(dim=1)

    def val_auc() -> float:
        xv, yv, cv = sets["val"]
        with torch.no_grad():
            lv = torch.cat([logit(xv[i:i + 256]) for i in range(0, len(xv), 256)]).numpy()
        best = np.full(int(cv.max()) + 1, -np.inf)
        labels = np.zeros(len(best), bool)
        np.maximum.at(best, cv, lv)
        labels[cv] = yv.numpy() > 0.5
        return metrics.roc_auc(labels, best)

    print(f"epoch 0: early-stopping clip AUC {val_auc():.4f}", flush=True)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(y))
        for i in range(0, len(y), 64):
            idx = order[i:i + 64]
            loss = (weight[idx] * torch.nn.functional.binary_cross_entropy_with_logits(
                logit(x[idx]), y[idx], reduction="none")).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        print(f"epoch {epoch}: early-stopping clip AUC {val_auc():.4f}", flush=True)
    top.eval()
    for mix_npz in mixes:
        arrays = dict(np.load(mix_npz))
        meta = json.loads(str(arrays["meta"]))
        mix = Path(meta["mix"])
        import soundfile as sf

        audio, rate = sf.read(str(mix / household.MIX_NAME), dtype="float32")
        starts = np.round(arrays["start_s"] * rate).astype(int)
        scored = np.flatnonzero(arrays["scored"])
        y_ft = np.full(len(starts), -30.0)
        padded = np.concatenate([audio, np.zeros(model.window_samples, np.float32)])
        with torch.inference_mode():
            for i in range(0, len(scored), 64):
                chosen = scored[i:i + 64]
                waves = torch.from_numpy(np.stack([padded[s:s + model.window_samples] for s in starts[chosen]]))
                y_ft[chosen] = logit(frozen(branch.patch(waves).unsqueeze(1))).numpy()
        arrays["yamnet"] = y_ft
        target = out.parent / (mix_npz.stem + "-ft.npz")
        np.savez(target, **arrays)
        print(f"{target}: fine-tuned YAMNet logit of {len(scored)} windows of {mix}", flush=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def features(arrays: dict, head=None, prefix: str = "") -> dict[str, np.ndarray]:
    """Per window: the model's logit ``z``, YAMNet's max(Dog, Bark) logit ``y``, the max over its seven dog
    classes ``dogs`` and, given a trained head ``(mean, std, weight, bias)`` on the embedding, ``head``.
    ``prefix`` "clip_" for the held-out clips' windows."""
    out = {"z": arrays[prefix + "z"], "y": arrays[prefix + "yamnet"]}
    dogs = arrays.get(prefix + "dog_logits")
    embedding = arrays.get(prefix + "embedding")
    scored = arrays["scored"] if not prefix else np.ones(len(out["z"]), bool)
    if dogs is not None:
        out["dogs"] = np.full(len(scored), -30.0)
        out["dogs"][scored] = dogs.max(axis=1)
    if head is not None and embedding is not None:
        mean, std, weight, bias = head
        out["head"] = np.full(len(scored), -30.0)
        out["head"][scored] = ((embedding.astype(np.float64) - mean) / std) @ weight + bias
    return out


def scorers(available: set[str]) -> dict[str, callable]:
    """name -> function of the features -> decision logit: each measure alone, and the weighted means
    ``a z + (1 - a) m`` of the model's logit and each YAMNet measure ``m``."""
    named = {name: (lambda n: lambda f: f[n])(name) for name in ("z", "y", "dogs", "head") if name in available}
    for m in ("y", "dogs", "head"):
        if m in available:
            for a in WEIGHTS:
                named[f"{a}z+{1 - a:.1f}{m}"] = (lambda a, m: lambda f: a * f["z"] + (1 - a) * f[m])(a, m)
    return named


def evaluate(arrays: dict, combine, hold_z: float | None, threshold: float | None = None, head=None) -> dict:
    from barkwatch.detection.engine import WindowScore
    from barkwatch.detection.events import TrackerSettings
    from barkwatch.training import metrics

    meta = json.loads(str(arrays["meta"]))
    truth = household.read_truth(Path(meta["mix"]))
    gated = arrays["level_dbfs"] < household.GATE_DBFS
    scores = np.where(gated, 0.0, _sigmoid(combine(features(arrays, head))))
    windows = [WindowScore(start_s=float(s), end_s=float(e), score=float(p), rl=math.nan, kl=math.nan,
                           level_dbfs=float(lv))
               for s, e, p, lv in zip(arrays["start_s"], arrays["end_s"], scores, arrays["level_dbfs"])]
    barks = [household.Bark(b["onset_s"], b["offset_s"], household.salience_of(truth, b["file"])) for b in truth["barks"]]
    segments = [household.Segment(s["start_s"], s["end_s"], s["category"]) for s in truth["backgrounds"]]
    hours = float(truth["duration_s"]) / 3600.0
    collar_s = float(arrays["end_s"][0] - arrays["start_s"][0])
    hold = float(_sigmoid(np.array(hold_z))) if hold_z is not None else None
    tracker = TrackerSettings(threshold=0.5, patience=int(meta["patience"]), hold_threshold=hold)
    points = household.sweep(windows, barks, segments, hours, household.thresholds_for(list(scores)), collar_s,
                             tracker)
    result = {"mix": meta["mix"], "at_most_2_per_hour": _summary(household.best_point(points, 2.0)),
              "at_most_0.5_per_hour": _summary(household.best_point(points, 0.5)),
              "at_most_1_per_hour": _summary(household.best_point(points, BUDGET)),
              "windows_gated": int(gated.sum()), "windows": len(scores)}
    if threshold is not None:
        result["at_threshold"] = _summary(household.score_events(household.events_at(windows, threshold, tracker),
                                                                 barks, segments, hours, threshold, collar_s))
    if "clip_labels" in arrays:
        clip_scores = combine(features(arrays, head, "clip_"))
        best = np.full(len(arrays["clip_labels"]), -np.inf)
        np.maximum.at(best, arrays["clip_index"], clip_scores)
        result["clip_roc_auc"] = metrics.roc_auc(arrays["clip_labels"].astype(bool), best)
    return result


def fit_head_on(path: Path, l2s=(1e-4, 1e-3, 1e-2, 1e-1)):
    """The bark head on YAMNet's embedding, fitted on ``embeddings``' training windows; its L2 chosen by clip
    ROC AUC on the early-stopping split. Returns (mean, std, weight, bias) in numpy and a description."""
    import torch

    from barkwatch.training import metrics

    d = np.load(path)
    x = d["train_x"].astype(np.float32)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-3
    xt = torch.from_numpy((x - mean) / std)
    xv = torch.from_numpy((d["val_x"].astype(np.float32) - mean) / std)
    best = None
    for l2 in l2s:
        head = fit_head(xt, torch.from_numpy(d["train_y"]), l2=l2)
        with torch.no_grad():
            logit = head(xv).squeeze(1).numpy()
        scores = np.full(int(d["val_clip"].max()) + 1, -np.inf)
        labels = np.zeros(len(scores), bool)
        np.maximum.at(scores, d["val_clip"], logit)
        labels[d["val_clip"]] = d["val_y"] > 0.5
        auc = metrics.roc_auc(labels, scores)
        print(f"head l2={l2:g}: early-stopping clip ROC AUC {auc:.4f}", flush=True)
        if best is None or auc > best[0]:
            best = (auc, l2, head)
    auc, l2, head = best
    return (mean, std, head.weight.detach().numpy()[0].astype(np.float64), float(head.bias)), {"l2": l2, "auc": auc}


def compare(val: Path, tests: list[Path], out: Path | None, head_data: Path | None = None) -> dict:
    val_arrays = dict(np.load(val))
    meta = json.loads(str(val_arrays["meta"]))
    hold_z = math.log(meta["hold"] / (1 - meta["hold"])) if meta.get("hold") else None
    report: dict = {"validation": {}, "tests": {}, "hold_logit": hold_z}
    head = None
    if head_data is not None:
        head, report["head"] = fit_head_on(head_data)
    named = scorers(set(features(val_arrays, head)))
    for name, combine in named.items():
        report["validation"][name] = evaluate(val_arrays, combine, hold_z, head=head)
        p = report["validation"][name]["at_most_1_per_hour"]
        print(f"validation  {name:12s}  <=1/h: {_fmt(p)}   <=2/h: {_fmt(report['validation'][name]['at_most_2_per_hour'])}",
              flush=True)
    combos = [n for n in named if "+" in n]
    def merit(n: str) -> tuple[float, float]:  # the most barks at <= 1 false alarm an hour, then at <= 2
        v = report["validation"][n]
        return tuple((v[k] or {}).get("recall") or 0.0 for k in ("at_most_1_per_hour", "at_most_2_per_hour"))

    chosen = max(combos, key=merit)
    report["chosen"] = chosen
    for test in tests:
        arrays = dict(np.load(test))
        for name in [n for n in ("z", "y", "dogs", "head", "0.5z+0.5y") if n in named] + [chosen]:
            p = report["validation"][name]["at_most_1_per_hour"]
            threshold = p["threshold"] if p else None
            r = evaluate(arrays, named[name], hold_z, threshold, head=head)
            report["tests"].setdefault(str(test), {})[name] = r
            print(f"{test.name:12s} {name:12s} at the validation threshold: {_fmt(r.get('at_threshold'))}   "
                  f"<=2/h: {_fmt(r['at_most_2_per_hour'])}   <=0.5/h: {_fmt(r['at_most_0.5_per_hour'])}   "
                  f"AUC {r.get('clip_roc_auc', float('nan')):.3f}", flush=True)
    if out is not None:
        out.write_text(json.dumps(report, indent=1, default=float))
    return report


def _summary(p) -> dict | None:
    if p is None:
        return None
    s = p.summary()
    return {k: s[k] for k in ("threshold", "recall", "recall_foreground", "recall_background", "time_recall",
                              "false_alarms_per_hour", "delay_median_s", "delay_p95_s", "false_alarms_by_category")}


def cascade_gate(val: Path, model_weight: float, threshold: float, margin: float) -> tuple[float, dict]:
    """The cascade's gate for ``a = model_weight``: the lowest logit without YAMNet (``a z``) of any validation
    window the full model scores at or above ``threshold`` (a probability), less ``margin``; and how often
    YAMNet then runs there."""
    d = dict(np.load(val))
    scored = d["scored"]
    partial = model_weight * d["z"][scored]
    full = partial + (1 - model_weight) * d["yamnet"][scored]
    above = full >= math.log(threshold / (1 - threshold))
    gate = float(partial[above].min()) - margin
    return gate, {"validation_windows_above": int(above.sum()), "lowest_partial_logit_above": float(partial[above].min()),
                  "margin": margin, "share_run_on_validation": float((partial >= gate).mean())}


def build(model: Path, tflite: Path, val: Path, report: Path, name: str, margin: float, out: Path) -> None:
    """The model with a YAMNet branch: the weight of the combination ``name`` of ``compare``'s report
    (``0.4z+0.6y``), its cascade gate from the validation windows above the lower of its threshold there and
    the model's hold threshold, ``margin`` below. The threshold itself is calibrated afterwards
    (``household.py evaluate`` and ``calibrate`` on the validation mix)."""
    from barkwatch.training.yamnet import add_yamnet

    result = json.loads(report.read_text())
    weight = float(name.split("z+")[0])
    point = result["validation"][name]["at_most_1_per_hour"]
    meta = json.loads(str(np.load(val)["meta"]))
    lowest = min(point["threshold"], meta["hold"] or 1.0)
    gate, evidence = cascade_gate(val, weight, lowest, margin)
    add_yamnet(model, tflite, out, model_weight=weight, cascade_logit=gate, threshold=point["threshold"],
               extra={"chosen_on": {"mix": point and result["validation"][name]["mix"], "combination": name,
                                    "recall_at_most_1_per_hour": point["recall"], "cascade": evidence}})
    print(f"{out}: a = {weight}, cascade gate {gate:.3f} (YAMNet runs on {evidence['share_run_on_validation']:.0%} "
          f"of the validation mix's scored windows)")


def cascade_share(model_path: Path, audio: Path) -> dict:
    """How often a model's cascade runs YAMNet on a recording: of the windows the level gate lets through (as
    ``detect`` places them), the share whose logit without YAMNet reaches the gate."""
    import soundfile as sf
    import torch

    from barkwatch.detection.engine import Engine, EngineSettings
    from barkwatch.model.modelfile import load, python_scorer

    model = load(model_path)
    scorer = python_scorer(model)
    member = scorer.members[0]
    partials: list[np.ndarray] = []

    class Partial:
        sample_rate, window_samples, metadata = model.sample_rate, model.window_samples, model.metadata

        @staticmethod
        def score(windows):
            with torch.inference_mode():
                x = scorer.spectrogram(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)))
                rl, kl, mu, logit = member.measure(x)
                partials.append(member.decision(rl, kl, mu, logit, torch.zeros_like(rl)).numpy())
            nan = np.full(len(windows), math.nan)
            return nan, nan, nan

    samples, rate = sf.read(str(audio), dtype="float32", always_2d=True)
    engine = Engine(Partial, rate, EngineSettings(hop_s=float(model.metadata.get("hop_s", 0.25))))
    windows = engine.feed(samples) + engine.finish()
    partial = np.concatenate(partials) if partials else np.zeros(0)
    runs = int((partial >= scorer.cascade_logit).sum())
    return {"audio": str(audio), "windows": len(windows), "scored": len(partial), "yamnet_runs": runs,
            "share_of_scored": runs / len(partial) if len(partial) else 0.0,
            "share_of_all": runs / len(windows) if windows else 0.0}


def _fmt(p: dict | None) -> str:
    if not p:
        return "none"
    return (f"{p['recall']:.2f} ({p['recall_foreground']:.2f}) at {p['false_alarms_per_hour']:.1f}/h, "
            f"delay {p['delay_median_s'] if p['delay_median_s'] is not None else float('nan'):.2f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="yamnet.py", description=__doc__.split("\n\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("measure")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--tflite", type=Path, required=True)
    p.add_argument("--mix", type=Path, required=True)
    p.add_argument("--data", type=Path)
    p.add_argument("--holdout", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p = commands.add_parser("embeddings")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--tflite", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--exclude", type=Path, nargs="+", required=True)
    p.add_argument("--copies", type=int, default=3)
    p.add_argument("--out", type=Path, required=True)
    p = commands.add_parser("build")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--tflite", type=Path, required=True)
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--report", type=Path, required=True)
    p.add_argument("--combination", default="0.4z+0.6y")
    p.add_argument("--margin", type=float, default=0.2)
    p.add_argument("--out", type=Path, required=True)
    p = commands.add_parser("cascade")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("audio", type=Path, nargs="+")
    p = commands.add_parser("quiet-room", help="a quiet room for the cascade: pink noise, above the level gate")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--dbfs", type=float, default=-50.0)
    p.add_argument("--out", type=Path, required=True)
    p = commands.add_parser("finetune")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--tflite", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--exclude", type=Path, nargs="+", required=True)
    p.add_argument("--copies", type=int, default=3)
    p.add_argument("--mixes", type=Path, nargs="+", required=True)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--out", type=Path, required=True)
    p = commands.add_parser("compare")
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--test", type=Path, nargs="+", required=True)
    p.add_argument("--head", type=Path, help="an `embeddings` file: fit a bark head on YAMNet's embedding")
    p.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "measure":
        measure(args.model, args.tflite, args.mix, args.data, args.holdout, args.out)
    elif args.command == "build":
        build(args.model, args.tflite, args.val, args.report, args.combination, args.margin, args.out)
    elif args.command == "cascade":
        for audio in args.audio:
            print(json.dumps(cascade_share(args.model, audio)))
    elif args.command == "quiet-room":
        import soundfile as sf

        noise = household.RoomNoise(np.random.default_rng(0), args.dbfs)
        sf.write(str(args.out), noise.next(int(args.minutes * 60 * household.SAMPLE_RATE)).astype(np.float32),
                 household.SAMPLE_RATE)
    elif args.command == "finetune":
        finetune(args.model, args.tflite, args.data, args.exclude, args.copies, args.mixes, args.epochs, args.lr,
                 args.out)
    elif args.command == "embeddings":
        training_embeddings(args.model, args.tflite, args.data, args.exclude, args.copies, args.out)
    else:
        compare(args.val, args.test, args.out, args.head)
    return 0


if __name__ == "__main__":
    sys.exit(main())
