"""The Detector: one place that turns a model and settings into the engine's and the tracker's, and the
public API built on it (the README's Python example, run as it is printed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from helpers import REPO, SAMPLES

from barkwatch import Detector, DetectorSettings, Event, load_model
from barkwatch.config import load_config
from barkwatch.detection.detector import DetectorError
from barkwatch.live.record import LevelScorer
from barkwatch.model.interface import WindowScorer
from barkwatch.model.modelfile import DEFAULT_MODEL, ModelFileError

EXAMPLE = SAMPLES / "example.ogg"


@pytest.fixture(scope="module")
def default_model():
    return load_model(DEFAULT_MODEL)


def test_the_readme_python_example_runs_as_printed_and_finds_the_example_barks():
    (code,) = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    truth = json.loads((SAMPLES / "example.json").read_text())["barks"]
    printed = [float(line.split()[0]) for line in done.stdout.splitlines()]
    assert len(printed) == len(truth) == 5
    for start, bark in zip(printed, truth):  # each event starts within a window of its bark's onset
        assert bark["onset_s"] - 1.0 <= start <= bark["offset_s"]


def test_nothing_given_means_the_model_own_threshold_and_hop(default_model):
    detector = Detector(default_model)
    assert detector.threshold == default_model.threshold == pytest.approx(default_model.metadata["threshold"])
    assert detector.engine_settings.hop_s == default_model.metadata["hop_s"]
    given = Detector(default_model, DetectorSettings(threshold=0.9, hop_s=0.5, gate_dbfs=-50.0, patience=3))
    assert (given.threshold, given.engine_settings.hop_s, given.engine_settings.gate_dbfs,
            given.tracker_settings.patience) == (0.9, 0.5, -50.0, 3)


def test_the_configuration_reaches_every_setting_and_a_reload_keeps_the_model(default_model, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("audio:\n  channel: 1\ndetector:\n  threshold: 0.7\n  hop_s: 0.5\n  gate_dbfs: -55\n"
                    "  patience: 3\n  release_s: 1.5\n  merge_s: 4\n  max_duration_s: 120\n")
    settings = DetectorSettings.from_config(load_config(path, env={}).config)
    assert settings == DetectorSettings(threshold=0.7, hop_s=0.5, gate_dbfs=-55.0, patience=3, release_s=1.5,
                                        merge_s=4.0, max_duration_s=120.0, channel=1)
    detector = Detector(default_model, settings)
    reloaded = detector.with_settings(DetectorSettings.from_config(load_config(None, env={}, search=[]).config))
    assert reloaded.model is detector.model and reloaded.threshold == default_model.threshold


@pytest.mark.parametrize("settings, says", [(DetectorSettings(hop_s=0.0), "hop"),
                                            (DetectorSettings(hop_s=0.0232), r"hop_s 0.0232: shorter than "
                                             r"the model's STFT hop \(512 samples\).*use 0.0233 s or more"),
                                            (DetectorSettings(threshold=1.5), "threshold"),
                                            (DetectorSettings(patience=0), "patience")])
def test_settings_that_cannot_work_are_one_line_errors(default_model, settings, says):
    with pytest.raises(DetectorError, match=says) as caught:
        Detector(default_model, settings)
    assert "\n" not in str(caught.value)


def test_a_missing_model_file_or_an_absent_device_is_named(tmp_path):
    with pytest.raises(ModelFileError, match="nothing.pt: no such model file"):
        Detector.load(tmp_path / "nothing.pt", compute="cpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DetectorError, match="compute cuda: no CUDA GPU"):
            Detector.load(compute="cuda")


def test_an_array_gives_the_events_a_scan_of_the_file_gives():
    detector = Detector.load(compute="cpu", threads=1)
    audio, rate = sf.read(str(EXAMPLE), dtype="float32")
    from_array = detector.detect(audio, rate)
    from_file = detector.scan(EXAMPLE).events
    assert len(from_array) == 5 and all(isinstance(e, Event) for e in from_array)
    assert [(e.start_s, e.end_s, e.peak_score) for e in from_array] == \
        [(e.start_s, e.end_s, e.peak_score) for e in from_file]
    assert detector.detect(np.zeros(rate * 3, dtype=np.float32), rate) == []


def test_what_detection_calls_a_model_is_one_interface(default_model):
    level = LevelScorer(22050, 22050, 0.25)
    for scorer in (default_model, level):
        assert isinstance(scorer, WindowScorer)
    assert Detector(level).threshold == 0.5  # the level scorer's own


def test_importing_barkwatch_loads_neither_torch_nor_numpy():
    code = "import sys, barkwatch; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
