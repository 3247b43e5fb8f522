"""The training report: ``metrics.json`` and the plots people look at to judge a model.

matplotlib is imported inside ``write_report`` (with the Agg backend), so nothing else pays for it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..model.classifier import LinearClassifier


def _finite(value):
    """JSON has no NaN: undefined metrics (a class absent from a split) are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_report(directory: Path, *, metadata: dict, sweep: list[dict], history: dict, terms: dict,
                 classifier: LinearClassifier, examples: dict, skipped: list[str]) -> list[Path]:
    """Write metrics.json and the PNGs to ``directory``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    training = metadata["training"]
    metrics = {
        "splits": metadata["metrics"],
        "rl_weight": training["rl_weight"],
        "epochs": training["epochs"],
        "best_epoch": training["best_epoch"],
        "seconds": training["seconds"],
        "threshold": metadata["threshold"],
        "classifier": metadata["classifier"]["kind"],
        "preset": metadata["preset"],
        "window_s": metadata["window_s"],
        "device": training["device"],
        "sweep": [{k: v for k, v in s.items() if k != "history"} for s in sweep],
        "skipped_files": skipped,
    }
    written = [directory / "metrics.json"]
    written[0].write_text(json.dumps(_finite(metrics), indent=2) + "\n")

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(directory / name, dpi=110)
        plt.close(fig)
        written.append(directory / name)

    # Loss curves of the chosen RL weight.
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    epochs = np.arange(1, len(history["train_loss"]) + 1)
    for ax, (title, keys) in zip(axes, (("loss (RL weight x RL + KL)", ("train_loss", "val_loss")),
                                        ("RL", ("train_rl", "val_rl")), ("KL", ("train_kl", "val_kl")))):
        for key in keys:
            ax.plot(epochs, history[key], marker=".", label=key.split("_")[0])
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].axvline(training["best_epoch"], color="grey", ls=":", label="kept")
    for ax in axes:
        ax.legend()
    save(fig, "loss_curves.png")

    # RL against KL for held-out windows, with the classifier's boundary.
    fig, ax = plt.subplots(figsize=(6, 5))
    for split, marker in (("val", "o"), ("test", "^")):
        t = terms.get(split)
        if t is None or not len(t.rl):
            continue
        for label, colour, name in ((0, "tab:blue", "other"), (1, "tab:red", "bark")):
            sel = t.labels == label
            ax.scatter(t.kl[sel], t.rl[sel], s=12, marker=marker, c=colour, alpha=0.55,
                       label=f"{name} ({split})")
    _draw_boundary(ax, classifier)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("KL (regularisation loss)")
    ax.set_ylabel("RL (reconstruction loss)")
    ax.set_title(f"held-out windows, RL weight {training['rl_weight']:g}")
    ax.legend(fontsize=8)
    save(fig, "rl_kl_scatter.png")

    # The RL-weight sweep.
    fig, ax = plt.subplots(figsize=(6, 3.6))
    weights = [s["rl_weight"] for s in sweep]
    ax.plot(weights, [s["val_rl_mean"] for s in sweep], "o-", c="tab:red", label="mean validation RL (barks)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("RL weight")
    ax.set_ylabel("RL")
    ax2 = ax.twinx()
    aucs = [s["val_roc_auc"] for s in sweep]
    if any(a is not None and math.isfinite(a) for a in aucs):
        ax2.plot(weights, aucs, "s--", c="tab:green", label="validation clip AUC")
        ax2.set_ylabel("AUC")
        ax2.set_ylim(0, 1)
    ax.axvline(training["rl_weight"], color="grey", ls=":")
    fig.legend(loc="lower left", fontsize=8)
    ax.set_title("RL-weight sweep (dotted: chosen)")
    save(fig, "rl_weight_sweep.png")

    # The notebook's three experiments.
    for name in ("bark", "other"):
        if name in examples:
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
            for ax, key, title in ((axes[0], name, "input"), (axes[1], name + "_reconstruction", "reconstruction")):
                ax.imshow(examples[key], origin="lower", aspect="auto", vmin=0, vmax=1, cmap="magma")
                ax.set_title(f"{title}: {Path(str(examples[name + '_file'])).name}", fontsize=9)
                ax.set_xlabel("frame")
            axes[0].set_ylabel("mel band")
            save(fig, f"reconstruction_{name}.png")
    samples = examples["prior_samples"]
    fig, axes = plt.subplots(1, len(samples), figsize=(3 * len(samples), 3), sharey=True)
    for i, (ax, spec) in enumerate(zip(np.atleast_1d(axes), samples)):
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma")
        ax.set_title(f"decoded z ~ N(0, I) #{i + 1}", fontsize=9)
    save(fig, "prior_samples.png")
    return written


def _draw_boundary(ax, clf: LinearClassifier) -> None:
    """The line where the classifier's score equals its threshold, in (KL, RL) coordinates."""
    w_rl, w_kl = clf.weight
    if abs(w_rl) < 1e-12 or clf.mu_weight:  # with a head on mu there is no boundary in (KL, RL) alone
        return
    logit = math.log(clf.threshold / (1 - clf.threshold)) if 0 < clf.threshold < 1 else 0.0
    lo, hi = ax.get_xlim()
    log_kl = np.linspace(math.log(max(lo, 1e-12)), math.log(max(hi, 1e-11)), 100)
    z_kl = (log_kl - clf.mean[1]) / clf.std[1]
    z_rl = (logit - clf.bias - w_kl * z_kl) / w_rl
    ax.plot(np.exp(log_kl), np.exp(z_rl * clf.std[0] + clf.mean[0]), "k--", lw=1, label="decision boundary")
    ax.set_xlim(lo, hi)


