"""The scorer interface: what detection asks of a model, written down once.

Everything downstream of the model (the engine, the detector, ``detect``, ``listen``, ``record``, ``calibrate``)
talks to a model only through ``WindowScorer``, in numpy. A loaded model file is one (``modelfile.LoadedModel``
runs the exported TorchScript module's ``forward`` on its device; ``onnxrt.OnnxModel`` the same network on
ONNX Runtime); so is ``record``'s level detector. A new kind of network therefore changes the model package
(the module ``Scorer`` exports, and training) and nothing else, as long as it keeps this contract:

    score(windows[B, N]) -> (rl[B], kl[B], score[B])

``windows`` holds ``B`` windows of mono float32 samples in [-1, 1] at ``sample_rate``, ``N == window_samples``;
``score`` is the probability of a bark in [0, 1]; ``rl`` and ``kl`` are the VAE's loss terms (NaN where a
scorer has none); all three float64. No torch is imported here or by the engine, so a process that scores
with ONNX Runtime never loads it.

A scorer may also offer ``score_power(power[B, n_fft // 2 + 1, frames], windows[B, N])``: the same three
numbers from the windows' power spectrograms (``model/spectrum.py``), which the engine then computes once per
frame of the stream instead of once per window (the windows come along for a YAMNet branch, which computes
its own features) (``onnxrt.OnnxModel`` does; torch's own STFT is cheaper than numpy's even
with the sharing, so ``LoadedModel`` does not).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class WindowScorer(Protocol):
    """A model as detection sees it: fixed-length windows at one rate in, three numbers per window out."""

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) its windows must be at; the engine resamples whatever the input is to it."""
        ...

    @property
    def window_samples(self) -> int:
        """Samples in one window (1 s at 22,050 Hz for the default model: 22,050)."""
        ...

    @property
    def metadata(self) -> dict:
        """What the model says of itself; detection reads ``threshold`` and ``hop_s`` (its suggested defaults)."""
        ...

    def score(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``windows[B, window_samples]`` (float32) -> ``(rl[B], kl[B], score[B])`` (float64)."""
        ...
