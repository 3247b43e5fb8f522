"""What the tests share besides fixtures: where the sample clips are, running the command as a user would,
filling a disk, and a terminal driven through tmux."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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


class Tmux:
    """A detached tmux session running one command in a fixed-size window."""

    def __init__(self, tmp_path: Path, command: list[str], env: dict[str, str] | None = None):
        self.name = f"bw{os.getpid()}{int(time.time() * 1000) % 100000}"
        self.socket = str(tmp_path / "tmux.sock")
        env = {"XDG_STATE_HOME": os.environ.get("XDG_STATE_HOME", ""), **(env or {})}
        shell = f"cd {REPO} && {' '.join(command)}; echo EXITED $?; sleep 30"
        options = [x for k, v in env.items() for x in ("-e", f"{k}={v}")]
        self.tmux("new-session", "-d", "-s", self.name, "-x", "120", "-y", "40", *options, shell)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=20,
                              env=dict(os.environ, TERM="xterm-256color")).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        pytest.fail(f"{text!r} never appeared; the screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def close(self) -> None:
        self.tmux("kill-server")
