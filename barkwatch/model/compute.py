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


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of handing it back to the system at once.

    Scoring allocates and frees the same few megabytes for every batch of windows. By default glibc returns
    blocks over 128 KiB with ``munmap`` and trims the heap top, so the next batch takes page faults to get the
    same memory back: on this project's machine that was a third of the time per window at batch 8 (features
    0.55 -> 0.34 ms, the whole network 1.4 -> 0.9 ms). Peak memory is unchanged; memory freed after a peak
    stays with the process. Linux with glibc only; returns False (and changes nothing) elsewhere.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc; musl has no mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    # glibc refuses an mmap threshold over HEAP_MAX_SIZE / 2: 32 MiB with 64-bit pointers, 512 KiB with 32-bit.
    mmap_threshold = 32 << 20 if ctypes.sizeof(ctypes.c_void_p) == 8 else 512 << 10
    mmap_set = bool(mallopt(m_mmap_threshold, mmap_threshold))
    trim_set = bool(mallopt(m_trim_threshold, 128 << 20))
    return mmap_set and trim_set
