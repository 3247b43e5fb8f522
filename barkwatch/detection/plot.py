"""The picture of what the detector heard in one recording (``barkwatch detect --plot``).

matplotlib and librosa are imported inside the function, so scanning without a plot never pays for them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .engine import finite


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
        block = finite(block)
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
