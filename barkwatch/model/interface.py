"""The scorer interface: what detection asks of a model, written down once.

Everything downstream of the model (the engine, the detector, ``detect``, ``listen``, ``record``, ``calibrate``)
talks to a model only through ``WindowScorer``. A loaded model file is one (``modelfile.LoadedModel``, whose
``forward`` is the exported TorchScript module's); so is ``record``'s level detector. A new kind of network
therefore changes the model package (the module ``Scorer`` exports, and training) and nothing else, as long
as its exported ``forward`` keeps this contract:

    forward(wave[B, N]) -> (rl[B], kl[B], score[B])

``wave`` holds ``B`` windows of mono float32 samples in [-1, 1] at ``sample_rate``, ``N == window_samples``;
``score`` is the probability of a bark in [0, 1]; ``rl`` and ``kl`` are the VAE's loss terms (NaN where a
scorer has none). No torch is imported here, so reading this costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


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

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``wave[B, window_samples]`` -> ``(rl[B], kl[B], score[B])``, on the device ``wave`` is on."""
        ...
