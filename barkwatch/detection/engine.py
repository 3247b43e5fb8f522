"""The detection engine: blocks of audio in, one scored window per hop out.

Files (``detect``) and microphones (``listen``) feed the same ``Engine``, so what is measured offline is what
runs live. It mixes to mono, resamples to the model's rate with a streaming resampler, slides windows of the
model's length every ``hop_s``, skips the network for windows quieter than the gate, and scores the rest in
batches. Memory stays constant: only the samples of the window in progress are kept.

Windows start on the model's STFT frame grid (every ``hop_length`` samples: 23 ms for the default model), at
the grid point nearest ``k * hop_s``. Successive windows then share all but their few edge frames, and a model
that scores power spectrograms (``score_power``, as the ONNX Runtime one does) is given them from
``spectrum.StreamFrames``, which computes each frame of the stream once instead of once in every window that
holds it (four times at a quarter-second hop). Every runtime scores the same windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..model.spectrum import StreamFrames
from .events import WindowScore


@dataclass(frozen=True)
class EngineSettings:
    hop_s: float = 0.25
    gate_dbfs: float = -60.0  # windows quieter than this score 0 without running the network
    batch_size: int = 16
    channel: int | None = None  # None mixes all channels; N picks channel N (0-based)

    def __post_init__(self) -> None:
        if not self.hop_s > 0:
            raise ValueError(f"hop_s {self.hop_s}: the hop must be positive")
        if self.batch_size < 1:
            raise ValueError(f"batch_size {self.batch_size}: must be at least 1")


SILENCE_DBFS = -120.0


def finite(samples: np.ndarray) -> np.ndarray:
    """``samples`` with NaN and infinite values (damage, never sound) replaced by silence."""
    return samples if np.isfinite(samples).all() else np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)


def level_dbfs(window: np.ndarray) -> float:
    """RMS level relative to full scale (a full-scale sine reads -3 dBFS), floored at -120 for silence."""
    rms = float(np.sqrt(np.mean(np.square(window, dtype=np.float64))))
    return max(20.0 * math.log10(rms), SILENCE_DBFS) if rms > 0 else SILENCE_DBFS


def frame_grid(model) -> int:
    """Samples between the model's STFT frames, the grid windows start on (1 for a scorer without an STFT,
    such as ``record``'s level detector)."""
    return int((model.metadata.get("features") or {}).get("hop_length", 1))


def window_start(k: int, hop: float, grid: int) -> int:
    """First sample of window ``k`` for a hop of ``hop`` samples: the point of the ``grid`` nearest k x hop."""
    return grid * int(math.floor(k * hop / grid + 0.5))


def check_hop(model, hop_s: float) -> None:
    """Raise ``ValueError`` for a hop shorter than the model's frame grid: successive windows would land on the
    same frame and be scored twice."""
    grid = frame_grid(model)
    if hop_s * model.sample_rate < grid:
        shortest = math.ceil(grid / model.sample_rate * 1e4) / 1e4
        raise ValueError(f"hop_s {hop_s:g}: shorter than the model's STFT hop ({grid} samples), on whose grid "
                         f"windows start; use {shortest:g} s or more")


