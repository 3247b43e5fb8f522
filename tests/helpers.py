"""What the tests share besides fixtures: where the sample clips are, running the command as a user would,
and filling a disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
DOGS = SAMPLES / "dog"
OTHERS = SAMPLES / "other"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``barkwatch`` as a user would: a fresh process, output captured, no terminal."""
    env = dict(os.environ, PYTHONWARNINGS="default")  # any warning torch emits would show in stderr
    return subprocess.run([sys.executable, "-m", "barkwatch", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def fill(path: Path) -> None:
    """Fill the file system of ``path`` with that file until it is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == 28  # ENOSPC
    finally:
        os.close(fd)
