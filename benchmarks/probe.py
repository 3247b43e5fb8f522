"""A fast probe of the bark network: train it alone (no VAE), with `barkwatch train`'s own windows and
augmentation, and judge it every few epochs as events on household mixes, the way `household.py evaluate`
does; `--top N` lists the highest-scoring windows that hold no bark and the barks that scored lowest.

    python benchmarks/probe.py [--epochs 20] [--scene] [--no-masks] [--speed 0] [--reverb 0] [--shift 0.5]
                               [--mixes runs/household-train60,runs/household-val120] [--top 10]

It answers "can the network fit, and what does it get wrong?" in minutes where a full training run takes
half an hour (about 10 s an epoch on two CPU cores). The data are `../shared/data/barks-dev` without the
test and validation recordings, recipe C's windows; the mixes are built by `household.py build` (their
spectrograms are cached in runs/probe-cache). A scratch tool for the experiment log, not a product path.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
import household as H  # noqa: E402
from barkwatch.detection.events import TrackerSettings  # noqa: E402
from barkwatch.model.barknet import BARKNETS, BarkNet  # noqa: E402
from barkwatch.model.features import FeatureParams, Spectrogram  # noqa: E402
from barkwatch.training.augment import augment, spec_augment  # noqa: E402
from barkwatch.training.train import (TrainConfig, Windows, augmentation, read_clips,  # noqa: E402
                                      split_groups)

torch.set_flush_denormal(True)
DATA = Path("../shared/data/barks-dev")
CACHE = Path("runs/probe-cache")
RATE = 22050


def features() -> Spectrogram:
    return Spectrogram(FeatureParams(normalisation="db"))


class PcenFront(nn.Module):
    """Per-channel energy normalisation (Wang et al. 2017, trainable per band) in front of the bark network,
    computed from the fixed-dB input: ``mode="pcen"`` gives the network PCEN alone, ``"both"`` the dB window and
    PCEN as two channels. The smoother starts at each band's quietest frame of the window (a window is scored
    on its own, so there is no earlier state): an estimate of the room under the sound."""

    def __init__(self, net: nn.Module, mode: str, bands: int = 128, s: float = 0.06):
        super().__init__()
        self.net, self.mode, self.s = net, mode, s
        self.log_alpha = nn.Parameter(torch.full((bands, 1), math.log(0.98)))
        self.log_delta = nn.Parameter(torch.full((bands, 1), math.log(2.0)))
        self.log_r = nn.Parameter(torch.full((bands, 1), math.log(0.5)))
        if mode == "both":
            first = net.blocks[0]
            net.blocks[0] = nn.Conv2d(2, first.out_channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = FeatureParams(normalisation="db")
        energy = torch.pow(10.0, (x[:, 0] * (p.db_high - p.db_low) + p.db_low) / 10.0)  # [B, F, T], power
        smooth = [energy[..., :].amin(dim=-1)]
        for t in range(energy.shape[-1]):
            smooth.append((1 - self.s) * smooth[-1] + self.s * energy[..., t])
        m = torch.stack(smooth[1:], dim=-1)
        alpha, delta, r = self.log_alpha.exp().clamp(max=1.0), self.log_delta.exp(), self.log_r.exp()
        pcen = (energy / (1e-12 + m).pow(alpha) + delta).pow(r) - delta.pow(r)
        pcen = pcen.unsqueeze(1)
        return self.net(pcen if self.mode == "pcen" else torch.cat([x, pcen], dim=1))


def mix_cache(mix: Path):
    """(window scores list from a loudness scan, spectrograms fp16 [N,1,128,44]) of every window of a mix."""
    CACHE.mkdir(exist_ok=True, parents=True)
    f = CACHE / (mix.name + ".pt")
    if f.exists():
        return torch.load(f, weights_only=False)
    truth = H.read_truth(mix)
    windows = H.score_mix(mix / truth["audio"], H.LoudnessModel(), 0.25)
    import soundfile as sf
    audio, _ = sf.read(str(mix / truth["audio"]), dtype="float32")
    feats = features()
    starts = [int(round(w.start_s * RATE)) for w in windows]
    out = torch.empty(len(starts), 1, 128, 44, dtype=torch.float16)
    with torch.no_grad():
        for i in range(0, len(starts), 512):
            chunk = torch.from_numpy(np.stack([audio[s:s + RATE] if len(audio[s:s + RATE]) == RATE else
                                               np.pad(audio[s:s + RATE], (0, RATE - len(audio[s:s + RATE])))
                                               for s in starts[i:i + 512]]))
            out[i:i + 512] = feats(chunk).half()
    torch.save((windows, out), f)
    return windows, out


def judge(mix: Path, net: torch.nn.Module, patience: int = 2, top: int = 0) -> dict:
    windows, x = mix_cache(mix)
    truth = H.read_truth(mix)
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(x[i:i + 1024].float()) for i in range(0, len(x), 1024)])
    scores = torch.sigmoid(logits).numpy()
    ws = [dataclasses.replace(w, score=float(s) if w.level_dbfs >= -60 else 0.0) for w, s in zip(windows, scores)]
    barks = [H.Bark(b["onset_s"], b["offset_s"], H.salience_of(truth, b["file"])) for b in truth["barks"]]
    segments = [H.Segment(s["start_s"], s["end_s"], s["category"]) for s in truth["backgrounds"]]
    hours = truth["duration_s"] / 3600
    tracker = TrackerSettings(threshold=0.5, patience=patience)
    points = H.sweep(ws, barks, segments, hours, H.thresholds_for([w.score for w in ws]), 1.0, tracker)
    out = {}
    for name, budget in (("2/h", 2.0), ("0.5/h", 0.5)):
        p = H.best_point(points, budget)
        out[name] = (round(p.recall, 3), round(p.recall_of("foreground"), 3), round(p.recall_of("background"), 3),
                     round(float(np.median(p.delays_s)), 2) if p.delays_s else None, round(p.threshold, 4),
                     p.false_alarms_by_category) if p else None
    if top:
        # the highest-scoring windows that hold no bark (not within a bark's zone), with their background
        zone = np.zeros(len(ws), bool)
        for b in truth["barks"]:
            zone |= np.array([(w.end_s > b["start_s"]) and (w.start_s < b["end_s"]) for w in ws])
        order = np.argsort(-scores)
        seg_starts = [s.start_s for s in segments]
        import bisect
        shown = 0
        for i in order:
            if zone[i]:
                continue
            k = bisect.bisect_right(seg_starts, ws[i].start_s) - 1
            print(f"  neg {ws[i].start_s:8.2f}s score {scores[i]:.4f} {truth['backgrounds'][k]['file']}")
            shown += 1
            if shown >= top:
                break
        # the barks' best window scores
        best = []
        for b in truth["barks"]:
            m = [s for w, s in zip(ws, scores) if w.end_s > b["onset_s"] and w.start_s < b["offset_s"]]
            best.append((max(m) if m else 0, b["file"], b["ratio_db"]))
        best.sort()
        for s, f, r in best[:top]:
            print(f"  bark best {s:.4f} ratio {r:6.2f} {f}")
    return out


def load_training(cfg: TrainConfig, foreground_only: bool = False, bark_fraction: float = 1.0):
    clips, _ = read_clips(cfg)
    if bark_fraction < 1.0:  # a learning curve: keep this share of the bark recordings (whole recordings)
        groups = sorted({c.group for c in clips if c.label == 1})
        keep = set(np.random.default_rng(cfg.seed + 1).permutation(groups)[:round(bark_fraction * len(groups))])
        clips = [c for c in clips if c.label == 0 or c.group in keep]
    if foreground_only:  # drop bark clips marked background (a far dog under street noise)
        salience = H._salience_by_file(str(DATA))
        clips = [c for c in clips
                 if not (c.label == 1 and salience.get(f"{c.path.parent.name}/{c.path.name}") == "background")]
    splits = split_groups(clips, cfg.split, cfg.seed)
    return Windows.of(splits["train"]), Windows.of(splits["val"]), splits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--net", default="cnn")
    ap.add_argument("--bark-snr", default=None)
    ap.add_argument("--mix-snr", default="-15,20")
    ap.add_argument("--scene", action="store_true")
    ap.add_argument("--bg", default="-45,-15")
    ap.add_argument("--ratio", default="-5,25")
    ap.add_argument("--floor", default="-80,-50")
    ap.add_argument("--speed", type=float, default=0.15)
    ap.add_argument("--reverb", type=float, default=0.5)
    ap.add_argument("--mixp", type=float, default=0.75)
    ap.add_argument("--shift", type=float, default=0.0)
    ap.add_argument("--no-aug", action="store_true")
    ap.add_argument("--no-masks", action="store_true")
    ap.add_argument("--dropout", type=float, default=None)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--active-db", type=float, default=6.0)
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", type=Path)
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--mixes", default="runs/household-train60,runs/household-val120")
    ap.add_argument("--onset", action="store_true", help="bark clips also give windows ending just after each onset")
    ap.add_argument("--foreground-only", action="store_true", help="no bark clips marked background salience")
    ap.add_argument("--bark-fraction", type=float, default=1.0, help="keep this share of the bark recordings")
    ap.add_argument("--cosine", action="store_true", help="learning rate falls to 1/100 on a cosine")
    ap.add_argument("--mixup", type=float, default=0.0, help="chance per batch of mixing window pairs (labels: max)")
    ap.add_argument("--front", choices=("db", "pcen", "both"), default="db",
                    help="the network's input: the fixed dB scale, trainable PCEN, or both as two channels")
    a = ap.parse_args()
    pair = lambda s: tuple(float(v) for v in s.split(","))  # noqa: E731
    excl = frozenset(H.read_holdout(Path("benchmarks/holdout.txt")) | H.read_holdout(Path("benchmarks/validation.txt")))
    cfg = TrainConfig(positives=DATA / "dog", negatives=DATA / "other", out=Path("/dev/null"), window_s=1,
                      objective="joint", normalisation="db", level_dbfs=(-50, -10), floor_dbfs=pair(a.floor), scene=a.scene,
                      background_dbfs=pair(a.bg), bark_ratio_db=pair(a.ratio), mix_p=a.mixp,
                      other_active_db=100, mix_snr_db=pair(a.mix_snr),
                      bark_snr_db=pair(a.bark_snr) if a.bark_snr else None,
                      max_windows_per_clip=a.windows, split=(0.85, 0.15, 0), speed=a.speed, reverb_p=a.reverb, shift_p=a.shift,
                      spec_masks=not a.no_masks, lowpass_p=0.5, exclude_sources=excl, progress=False,
                      active_db=a.active_db, seed=a.seed, onset_windows=a.onset)
    t = time.time()
    train, val, _ = load_training(cfg, a.foreground_only, a.bark_fraction)
    print(f"windows: train {len(train.waves)} ({int(train.labels.sum())} bark), val {len(val.waves)}; "
          f"read in {time.time() - t:.0f}s", flush=True)
    torch.manual_seed(a.seed)
    conf = BARKNETS[a.net]
    if a.dropout is not None:
        conf = dataclasses.replace(conf, dropout=a.dropout)
    net = BarkNet(conf)
    if a.front != "db":
        net = PcenFront(net, a.front)
    feats = features()
    opt = torch.optim.Adam(net.parameters(), lr=a.lr, weight_decay=a.wd)
    pos = float(train.labels.sum())
    pos_weight = torch.tensor((len(train.labels) - pos) / pos)
    aug = augmentation(cfg)
    others = train.waves[train.labels == 0]
    rng = torch.Generator().manual_seed(a.seed)
    mixes = [Path(m) for m in a.mixes.split(",") if m]
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.epochs, eta_min=a.lr / 100) if a.cosine else None)
    for epoch in range(1, a.epochs + 1):
        t = time.time()
        net.train()
        total = 0.0
        for idx in torch.randperm(len(train.waves), generator=rng).split(a.batch):
            if len(idx) < 2:
                continue
            w = train.waves[idx]
            y = train.labels[idx]
            if not a.no_aug:
                w = augment(w, others, aug, rng, y)
            if a.mixup and torch.rand(1, generator=rng).item() < a.mixup:
                # two sounds at once: the sum of their waves (a room holds both), a bark if either is
                perm = torch.randperm(len(idx), generator=rng)
                gain = torch.rand(len(idx), 1, generator=rng) * 0.5 + 0.5
                w = w + gain * w[perm]
                y = torch.maximum(y, y[perm])
            with torch.no_grad():
                x = feats(w)
            if not a.no_aug and aug.spec_masks:
                x = spec_augment(x, aug, rng)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y, pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if schedule:
            schedule.step()
        msg = f"epoch {epoch} loss {total / len(train.waves):.4f} {time.time() - t:.0f}s"
        if epoch % a.eval_every == 0 or epoch == a.epochs:
            for m in mixes:
                msg += f"\n  {m.name}: {judge(m, net, top=a.top if epoch == a.epochs else 0)}"
        print(msg, flush=True)
    if a.save:
        torch.save(net.state_dict(), a.save)


if __name__ == "__main__":
    main()
