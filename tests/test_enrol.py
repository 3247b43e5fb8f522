"""`barkwatch enrol`: the steps and their state on their own; the whole of it through a terminal (tmux), from a
day's recording to a calibrated model and a config pointing at it; and a quiet recording from the virtual
microphone interrupted and carried on."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from barkwatch.home.enrol import (EnrolError, EnrolPlan, EnrolState, check_labels, command_for, recorded_minutes,
                                  steps_left)
from barkwatch.home.label import labels_in
from barkwatch.live.record import read_index
from helpers import DOGS, OTHERS, REPO, run_cli

SR = 22050


def test_state_survives_a_round_trip_and_redo_forgets_the_later_steps(tmp_path):
    state = EnrolState(device="hw:1", done=["day", "quiet", "label"], day_minutes=60.0, quiet_minutes=42.5)
    state.save(tmp_path)
    again = EnrolState.load(tmp_path)
    assert again == state
    again.redo("quiet")
    assert again.done == ["day"] and again.day_minutes == 60.0 and again.quiet_minutes == 0.0
    (tmp_path / "enrol.json").write_text('{"done": ["dance"]}')
    with pytest.raises(EnrolError, match="enrol.json: unknown steps"):
        EnrolState.load(tmp_path)


def test_each_step_is_the_command_an_owner_would_run_for_what_is_left(tmp_path):
    plan = EnrolPlan(tmp_path / "rex", "hw:1", day_minutes=60, quiet_minutes=60, base_model=Path("/m/default.pt"),
                     budget=0.5, negatives=(Path("samples/other"),), set_config=Path("c.yaml"))
    state = EnrolState(device="hw:1", day_minutes=40.0)
    assert steps_left(state, plan) == ["day", "quiet", "label", "train", "calibrate"]
    day = command_for("day", state, plan)
    assert day[:2] == ["record", "--device"] and day[day.index("--minutes") + 1] == "20"
    assert "--fast" not in day  # a microphone is never read faster than it speaks
    assert command_for("quiet", state, plan)[-4:] == ["--keep", "all", "--minutes", "60"]
    train = command_for("train", state, plan)
    assert train == ["train", "--labels", str(plan.labels), "--negatives", "samples/other", "--init",
                     "/m/default.pt", "--out", str(plan.model)]
    quick = EnrolPlan(tmp_path / "rex", "hw:1", epochs=5)
    assert command_for("train", state, quick)[-4:] == ["--epochs", "5", "--out", str(quick.model)]
    calibrate = command_for("calibrate", state, plan)
    assert calibrate[calibrate.index("--background") + 1] == str(tmp_path / "rex" / "quiet" / "audio")
    assert calibrate[-2:] == ["--set-config", "c.yaml"]
    given = EnrolPlan(tmp_path / "rex", "file:day.flac", quiet=Path("q.flac"), fast=True)
    assert "quiet" not in steps_left(EnrolState(), given) and "--fast" in command_for("day", state, given)
    assert command_for("calibrate", state, given)[4] == "q.flac"


def test_training_waits_for_enough_labels_of_both_kinds(tmp_path):
    check_labels({"my_dog": 3, "not_bark": 2, "other_dog": 1}, tmp_path / "labels.jsonl")
    with pytest.raises(EnrolError, match=r"2 'my dog' and 9 other label\(s\)"):
        check_labels({"my_dog": 2, "not_bark": 9}, tmp_path / "labels.jsonl")


def day_recording(tmp_path: Path) -> tuple[Path, list[tuple[float, float]]]:
    """Sample barks and other sounds one after another over a faint noise floor, 3 s apart; the barks' spans."""
    rng = np.random.default_rng(3)
    dogs, others = sorted(DOGS.iterdir())[:8], sorted(OTHERS.iterdir())[:10]
    order = rng.permutation([(p, True) for p in dogs] + [(p, False) for p in others])
    pieces, barks, at = [], [], 3.0
    for path, is_dog in order:
        audio, rate = sf.read(str(path), dtype="float32")
        assert rate == SR
        pieces += [np.zeros(int(3.0 * SR), np.float32), audio]
        if is_dog:
            barks.append((at, at + len(audio) / SR))
        at += 3.0 + len(audio) / SR
    day = np.concatenate(pieces + [np.zeros(3 * SR, np.float32)])
    day += rng.normal(0, 10 ** (-65 / 20), len(day)).astype(np.float32)
    sf.write(str(tmp_path / "day.wav"), day, SR)
    return tmp_path / "day.wav", barks


