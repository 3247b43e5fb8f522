"""Shared fixtures: the repository's sample clips (real ESC-10 and FSDD recordings) and a trained model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
DOGS = SAMPLES / "dog"
OTHERS = SAMPLES / "other"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``barkwatch`` as a user would: a fresh process, output captured, no terminal."""
    env = dict(os.environ, PYTHONWARNINGS="default")  # any warning torch emits would show in stderr
    return subprocess.run([sys.executable, "-m", "barkwatch", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """The issue's acceptance run: default preset and window, two epochs, on the shipped sample clips."""
    out = tmp_path_factory.mktemp("trained")
    result = run_cli("train", "--positives", str(DOGS), "--negatives", str(OTHERS), "--out",
                     str(out / "m.pt"), "--epochs", "2", "--report", str(out / "report"))
    return out, result
