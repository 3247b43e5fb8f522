"""The home benchmark (benchmarks/home.py): homes built from a data folder's manifest, the owner's steps run as
the real commands (record, label's writer, train, calibrate, detect), and the figures scored from the truth."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from helpers import REPO, SAMPLES

sys.path.insert(0, str(REPO / "benchmarks"))
import home  # noqa: E402


def sample_data(tmp_path):
    """samples/ as a data folder in which three dog clips are one dog's recording (ESC-10 keeps at most two of
    a recording), so a home has clips for its enrolment day and for the weeks after."""
    data = tmp_path / "data"
    data.mkdir()
    for folder in ("dog", "other"):
        (data / folder).symlink_to(SAMPLES / folder)
    entries = [json.loads(x) for x in (SAMPLES / "manifest.jsonl").read_text().splitlines() if x.strip()]
    dogs = sorted(e["file"] for e in entries if e["label"] == "dog")
    for e in entries:
        if e["file"] in dogs[:3]:
            e["source_id"] = "one-dog"
    (data / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    return data


def test_homes_are_drawn_reproducibly_from_the_manifest(tmp_path):
    import household as H

    clips = H.read_manifest(sample_data(tmp_path))
    plans = home.plan_homes(clips, 2, seed=0)
    assert plans == home.plan_homes(clips, 2, seed=0)
    for plan in plans:
        assert plan.dog == "ESC-50/one-dog"  # the only dog with 3 clips
        assert len(plan.enrol) == 2 and len(plan.later) == 1 and not set(plan.enrol) & set(plan.later)
        assert plan.neighbour[0].source != plan.dog and plan.neighbour[0].label == "dog"
        assert len(plan.sounds) == home.CATEGORIES and all(c.label == "other" for cs in plan.sounds.values()
                                                           for c in cs)
        assert home.FLOOR_DBFS[0] <= plan.floor_dbfs <= home.FLOOR_DBFS[1]
    assert plans[0].sounds != plans[1].sounds or plans[0].floor_dbfs != plans[1].floor_dbfs
    with pytest.raises(home.HomeError, match="3 or more clips"):
        home.plan_homes([c for c in clips if c.source != "ESC-50/one-dog"], 1, seed=0)


@pytest.mark.slow
def test_a_home_runs_through_the_real_commands_and_is_scored_from_its_truth(tmp_path):
    # Short recordings and five epochs of fine-tuning: what is tested is the benchmark's machinery, not the
    # enrolled model's quality (that is benchmarks/home.py's own run).
    data, out = sample_data(tmp_path), tmp_path / "out"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "home.py"), "--data", str(data),
                             "--homes", "1", "--day-minutes", "8", "--quiet-minutes", "3", "--after-minutes", "3", "--jobs", "1",
                             "--out", str(out), "--modes", "default,default+calibrate,enrolled+calibrate",
                             "--labels-budget", "30", "--train-args=--epochs 5"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["modes"]) == {"default", "default+calibrate", "enrolled+calibrate"}
    for figures in summary["modes"].values():
        assert {"recall", "false_alarms_per_hour", "delay_median_s", "other_dog_accept"} <= set(figures)
    (row,) = summary["homes"]
    folder = out / "home00"
    # The recordings and their truth: the dog's enrolment clips only on day 1, its later ones only after.
    truths = {name: json.loads((folder / f"{name}.json").read_text()) for name in ("day1", "quiet", "after")}
    mine = {name: {b["file"] for b in t["barks"] if b["dog"] == "mine"} for name, t in truths.items()}
    assert mine["day1"] == set(row["enrol_clips"]) and mine["after"] == set(row["later_clips"])
    assert not truths["quiet"]["barks"]
    audio, rate = sf.read(str(folder / "after.wav"))
    assert rate == 22050 and len(audio) == 3 * 60 * rate and np.abs(audio).max() <= 1.0
    # The owner's labels, written as `label` writes them, at most the budget.
    lines = [json.loads(x) for x in (folder / "recorded" / "labels.jsonl").read_text().splitlines()]
    assert 0 < len(lines) <= 30 and {x["label"] for x in lines} <= {"my_dog", "other_dog", "not_bark"}
    assert sum(row["labels"].values()) == len(lines)
    assert (folder / "enrolled-cal.pt").is_file() and (folder / "default-cal.pt").is_file()
    # Each mode's figures come from its own threshold; the counts agree with the truth.
    after_barks = sum(b["dog"] == "mine" for b in truths["after"]["barks"])
    for mode, m in row["modes"].items():
        assert m["barks"] == after_barks and 0.0 <= m["recall"] <= 1.0
        assert m["false_alarms_per_hour"] == pytest.approx(m["false_alarms"] / (3 / 60))
    assert (out / "results.md").is_file() and (out / "home.png").stat().st_size > 1000


def test_a_data_folder_without_a_manifest_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "home.py"), "--data", str(tmp_path),
                             "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "manifest.jsonl" in result.stderr and len(result.stderr.strip().splitlines()) == 1
