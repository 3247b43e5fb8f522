"""`barkwatch label`: driven through tmux as a person at a terminal would (keys in, the screen read back), on
a folder `record` wrote; plus the drawing and the reading of labels.jsonl on their own."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from barkwatch.home.label import Clip, LabelError, draw_image, find_clips, in_order, labels_in, render
from helpers import DOGS, OTHERS, run_cli


def test_the_picture_puts_high_bands_on_top_two_to_a_character():
    image = np.zeros((4, 3))
    image[3, :] = 1.0  # the highest band bright
    lines = draw_image(image, color=True)
    assert len(lines) == 2
    assert "\x1b[38;5;231m" in lines[0] and "\x1b[48;5;16m" in lines[0]  # bright above, dark below
    assert "231" not in lines[1]
    plain = draw_image(image, color=False)
    assert plain[0] == "@@@" and plain[-1] == "   "


def test_render_shows_the_clip_its_score_and_the_keys():
    text = render(Clip(Path("x.flac"), "clips/x.flac", "2026-11-25T10:00:01.000+01:00", "sound"), 2, 9,
                  {"my_dog": 1}, 3.25, 0.87, ["###"], "", "playing")
    assert "clip 2 of 9" in text and "1 my dog, 0 other dog, 0 not a bark" in text
    assert "clips/x.flac  (sound)  heard 2026-11-25 10:00:01" in text and "score 0.87" in text
    assert "3.2 s" in text and "[u] undo" in text


def test_labels_in_takes_the_latest_line_and_drops_undone_ones(tmp_path):
    path = tmp_path / "labels.jsonl"
    lines = [{"clip": "a", "label": "my_dog"}, {"clip": "b", "label": "not_bark"}, {"clip": "a", "label": None},
             {"clip": "c", "label": "other_dog"}, {"clip": "b", "label": "my_dog"}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    assert labels_in(path) == {"b": "my_dog", "c": "other_dog"}


@pytest.fixture
def recorded(tmp_path):
    """A folder as `record` leaves it: clips under clips/<date>/ and their index, in time order."""
    folder = tmp_path / "rec"
    day = folder / "clips" / "2026-11-25"
    day.mkdir(parents=True)
    sources = sorted(DOGS.iterdir())[:3] + sorted(OTHERS.iterdir())[:2]
    index = []
    for k, src in enumerate(sources):
        name = f"clips/2026-11-25/10{k:02d}00_{k:04x}.ogg"
        shutil.copy(src, folder / name)
        index.append({"kind": "sound", "clip": name, "start": f"2026-11-25T10:{k:02d}:00.000+00:00",
                      "end": f"2026-11-25T10:{k:02d}:05.000+00:00", "duration_s": 5.0})
    (folder / "recorded.jsonl").write_text("".join(json.dumps(e) + "\n" for e in reversed(index)))
    return folder


@pytest.mark.slow
def test_labelling_through_a_terminal_resumes_and_undoes(recorded, tmux):
    clips = find_clips(recorded)
    assert [c.start for c in clips] == sorted(c.start for c in clips)  # time order, not the index's order

    t = tmux("label", str(recorded), "--no-play", "--order", "time")
    screen = t.wait_for("clip 1 of 5")
    assert clips[0].name in screen and re.search(r"score [01]\.\d\d", screen) and "not playing" in screen
    assert "\u2580" in screen  # the spectrogram's half-blocks
    t.keys("m")
    t.wait_for("clip 2 of 5")
    t.keys("o")
    t.wait_for("clip 3 of 5")
    t.keys("x")  # not a key: says so, stays
    assert "'x': not a key here" in t.wait_for("not a key")
    t.keys("u")  # back to clip 2, its label gone
    screen = t.wait_for("clip 2: label undone")
    assert "clip 2 of 5" in screen and "1 my dog, 0 other dog" in screen
    t.keys("m")
    t.wait_for("clip 3 of 5")
    t.keys("q")
    screen = t.wait_for("EXITED 0")
    assert "2 of 5 clips labelled (2 my dog, 0 other dog, 0 not a bark)" in screen
    assert labels_in(recorded / "labels.jsonl") == {clips[0].name: "my_dog", clips[1].name: "my_dog"}

    # A second run starts at the first clip without a label, and finishes the folder.
    t = tmux("label", str(recorded), "--no-play", "--order", "time")
    t.wait_for("clip 3 of 5")
    t.keys("n")
    t.wait_for("clip 4 of 5")
    t.keys("s")  # skipped: no label, asked again next time
    t.wait_for("clip 5 of 5")
    t.keys("n")
    screen = t.wait_for("EXITED 0")
    assert "4 of 5 clips labelled (2 my dog, 0 other dog, 2 not a bark)" in screen
    labels = labels_in(recorded / "labels.jsonl")
    assert labels == {clips[0].name: "my_dog", clips[1].name: "my_dog", clips[2].name: "not_bark",
                      clips[4].name: "not_bark"}
    lines = [json.loads(x) for x in (recorded / "labels.jsonl").read_text().splitlines()]
    assert [x["label"] for x in lines] == ["my_dog", "other_dog", None, "my_dog", "not_bark", "not_bark"]
    assert all(x["score"] is None or 0 <= x["score"] <= 1 for x in lines)


def test_with_an_output_device_each_clip_is_played(recorded, tmux, vmic):
    # The virtual microphone's server is also an output: what label plays into its sink, the microphone hears.
    env = {k: v for k, v in vmic.env().items() if os.environ.get(k) != v}
    t = tmux("label", str(recorded), env=env)
    screen = t.wait_for("clip 1 of 5")
    assert "playing" in screen and "not playing" not in screen
    listen = ("import sys, numpy as np, sounddevice as sd\n"
              "a = sd.rec(4 * 22050, samplerate=22050, channels=1, device=sys.argv[1]); sd.wait()\n"
              "print(20 * np.log10(np.sqrt(np.mean(a ** 2)) + 1e-12))")
    capture = subprocess.Popen([sys.executable, "-c", listen, vmic.name], env=vmic.env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # sounddevice imported and the stream open
    t.keys("r")  # replay, while the microphone listens
    out, err = capture.communicate(timeout=60)
    assert capture.returncode == 0, err
    played_db = float(out.strip().splitlines()[-1])
    t.keys("q")
    t.wait_for("EXITED 0")
    # Silence on the sink reads as digital silence (-240 here with --no-play); the dog clip is far above it.
    assert played_db > -50.0, played_db


@pytest.mark.slow
def test_label_needs_a_terminal_and_a_folder_with_clips(tmp_path, recorded):
    result = run_cli("label", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "nowhere: no such folder" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("label", str(empty))
    assert result.returncode == 2 and "no clips to label" in result.stderr
    result = run_cli("label", str(recorded))  # stdin is not a terminal here
    assert result.returncode == 2 and "needs a terminal" in result.stderr
    assert "scoring the clips" not in result.stdout  # said first, before every clip is scored


def test_score_order_puts_the_most_bark_like_first_and_background_samples_last():
    clips = [Clip(Path(f"{n}.flac"), f"{n}.flac", f"2026-11-25T10:0{k}:00", kind)
             for k, (n, kind) in enumerate([("door", "sound"), ("bark", "sound"), ("room", "background"),
                                            ("broken", "sound"), ("kettle", "sound")])]
    scores = {"door.flac": 0.2, "bark.flac": 0.97, "room.flac": 0.99, "broken.flac": None, "kettle.flac": 0.6}
    asked = []

    def score(path):
        asked.append(path.name)
        return scores[path.name]

    ordered, known = in_order(clips, score, "score")
    assert [c.name for c in ordered] == ["bark.flac", "kettle.flac", "door.flac", "broken.flac", "room.flac"]
    assert known == scores and sorted(asked) == sorted(scores)  # each clip scored once, the scores kept
    assert in_order(clips, score, "time") == (clips, {})
    with pytest.raises(LabelError, match="--order loudest"):
        in_order(clips, score, "loudest")


@pytest.mark.slow
def test_by_default_the_most_bark_like_clip_comes_first(recorded, tmux):
    from barkwatch.detection.detector import Detector, DetectorSettings
    from barkwatch.home.label import scorer_for

    score = scorer_for(Detector.load(None, DetectorSettings(gate_dbfs=-float("inf"))))
    best = max(find_clips(recorded), key=lambda c: score(c.path))
    t = tmux("label", str(recorded), "--no-play")
    screen = t.wait_for("clip 1 of 5")
    assert best.name in screen and f"score {score(best.path):.2f}" in screen
    t.keys("q")
    t.wait_for("EXITED 0")