def plot_detection(path: Path, windows: list, events: list, threshold: float, out: Path,
                   max_columns: int = 4000) -> Path:
    """What the detector heard in one file: its log-mel, the score of every window against the threshold,
    the level, and the events shaded. The spectrogram is read in blocks and pooled to at most
    ``max_columns`` columns, so a day-long recording plots in bounded memory."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    info = sf.info(str(path))
    hop = 512
    pool = max(1, math.ceil(info.frames / hop / max_columns))
    columns, pending = [], []
    for block in sf.blocks(str(path), blocksize=hop * pool * 64, dtype="float32", always_2d=True):
        mel = librosa.feature.melspectrogram(y=block.mean(axis=1), sr=info.samplerate, n_fft=2048,
                                             hop_length=hop, n_mels=64, center=False) if len(block) >= 2048 else None
        if mel is not None:
            pending.append(mel)
            merged = np.concatenate(pending, axis=1)
            whole = merged.shape[1] // pool * pool
            if whole:
                columns.append(merged[:, :whole].reshape(64, -1, pool).mean(axis=2))
            pending = [merged[:, whole:]] if merged.shape[1] > whole else []
    spec = librosa.power_to_db(np.concatenate(columns, axis=1), ref=np.max) if columns else np.zeros((64, 1))
    duration = info.frames / info.samplerate

    fig, axes = plt.subplots(3, 1, figsize=(12, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]})
    axes[0].imshow(spec, origin="lower", aspect="auto", cmap="magma", extent=(0, duration, 0, 64), vmin=-80)
    axes[0].set_ylabel("mel band")
    axes[0].set_title(f"{path.name}: {len(events)} event(s)")
    mid = [(w.start_s + w.end_s) / 2 for w in windows]
    axes[1].plot(mid, [w.score for w in windows], lw=0.8, c="tab:red")
    axes[1].axhline(threshold, ls="--", c="k", lw=0.8, label=f"threshold {threshold:.2f}")
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_ylabel("score")
    axes[1].legend(loc="upper right", fontsize=8)
    axes[2].plot(mid, [w.level_dbfs for w in windows], lw=0.8, c="tab:blue")
    axes[2].set_ylabel("level (dBFS)")
    axes[2].set_xlabel("seconds")
    axes[2].set_xlim(0, duration)
    for ax in axes:
        for e in events:
            ax.axvspan(e.start_s, e.end_s, color="tab:green", alpha=0.25, lw=0)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
