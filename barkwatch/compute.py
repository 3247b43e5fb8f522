"""Choosing where the network runs: CUDA, Apple's MPS, or the CPU."""

from __future__ import annotations

CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve(name: str):
    """``auto`` picks CUDA, then MPS, then the CPU. An explicit choice that is absent raises ValueError."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("cuda: no CUDA GPU is visible to torch; use auto or cpu")
    if name == "mps" and not mps_ok:
        raise ValueError("mps: Apple's MPS backend is not available; use auto or cpu")
    if name not in CHOICES:
        raise ValueError(f"{name}: choose one of {', '.join(CHOICES)}")
    return torch.device(name)
