"""The training report: ``metrics.json`` and the plots people look at to judge a model.

matplotlib is imported inside ``write_training_report`` (with the Agg backend), so nothing else pays for it.
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


def write_training_report(directory: Path, *, metadata: dict, sweep: list[dict], history: dict, terms: dict,
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
