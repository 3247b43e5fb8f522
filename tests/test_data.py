"""Where windows come from, which recording a file belongs to, the grouped split, and early stopping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from barkwatch.training.train import (Clip, PrecheltStopping, _manifest_groups, active_windows, bark_onsets,
                                      onset_windows, recording_group, split_groups)

from helpers import SAMPLES


def test_recording_group_from_manifest_then_file_name_then_folder(tmp_path):
    manifest = _manifest_groups(SAMPLES / "dog")  # the manifest sits in the parent folder
    entries = [json.loads(line) for line in (SAMPLES / "manifest.jsonl").read_text().splitlines()]
    for entry in entries[:5]:
        expected = f"{entry['dataset']}/{entry['source_id']}"
        assert recording_group(SAMPLES / entry["file"], SAMPLES / "dog", manifest) == expected
    assert recording_group(Path("/x/1-100032-A-0.wav"), Path("/x"), {}) == "ESC-50/100032"
    assert recording_group(Path("/x/100652-3-0-12.wav"), Path("/x"), {}) == "UrbanSound8K/100652"
    (tmp_path / "rex" / "day1").mkdir(parents=True)
    assert recording_group(tmp_path / "rex" / "day1" / "a.wav", tmp_path, {}) == "dir:rex/day1"


def test_active_windows_come_from_where_the_sound_is():
    sr, n = 22050, 22050
    wave = np.zeros(5 * sr, dtype=np.float32)
    wave[int(3.2 * sr) : int(3.6 * sr)] = 0.5 * np.sin(np.arange(int(0.4 * sr)) * 0.3)  # a bark at 3.2 s
    windows = active_windows(wave, n, max_windows=4, active_db=6.0)
    bark_samples = np.sum(np.abs(wave) > 0.01)
    held = [np.sum(np.abs(w) > 0.01) / bark_samples for w in windows]
    # Within 6 dB of the loudest window: each holds at least a quarter of the bark, one holds all of it,
    # and the silent first three seconds give no window at all.
    assert min(held) >= 0.25 and max(held) == 1.0
    assert len(windows) <= 4


def test_onset_windows_end_just_after_each_bark_begins_over_a_noise_floor():
    sr, n = 22050, 22050
    wave = (np.random.default_rng(0).standard_normal(5 * sr) * 0.01).astype(np.float32)  # a floor at -40 dBFS
    bark = 0.5 * np.sin(np.arange(int(0.3 * sr)) * 0.3)
    for at in (0.5, 2.0, 3.5):  # three barks, 0.3 s each, more than a window apart
        wave[int(at * sr):int(at * sr) + len(bark)] += bark
    assert [round(o / sr, 1) for o in bark_onsets(wave, sr)] == [0.5, 2.0, 3.5]
    windows = onset_windows(wave, n, sr, ends_after_s=(0.15, 0.35))
    assert windows.shape == (6, n)
    # Each window ends 0.15 or 0.35 s into a bark (onsets are found to a 23 ms frame): its last part is loud,
    # what came before is the floor.
    for w, after in zip(windows, (0.15, 0.35) * 3):
        loud = np.flatnonzero(np.abs(w) > 0.1)
        assert loud[-1] >= n - int(0.05 * sr) and n - loud[0] == pytest.approx(after * sr, abs=0.05 * sr)
    assert np.abs(windows[0][: int(0.3 * sr)]).max() == 0  # before the clip began: zeros
    assert onset_windows(np.zeros(sr, np.float32), n, sr).shape == (0, n)


def test_short_clips_are_padded_to_one_window():
    windows = active_windows(np.ones(1000, dtype=np.float32), 22050, 4, 6.0)
    assert windows.shape == (1, 22050)
    assert windows.sum() == 1000


def test_split_never_cuts_a_recording_and_is_reproducible():
    clips = [Clip(Path(f"{g}-{i}.wav"), label, f"{label}:{g}") for label in (0, 1) for g in range(20)
             for i in range(3)]
    a = split_groups(clips, (0.7, 0.15, 0.15), seed=3)
    b = split_groups(clips, (0.7, 0.15, 0.15), seed=3)
    assert {s: [c.path for c in v] for s, v in a.items()} == {s: [c.path for c in v] for s, v in b.items()}
    seen = {}
    for split, members in a.items():
        for c in members:
            assert seen.setdefault(c.group, split) == split
        assert {c.label for c in members} == {0, 1}  # every split has barks and other sounds
    assert sum(len(v) for v in a.values()) == len(clips)
    assert len(a["train"]) > len(a["val"]) > 0


def test_prechelt_stops_when_validation_rises_while_training_stalls():
    stop = PrecheltStopping(k=5, alpha=2.0)
    decisions = [stop.update(10.0 / (e + 1), 5.0 / (e + 1)) for e in range(10)]
    assert not any(decisions)  # both improving: keep going
    stop = PrecheltStopping(k=5, alpha=2.0)
    train = [10, 9, 8, 7.9, 7.85, 7.84, 7.83, 7.82, 7.81, 7.805]
    val = [5, 4, 3.0, 3.1, 3.3, 3.6, 4.0, 4.5, 5.0, 5.5]
    stopped_at = next(e for e, (t, v) in enumerate(zip(train, val)) if stop.update(t, v))
    assert stopped_at == 9 and stop.best_epoch == 2 and "GL/P_5" in stop.reason
    patient = PrecheltStopping(k=5, alpha=2.0, min_epochs=12)  # the same losses: no stop before epoch 12
    assert not any(patient.update(t, v) for t, v in zip(train, val)) and patient.best_epoch == 2

