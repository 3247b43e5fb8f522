"""The shipped default model on the shipped example: barks from recordings it never saw, over everyday sounds
it never saw, at known times (samples/example.json, built by benchmarks/household.py)."""

from __future__ import annotations

import json

from barkwatch.model import modelfile

from helpers import REPO, SAMPLES, run_cli


def test_default_model_is_small_and_complete():
    path = REPO / "models" / "default.pt"
    assert path.stat().st_size <= 20 * 1024 * 1024
    meta = modelfile.read_metadata(path)
    assert meta["window_s"] == 1 and meta["sample_rate"] == 22050 and 0 < meta["threshold"] < 1
    assert meta["training"]["excluded_sources"] > 0  # the test and validation recordings were held out
    # Calibrated on the validation mix for a false-alarm budget, not a balanced accuracy on clips.
    assert meta["bark_net"]["name"] == "cnn-pcen" and meta["calibration"]["budget_per_hour"] <= 2.0


def test_default_model_finds_each_bark_of_the_example_and_nothing_else():
    truth = sorted(json.loads((SAMPLES / "example.json").read_text())["barks"], key=lambda b: b["onset_s"])
    result = run_cli("detect", str(SAMPLES / "example.ogg"), "--events", "-", "-q")
    assert result.returncode == 0, result.stderr
    barks = [e for e in map(json.loads, result.stdout.splitlines()) if e["event"] == "bark"]
    assert len(barks) == len(truth)
    for bark, event in zip(truth, barks):
        # Found within 0.5 s: the event starts no later than 0.5 s after the bark does, and no earlier than
        # one window (1 s) before it, since a window is marked once it holds enough of the bark.
        assert bark["onset_s"] - 1.0 <= event["offset_s"] <= bark["onset_s"] + 0.5, (bark, event)
        assert event["end_offset_s"] >= bark["offset_s"] - 0.5
        assert event["detected_offset_s"] - bark["onset_s"] <= 1.5
