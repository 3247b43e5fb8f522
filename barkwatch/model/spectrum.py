"""The power spectrogram in numpy, and a stream's spectrogram frames computed once each.

``power_spectrum`` is ``features.LogMel.power`` (``torch.stft``: frames centred on every ``hop_length``-th
sample, zeros beyond the window's ends, periodic Hann, ``|STFT|^2``) without torch: what a model running on
ONNX Runtime is given (0.45 ms for a window's 44 frames on the development machine).

``StreamFrames`` serves windows cut from one stream every few frames. With 1 s windows every quarter second,
each frame of the stream lies in four windows; windows that start on the frame grid (a multiple of
``hop_length`` samples, as ``detection.engine`` places them) share them, so each interior frame is computed
once and kept until no later window can need it. A window's first and last frames reach past its ends, where
``torch.stft`` sees zeros, and are computed for each window. The result is the same array ``power_spectrum``
gives for each window alone.
"""

from __future__ import annotations

import numpy as np


def hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window (``torch.hann_window``'s and librosa's), float32."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def _power(frames: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``frames[..., n_fft]`` -> ``|rfft(frames * window)|^2`` ``[..., n_fft // 2 + 1]`` as float32."""
    spectrum = np.fft.rfft(frames * window, axis=-1)  # complex64
    return np.square(spectrum.real) + np.square(spectrum.imag)


def _framed(windows: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """``windows[B, N]`` -> a view ``[B, 1 + N // hop_length, n_fft]`` of their centred, zero-padded frames."""
    half = n_fft // 2
    padded = np.pad(np.asarray(windows, dtype=np.float32), ((0, 0), (half, half)))
    return np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop_length]


def power_spectrum(windows: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """``windows[B, N]`` -> ``|STFT|^2`` as ``[B, n_fft // 2 + 1, 1 + N // hop_length]`` float32: what
    ``features.LogMel.power`` computes with ``torch.stft``, in numpy."""
    power = _power(_framed(windows, n_fft, hop_length), hann(n_fft))  # [B, frames, bins]
    return np.ascontiguousarray(power.transpose(0, 2, 1))


class StreamFrames:
    """``power_spectrum`` of windows cut from one stream, each frame inside a window computed only once.

    ``windows(starts, samples)`` takes windows in stream order (``starts`` non-decreasing, each a multiple of
    ``hop_length``: the first sample's index in the stream). Frames of windows that are never asked for (a
    gated, silent one) are simply not computed. Memory: at most one window's frames.
    """

    @staticmethod
    def shares(n_fft: int, window_samples: int) -> bool:
        """Whether frames can be shared: an even ``n_fft`` no longer than the window (an odd one's frames
        reach one sample further right, which the edge arithmetic below does not follow)."""
        return 0 < n_fft <= window_samples and n_fft % 2 == 0

    def __init__(self, n_fft: int, hop_length: int, window_samples: int):
        if not self.shares(n_fft, window_samples):
            raise ValueError(f"n_fft {n_fft}: frames are shared for an even n_fft no longer than the window "
                             f"({window_samples} samples)")
        self.n_fft, self.hop_length = n_fft, hop_length
        self.n_frames = 1 + window_samples // hop_length
        half = n_fft // 2
        # Frame j of a window covers its samples hop * j - half .. hop * j + half: inside it from `inner` to
        # `outer` (2 to 42 of 44 for 1 s at 22,050 Hz, n_fft 2048, hop 512).
        self.inner, self.outer = -(-half // hop_length), (window_samples - half) // hop_length + 1
        self._edges = list(range(self.inner)) + list(range(self.outer, self.n_frames))
        self._window = hann(n_fft)
        # Stream frames _next - len(_ring) .. _next - 1 are kept, frame i in row i % len(_ring).
        self._ring = np.zeros((self.outer - self.inner, n_fft // 2 + 1), dtype=np.float32)
        self._next = 0

    def windows(self, starts: list[int], samples: np.ndarray) -> np.ndarray:
        """``samples[B, window_samples]``, window ``b`` starting at stream sample ``starts[b]`` -> their power
        spectrograms ``[B, n_fft // 2 + 1, frames]`` float32, equal to ``power_spectrum(samples, ...)``."""
        framed = _framed(samples, self.n_fft, self.hop_length)
        out = np.empty((len(starts), self.n_frames, self.n_fft // 2 + 1), dtype=np.float32)
        ring = len(self._ring)
        for b, start in enumerate(starts):
            if start % self.hop_length:
                raise ValueError(f"window start {start}: not on the frame grid (a multiple of {self.hop_length})")
            first = start // self.hop_length
            if first + self.inner < self._next - ring:
                raise ValueError(f"window start {start}: before a window already served; windows go in order")
            new_from = max(self._next, first + self.inner)  # stream frames new_from.. are not kept yet
            new = list(range(new_from - first, self.outer))
            power = _power(framed[b, self._edges + new], self._window)
            out[b, self._edges] = power[: len(self._edges)]
            if new:
                self._ring[[(first + j) % ring for j in new]] = power[len(self._edges):]
                self._next = first + self.outer
            out[b, self.inner : self.outer] = self._ring[np.arange(first + self.inner, first + self.outer) % ring]
        return np.ascontiguousarray(out.transpose(0, 2, 1))
