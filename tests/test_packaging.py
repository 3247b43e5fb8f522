"""barkwatch as someone installs it from a wheel: built from the repository, installed into a fresh virtual
environment, run away from the checkout. The default model must come with the package, and the README's
small-box install (without torch) must work as written there."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import REPO, SAMPLES

# What the small-box install leaves out, and what its pip line installs instead (pyproject.toml's extra).
LEFT_OUT = ("torch", "librosa", "matplotlib")
SMALL_BOX_EXTRA = "lite"


def run(args: list, cwd: Path, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    # Nothing of the checkout may leak in: no PYTHONPATH, and not run from the repository.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def small_box_commands() -> list[list[str]]:
    """The commands of the README's small-box install, from its code block, split as a shell would."""
    section = (REPO / "README.md").read_text().split("\n## On a small box", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"\n\n((?:    .*\n)+)", section).group(1)
    return [shlex.split(line) for line in re.sub(r"\\\n\s*", " ", block).splitlines() if line.strip()]


def requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower()


def test_the_readme_small_box_install_is_barkwatch_s_own_requirements_less_torch_librosa_and_matplotlib():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [d for d in project["dependencies"] if requirement_name(d) not in LEFT_OUT]
    wanted += project["optional-dependencies"][SMALL_BOX_EXTRA]
    # What the small box leaves out, a plain `pip install barkwatch` brings.
    assert set(LEFT_OUT) <= {requirement_name(d) for d in project["dependencies"]}

    venv, deps, barkwatch, *after = small_box_commands()
    assert venv[1:3] == ["-m", "venv"]
    assert deps[1] == "install" and sorted(deps[2:]) == sorted(wanted)
    # Dependencies first, then barkwatch without its own: in that order pip has no missing torch to warn of.
    assert barkwatch[1:] == ["install", "--no-deps", "barkwatch"]
    assert all(c[0].endswith("/bin/barkwatch") for c in after)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, REPO], cwd=dist)
    (built,) = dist.glob("barkwatch-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_the_default_model_and_every_subpackage(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "barkwatch/model/default.pt" in names and "barkwatch/model/default.onnx" in names
    for package in ("model", "detection", "live", "service", "training", "home", "cli"):
        assert f"barkwatch/{package}/__init__.py" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


@pytest.mark.slow
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


def one_line_naming_pip(done: subprocess.CompletedProcess, *modules: str) -> None:
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("barkwatch: error: ") and "pip install" in lines[0], lines[0]
    for module in modules:
        assert f"'{module}>=" in lines[0], lines[0]


@pytest.mark.slow
def test_the_readme_small_box_install_listens_without_torch_and_says_what_the_rest_needs(wheel, tmp_path):
    env = tmp_path / "env"
    for command in small_box_commands():
        program = command[0].replace("~/barkwatch", str(env))
        if program == "python3":  # the interpreter these tests run on, as the fixture's wheel is built with
            program = sys.executable
        if program.endswith("/bin/barkwatch"):
            continue  # listening to a sound card: a file stands in below
        args = [str(env) if a == "~/barkwatch" else str(wheel) if a == "barkwatch" else a for a in command[1:]]
        run([program, *args], cwd=tmp_path)
    python, barkwatch = env / "bin" / "python", env / "bin" / "barkwatch"
    found = run([python, "-c", "import importlib.util as u; print(' '.join(m for m in "
                 f"{LEFT_OUT!r} if u.find_spec(m)))"], cwd=tmp_path)
    assert found.stdout.strip() == ""

    recording = tmp_path / "garden.ogg"
    shutil.copy(SAMPLES / "example.ogg", recording)
    done = run([barkwatch, "detect", recording, "--events", "-", "-q"], cwd=tmp_path)
    barks = [r for r in map(json.loads, done.stdout.splitlines()) if r["event"] == "bark"]
    assert len(barks) == len(json.loads((SAMPLES / "example.json").read_text())["barks"]) == 5
    assert all(r["model"]["file"] == "default.onnx" for r in barks)

    # listen, briefly: the example's first 6 s (its first bark) from a file, played in real time.
    import soundfile as sf

    audio, rate = sf.read(str(SAMPLES / "example.ogg"), dtype="float32")
    sf.write(str(tmp_path / "first.wav"), audio[:6 * rate], rate)
    done = run([barkwatch, "listen", "--device", f"file:{tmp_path / 'first.wav'}", "--events", "-", "-q",
                "--no-clips", "--state-dir", tmp_path / "state"], cwd=tmp_path, timeout=120)
    assert [r["event"] for r in map(json.loads, done.stdout.splitlines())] == ["bark_start", "bark"]

    # What needs more than this install holds: one line naming what to pip install, exit 2, no traceback.
    one_line_naming_pip(run([barkwatch, "detect", recording, "--plot", "x.png"], cwd=tmp_path, check=False),
                        "librosa", "matplotlib")
    one_line_naming_pip(run([barkwatch, "detect", recording, "--runtime", "torch"], cwd=tmp_path, check=False),
                        "torch")
    one_line_naming_pip(run([barkwatch, "train", "--positives", SAMPLES / "dog", "--out", "m.pt"], cwd=tmp_path,
                            check=False), "torch")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "m.pt").exists()