class Engine:
    """Feed it blocks with ``feed``; call ``finish`` at the end of the stream. Both return scored windows.

    ``model`` is a ``WindowScorer`` (``model/interface.py``: a loaded model file, say); ``input_rate`` is the
    sample rate of the blocks fed in.
    """

    def __init__(self, model, input_rate: int, settings: EngineSettings = EngineSettings()):
        import soxr

        self.model = model
        self.settings = settings
        self.rate = model.sample_rate
        self.input_rate = input_rate
        self.window = model.window_samples
        # Window k starts at the frame nearest k * hop: a hop of 0.25 s at 22,050 Hz is 5512.5 samples (10.77
        # frames), and rounding the hop itself would drift 8 s a day.
        self.hop = settings.hop_s * self.rate
        check_hop(model, settings.hop_s)
        self.grid = frame_grid(model)
        n_fft = int((model.metadata.get("features") or {}).get("n_fft", 0))
        self._frames = (StreamFrames(n_fft, self.grid, self.window)
                        if hasattr(model, "score_power") and StreamFrames.shares(n_fft, self.window) else None)
        self._resampler = (soxr.ResampleStream(input_rate, self.rate, 1, dtype="float32", quality="HQ")
                           if input_rate != self.rate else None)
        self._buffer = np.zeros(0, dtype=np.float32)  # samples from absolute index _buffer_start on
        self._buffer_start = 0
        self._emitted = 0  # windows cut so far; the next one is window number _emitted
        self._received = 0  # samples at the model's rate so far

    def mono(self, block: np.ndarray) -> np.ndarray:
        """The channel the settings pick, or all channels mixed, as float32."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 1:
            return block
        if self.settings.channel is not None:
            return block[:, self.settings.channel]
        return block.mean(axis=1)

    def feed(self, block: np.ndarray) -> list[WindowScore]:
        """Add a block (``[frames]`` or ``[frames, channels]``, float32 in [-1, 1]); score every window it completes.
        NaN and infinite samples (a damaged file) are heard as silence."""
        mono = finite(self.mono(block))
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono, last=False)
        return self._take(mono)

    def frames_to_next_window(self) -> int:
        """Input frames still to come before the next window is complete (at least 1), so that a live reader
        can wait for them and wake once per window rather than once per block. The resampler holds back a
        few samples, so the window may need one more block."""
        missing = self._start(self._emitted) + self.window - (self._buffer_start + len(self._buffer))
        return max(1, math.ceil(missing * self.input_rate / self.rate))

    def finish(self) -> list[WindowScore]:
        """End of stream: flush the resampler, then score one last zero-padded window if samples remain that
        no window covered, so even a stream shorter than one window is scored once."""
        scored = []
        if self._resampler is not None:
            scored += self._take(self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        covered = self._start(self._emitted - 1) + self.window if self._emitted else 0
        if self._received > covered:
            pad = self._start(self._emitted) + self.window - (self._buffer_start + len(self._buffer))
            scored += self._take(np.zeros(pad, dtype=np.float32), padding=True)
        return scored

    def _take(self, samples: np.ndarray, padding: bool = False) -> list[WindowScore]:
        """Append samples and cut every window they complete; keep only what the next window needs."""
        if not padding:
            self._received += len(samples)
        self._buffer = np.concatenate([self._buffer, samples])
        windows: list[tuple[int, np.ndarray]] = []
        while (start := self._start(self._emitted)) + self.window <= self._buffer_start + len(self._buffer):
            i = start - self._buffer_start
            windows.append((start, self._buffer[i : i + self.window]))
            self._emitted += 1
        drop = min(self._start(self._emitted) - self._buffer_start, len(self._buffer))
        if drop > 0:
            self._buffer = self._buffer[drop:]  # the windows above keep views of the old array
            self._buffer_start += drop
        return self._score(windows)

    def _start(self, k: int) -> int:
        """First sample of window ``k``."""
        return window_start(k, self.hop, self.grid)

    def _score(self, windows: list[tuple[int, np.ndarray]]) -> list[WindowScore]:
        if not windows:
            return []
        levels = [level_dbfs(w) for _, w in windows]
        loud = [i for i, lvl in enumerate(levels) if lvl >= self.settings.gate_dbfs]
        rl = np.full(len(windows), math.nan)
        kl = np.full(len(windows), math.nan)
        score = np.zeros(len(windows))
        for first in range(0, len(loud), self.settings.batch_size):
            chosen = loud[first : first + self.settings.batch_size]
            samples = np.stack([windows[i][1] for i in chosen])
            if self._frames is None:
                rl[chosen], kl[chosen], score[chosen] = self.model.score(samples)
            else:
                power = self._frames.windows([windows[i][0] for i in chosen], samples)
                rl[chosen], kl[chosen], score[chosen] = self.model.score_power(power, samples)
        return [
            WindowScore(start_s=start / self.rate, end_s=(start + self.window) / self.rate, score=float(score[i]),
                        rl=float(rl[i]), kl=float(kl[i]), level_dbfs=levels[i])
            for i, (start, _) in enumerate(windows)
        ]
