"""Reading audio files: any format libsndfile reads (wav, flac, ogg, mp3), mixed to mono, resampled with soxr.

No torch here, so tools that only read audio stay light.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3")


class AudioError(Exception):
    """An audio file that cannot be read; the message names it."""


def find_audio_files(folder: str | os.PathLike) -> list[Path]:
    """Every audio file under ``folder``, recursively, in a stable order."""
    root = Path(folder)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


_PROMISED = re.compile(r"^data\s*:\s*\d+\s*\(should be \d+\)", re.M)  # libsndfile's log of a short WAV
_DATA = re.compile(r"^data\s*:\s*(\d+)", re.M)
_BLOCK_ALIGN = re.compile(r"Block Align\s*:\s*(\d+)")


def promised_seconds(info) -> float | None:
    """For a WAV file cut short (a recorder that died, a copy that stopped), the length its header promises,
    from libsndfile's log in ``soundfile.info(...).extra_info``; None when the file is whole or not a WAV.
    (libsndfile itself reads what is there and reports that as the length.)"""
    log = getattr(info, "extra_info", "") or ""
    if not _PROMISED.search(log):
        return None
    data, align = _DATA.search(log), _BLOCK_ALIGN.search(log)
    if not data or not align or int(align.group(1)) == 0 or not info.samplerate:
        return None
    return int(data.group(1)) / int(align.group(1)) / info.samplerate


def unreadable(path: str | os.PathLike, error: Exception) -> str:
    """One line for a file libsndfile cannot open: an empty file says so (libsndfile calls it "Format not
    recognised"), anything else says what libsndfile said."""
    try:
        if os.path.getsize(path) == 0:
            return f"{path}: the file is empty (0 bytes); give a recording"
    except OSError:
        pass
    return f"{path}: cannot read audio ({str(error).splitlines()[0] if str(error) else error!r})"


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """The whole file as float32 mono at ``sample_rate``. Raises ``AudioError`` naming the file."""
    import soundfile as sf
    import soxr

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise AudioError(unreadable(path, e)) from e
    if data.size == 0:
        raise AudioError(f"{path}: the file holds no audio")
    mono = data.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    if not np.isfinite(mono).all():
        raise AudioError(f"{path}: the audio holds NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32)
