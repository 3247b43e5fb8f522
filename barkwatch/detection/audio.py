"""Reading audio files: any format libsndfile reads (wav, flac, ogg, mp3), mixed to mono, resampled with soxr.

No torch here, so tools that only read audio stay light.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3")


class AudioError(Exception):
    """An audio file that cannot be read; the message names it."""


def find_audio_files(folder: str | os.PathLike) -> list[Path]:
    """Every audio file under ``folder``, recursively, in a stable order."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """The whole file as float32 mono at ``sample_rate``. Raises ``AudioError`` naming the file."""
    import soundfile as sf
    import soxr

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(f"{path}: cannot read audio ({e})") from e
    if data.size == 0:
        raise AudioError(f"{path}: the file holds no audio")
    mono = data.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: the audio holds NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32)