@pytest.mark.slow
def test_enrol_through_a_terminal_gives_a_calibrated_model_and_points_the_config_at_it(tmp_path, tmux):
    day, barks = day_recording(tmp_path)
    quiet = tmp_path / "quiet.wav"  # the home without barking: other sounds over the same floor
    rng = np.random.default_rng(4)
    parts = [sf.read(str(p), dtype="float32")[0] for p in sorted(OTHERS.iterdir())[10:30]]
    audio = np.concatenate([np.concatenate([np.zeros(2 * SR, np.float32), p]) for p in parts])
    sf.write(str(quiet), audio + rng.normal(0, 10 ** (-65 / 20), len(audio)).astype(np.float32), SR)
    config = tmp_path / "config.yaml"
    folder = tmp_path / "rex"

    t = tmux("enrol", str(folder), "--device", f"file:{day}", "--fast", "--quiet", str(quiet), "--negatives",
             str(OTHERS), "--set-config", str(config), "--epochs", "4")
    t.wait_for("clip 1 of", timeout=300)  # day recorded, the quiet step skipped: labelling
    index = {e["clip"]: e for e in read_index(folder / "day")}
    decided = 0
    while True:
        screen = t.wait_for("score", timeout=60)
        match = re.search(r"clip (\d+) of (\d+)", screen)
        name = next(name for name in index if name in screen)
        entry = index[name]
        lo, hi = entry["offset_s"], entry["offset_s"] + entry["duration_s"]
        is_bark = any(lo < b_end and b_start < hi for b_start, b_end in barks)
        t.keys("m" if is_bark else "n")
        decided += 1
        if match.group(1) == match.group(2):
            break
        t.wait_for(f"clip {int(match.group(1)) + 1} of", timeout=60)
    screen = t.wait_for("EXITED", timeout=900)
    assert "EXITED 0" in screen, screen
    assert "enrolled:" in screen and "Listen with: barkwatch listen" in screen

    state = json.loads((folder / "enrol.json").read_text())
    assert state["done"] == ["day", "label", "train", "calibrate"]
    labels = labels_in(folder / "day" / "labels.jsonl")
    assert len(labels) == decided and set(labels.values()) == {"my_dog", "not_bark"}
    meta = json.loads(run_cli("inspect", str(folder / "model.pt"), "--json").stdout)
    calibration = meta["calibration"]
    assert calibration["bark_clips"] == list(labels.values()).count("my_dog")
    assert calibration["false_alarms_per_hour"] <= 0.5
    text = config.read_text()
    assert str((folder / "model.pt").resolve()) in text and "threshold" in text
    assert (folder / "calibration.png").stat().st_size > 0

    # Run again: nothing left to do, nothing redone.
    again = run_cli("enrol", str(folder), "--quiet", str(quiet), "--set-config", str(config))
    assert again.returncode == 0 and "every step is done" in again.stderr


def test_an_interrupted_quiet_recording_keeps_what_it_has_and_resumes(vmic, tmp_path):
    """Through the virtual microphone: day (a few seconds), then the quiet hour stopped with SIGINT as Ctrl-C
    would; the state and the pieces written survive, and the next run records only what is left."""
    folder = tmp_path / "home"
    args = [sys.executable, "-m", "barkwatch", "enrol", str(folder), "--device", vmic.name, "--day-minutes", "0.05",
            "--quiet-minutes", "0.5", "--yes"]
    err_path = tmp_path / "enrol.stderr"
    with open(err_path, "w") as stderr_file:
        proc = subprocess.Popen(args, cwd=REPO, env=vmic.env(), stdout=subprocess.PIPE, stderr=stderr_file,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while err_path.read_text().count("Ctrl-C stops") < 2:  # the second recording (quiet) has its stream open
        assert proc.poll() is None and time.monotonic() < deadline, err_path.read_text()
        time.sleep(0.1)
    time.sleep(12.0)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: enrol and the recording both get it
    proc.wait(timeout=60)
    stderr = err_path.read_text()
    assert proc.returncode == 130, stderr
    assert "stopped during quiet; what was done is kept" in stderr
    state = json.loads((folder / "enrol.json").read_text())
    assert state["done"] == ["day"] and 0.05 <= state["quiet_minutes"] < 0.5
    assert state["quiet_minutes"] == pytest.approx(recorded_minutes(folder / "quiet"))
    assert not list(folder.rglob("*.part"))

    again = subprocess.run([sys.executable, "-m", "barkwatch", "enrol", str(folder), "--quiet-minutes", "0.3",
                            "--yes"], cwd=REPO, env=vmic.env(), capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=120)
    # The device is remembered; the quiet step records what is left, then the silent day gave nothing to label.
    assert again.returncode == 1 and "no clips to label" in again.stderr, again.stderr
    assert f"({0.3 - state['quiet_minutes']:g} min left)" in again.stderr
    before = state["quiet_minutes"]
    state = json.loads((folder / "enrol.json").read_text())
    pieces = [e for e in read_index(folder / "quiet") if e["kind"] == "audio"]
    assert len(pieces) == 2 and state["done"] == ["day", "quiet"]  # one piece per run, the first kept
    # --minutes counts audio from the stream's opening; it stops within a check (0.2 s) and a block of it.
    assert pieces[1]["duration_s"] == pytest.approx((0.3 - before) * 60, abs=1.0)
    assert state["quiet_minutes"] == pytest.approx(before + pieces[1]["duration_s"] / 60)


def test_bad_options_name_themselves(tmp_path):
    result = run_cli("enrol", str(tmp_path / "x"), "--redo", "everything")
    assert result.returncode == 2 and "--redo everything" in result.stderr
    result = run_cli("enrol", str(tmp_path / "x"), "--device", "hw:1", "--quiet", str(tmp_path / "nope.flac"))
    assert result.returncode == 2 and "nope.flac" in result.stderr
