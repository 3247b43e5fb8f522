"""barkwatch as someone installs it from a wheel: built from the repository, installed into a fresh virtual
environment, run away from the checkout. The default model must come with the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import REPO, SAMPLES

pytestmark = pytest.mark.slow


def run(args: list, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    # Nothing of the checkout may leak in: no PYTHONPATH, and not run from the repository.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, REPO], cwd=dist)
    (built,) = dist.glob("barkwatch-*.whl")
    return built


def test_the_wheel_holds_the_default_model_and_every_subpackage(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "barkwatch/model/default.pt" in names and "barkwatch/model/default.onnx" in names
    for package in ("model", "detection", "live", "service", "training", "home", "cli"):
        assert f"barkwatch/{package}/__init__.py" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


def test_a_wheel_in_a_fresh_environment_detects_the_example_barks_without_a_checkout(wheel, tmp_path):
    import torch

    env = tmp_path / "env"
    run([sys.executable, "-m", "venv", env], cwd=tmp_path)
    pip = [env / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    # The torch this environment runs (the CPU build here), so the test does not fetch gigabytes of CUDA.
    run(pip + [f"torch=={torch.__version__}"], cwd=tmp_path)
    run(pip + [wheel], cwd=tmp_path)

    recording = tmp_path / "garden.ogg"
    shutil.copy(SAMPLES / "example.ogg", recording)
    where = run([env / "bin" / "python", "-c", "import barkwatch; print(barkwatch.__file__)"], cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(env)

    done = run([env / "bin" / "barkwatch", "detect", recording, "--events", "-", "--threads", "1", "-q"],
               cwd=tmp_path)
    records = [json.loads(line) for line in done.stdout.splitlines()]
    barks = [r for r in records if r["event"] == "bark"]
    truth = json.loads((SAMPLES / "example.json").read_text())
    assert len(barks) == len(truth["barks"]) == 5
    assert all(r["model"]["file"] == "default.pt" for r in barks)
