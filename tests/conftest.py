"""Shared fixtures: a private state folder, a trained and a random model, a real tmpfs to fill, the virtual
microphone, a time zone with DST and a terminal. Plain helpers (paths, ``run_cli``, ``fill``, ``Tmux``) are in
``helpers.py``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DOGS, OTHERS, Tmux, run_cli


def pytest_collection_modifyitems(items):
    """A test that plays into the virtual microphone is live; a live test runs in real time, so it is slow as
    well and ``-m "not slow"`` (the everyday subset) leaves it out."""
    for item in items:
        if "vmic" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.live)
        if item.get_closest_marker("live"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def private_state(tmp_path_factory):
    """Every barkwatch the tests start keeps its state (events, clips, status file) and finds its user config
    in a folder of the test session's, never in the home folder of whoever runs the tests."""
    root = tmp_path_factory.mktemp("xdg")
    saved = {k: os.environ.get(k) for k in ("XDG_STATE_HOME", "XDG_CONFIG_HOME")}
    os.environ["XDG_STATE_HOME"], os.environ["XDG_CONFIG_HOME"] = str(root / "state"), str(root / "config")
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """`barkwatch train` as a user runs it: default preset and window, two epochs, on the shipped sample clips."""
    out = tmp_path_factory.mktemp("trained")
    result = run_cli("train", "--positives", str(DOGS), "--negatives", str(OTHERS), "--out",
                     str(out / "m.pt"), "--epochs", "2", "--report", str(out / "report"))
    return out, result


@pytest.fixture(scope="session")
def random_model(tmp_path_factory) -> Path:
    """An exported 1 s model with random weights and threshold 0.5: for testing the machinery around a
    model (windows, gate, events, files), which does not depend on what the model has learned."""
    import torch

    from barkwatch.model import modelfile
    from barkwatch.model.classifier import LinearClassifier
    from barkwatch.model.features import Spectrogram
    from barkwatch.model.vae import PRESETS, VAE
    from barkwatch.model.scorer import Scorer

    torch.manual_seed(0)
    vae = VAE(PRESETS["small"], 128, 44)
    with torch.no_grad():
        vae(torch.rand(8, 1, 128, 44))  # settle BatchNorm statistics
    clf = LinearClassifier((-3.0, 1.0), (1.0, 0.5), (0.3, 1.2), -0.2, 0.5, "logistic")
    path = tmp_path_factory.mktemp("random-model") / "random.pt"
    metadata = {"sample_rate": 22050, "window_s": 1, "window_samples": 22050, "hop_s": 0.25, "threshold": 0.5}
    modelfile.save(Scorer(Spectrogram(), vae, 22050, clf), metadata, path)
    return path


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs("256k")`` mounts a real tmpfs of that size (a disk that can really fill up) and returns its
    folder; all are unmounted afterwards. Skips without root, as mounting needs it (CI runs as root)."""
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs to fill needs root")
        mnt = tmp_path / f"tiny{len(mounts)}"
        mnt.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=False,
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
        mounts.append(mnt)
        return mnt

    yield mount
    for mnt in mounts:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.fixture
def vmic():
    """A virtual microphone named ``vmic`` (``benchmarks/vmic.py``): a private PulseAudio server with a null sink
    whose monitor PortAudio lists as the ALSA device ``vmic``, at 22,050 Hz mono, the rate of the sample clips,
    so a clip played with ``vmic.play(path)`` arrives bit-exact (to the sink's 16 bits) and in real time.

    Per test (it starts in about 0.1 s), so a test may stop or restart the server freely. PortAudio lists
    devices once, at ``import sounddevice``: run the code that captures in a subprocess with ``env=vmic.env()``.
    Skips when pulseaudio, pactl or paplay is missing; a missing ALSA pulse plugin is an error, not a skip.
    """
    from vmic import VirtualMic, missing_programs

    if missing := missing_programs():
        pytest.skip(f"the virtual microphone needs {', '.join(missing)}: "
                    "apt-get install pulseaudio pulseaudio-utils libasound2-plugins (or run scripts/setup --tests)")
    with VirtualMic(rate=22050, channels=1) as mic:
        yield mic


@pytest.fixture
def berlin(monkeypatch):
    """The process's local time zone is Europe/Berlin (DST on the last Sunday of March and October)."""
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def tmux(tmp_path):
    """``tmux("label", DIR)`` runs ``barkwatch label DIR`` in a detached tmux session (``helpers.Tmux``)."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux, or run scripts/setup --tests)")
    sessions: list[Tmux] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Tmux:
        session = Tmux(tmp_path, [sys.executable, "-m", "barkwatch", *args], env)
        sessions.append(session)
        return session

    yield start
    for s in sessions:
        s.close()
