"""`barkwatch detect` through the command line: records, scores, wall-clock times, and bad files."""

from __future__ import annotations

import csv
import math
import shutil
import json
from datetime import datetime, timedelta

import numpy as np
import pytest
import soundfile as sf

from helpers import DOGS, SAMPLES, run_cli


def test_events_come_in_pairs_with_times_from_start(random_model, tmp_path):
    clip = sorted(DOGS.glob("*.ogg"))[0]
    events = tmp_path / "events.jsonl"
    # Threshold 0: every window counts as a bark, so the whole file is one event, whatever the weights.
    result = run_cli("detect", str(clip), "--model", str(random_model), "--threshold", "0", "--events",
                     str(events), "--start", "2026-07-01T12:00:00+02:00")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [r["event"] for r in records] == ["bark_start", "bark"]
    start, end = records
    assert start["id"] == end["id"] and end["source"] == str(clip)
    assert start["detected_offset_s"] == 1.25  # two windows of 1 s, 0.25 s apart (patience 2)
    assert end["offset_s"] == 0.0 and abs(end["end_offset_s"] - 5.0) < 0.3
    assert datetime.fromisoformat(end["start"]) == datetime.fromisoformat("2026-07-01T12:00:00+02:00")
    span = datetime.fromisoformat(end["end"]) - datetime.fromisoformat(end["start"])
    assert abs(span - timedelta(seconds=end["duration_s"])) <= timedelta(milliseconds=1)  # ms rounding
    assert end["model"]["file"] == "random.pt" and len(end["model"]["sha256"]) == 16
    assert "1 event(s)" in result.stdout


def test_events_to_stdout_keep_human_text_on_stderr(random_model):
    clip = sorted(DOGS.glob("*.ogg"))[0]
    result = run_cli("detect", str(clip), "--model", str(random_model), "--threshold", "0", "--events", "-")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["event"] for line in result.stdout.splitlines()] == ["bark_start", "bark"]
    assert "1 event(s)" in result.stderr


def test_a_file_shorter_than_one_window_is_scored_once(random_model, tmp_path):
    short = tmp_path / "short.wav"
    audio = sf.read(str(sorted(DOGS.glob("*.ogg"))[0]), dtype="float32")[0][:8000]
    sf.write(str(short), audio, 22050)
    result = run_cli("detect", str(short), "--model", str(random_model), "--scores", str(tmp_path / "s.csv"),
                     "--gate", "-200", "--threads", "1")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert len(rows) == 1 and rows[0]["start_s"] == "0.000" and rows[0]["end_s"] == "1.000"
    assert 0 <= float(rows[0]["score"]) <= 1 and float(rows[0]["rl"]) > 0


def test_scores_to_stdout_with_the_summary_on_stderr(random_model, tmp_path):
    clip = sorted(DOGS.glob("*.ogg"))[0]
    result = run_cli("detect", str(clip), "--model", str(random_model), "--scores", "-", "--threads", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert rows[0]["file"] == str(clip) and len(rows) >= 17  # 5 s: a window every 0.25 s
    assert [float(r["start_s"]) for r in rows] == [0.25 * i for i in range(len(rows))]
    assert "event(s)" in result.stderr and not (tmp_path / "-").exists()
    both = run_cli("detect", str(clip), "--model", str(random_model), "--scores", "-", "--events", "-")
    assert both.returncode == 2 and "only one of them can go to stdout" in both.stderr


def test_the_scores_csv_replays_to_detects_own_events(tmp_path):
    """Scores are written with every digit, so replayed through the event tracker at the model's threshold they
    give the events detect reported (at 4 decimals a score just under a calibrated 0.983575 was written as
    0.9836 and its replay started an event one window early)."""
    from barkwatch.detection.detector import model_hold_threshold
    from barkwatch.detection.events import TrackerSettings, WindowScore
    from barkwatch.home.calibrate import events_at
    from barkwatch.model import modelfile

    example = SAMPLES / "example.ogg"
    result = run_cli("detect", str(example), "--scores", str(tmp_path / "s.csv"), "--events",
                     str(tmp_path / "e.jsonl"), "--start", "2026-01-01T00:00:00+00:00", "--threads", "1")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert all(repr(float(r["score"])) == r["score"] for r in rows)  # nothing rounded away
    windows = [WindowScore(float(r["start_s"]), float(r["end_s"]), float(r["score"]), math.nan, math.nan,
                           float(r["level_dbfs"])) for r in rows]
    meta = modelfile.read_metadata(modelfile.DEFAULT_MODEL)
    settings = TrackerSettings(threshold=float(meta["threshold"]), patience=int(meta.get("patience", 2)),
                               hold_threshold=model_hold_threshold(meta))
    reported = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    reported = [r for r in reported if r.get("event") == "bark"]
    replayed = events_at(windows, settings)
    assert [(round(e.start_s, 3), round(e.end_s, 3)) for e in replayed] == \
        [(r["offset_s"], r["end_offset_s"]) for r in reported]
    assert len(reported) == 5
    # The written scores are the scores detect computed, to the last bit (4 decimals would not be).
    from barkwatch.detection.detector import Detector

    computed: list = []
    Detector.load(threads=1).scan(example, on_window=computed.append)
    assert [w.score for w in computed] == [float(r["score"]) for r in rows]


def test_missing_and_corrupt_files_are_named_and_the_others_still_scanned(random_model, tmp_path):
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + np.random.default_rng(0).bytes(4000))
    good = sorted(DOGS.glob("*.ogg"))[0]
    result = run_cli("detect", str(tmp_path / "gone.wav"), str(corrupt), str(good), "--model", str(random_model))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("barkwatch: error:")]
    assert len(errors) == 2 and "gone.wav: no such file" in errors[0] and "corrupt.flac" in errors[1]
    assert f"{good}: " in result.stdout  # the good file's summary
    assert "all 3 files: " in result.stdout and "2 file(s) could not be read" in result.stdout
    (tmp_path / "nothing.wav").write_bytes(b"")  # a copy that never happened
    result = run_cli("detect", str(tmp_path / "nothing.wav"), "--model", str(random_model))
    assert result.returncode == 1
    assert f"{tmp_path / 'nothing.wav'}: the file is empty (0 bytes)" in result.stderr, result.stderr
    assert "Format not recognised" not in result.stderr
    listened = run_cli("listen", "--device", f"file:{tmp_path / 'nothing.wav'}", "--model", str(random_model),
                       "--events", str(tmp_path / "e.jsonl"))
    assert listened.returncode != 0 and "nothing.wav: the file is empty (0 bytes)" in listened.stderr


def test_reads_mp3(random_model, tmp_path):
    audio, rate = sf.read(str(sorted(DOGS.glob("*.ogg"))[0]), dtype="float32")
    sf.write(str(tmp_path / "bark.mp3"), audio, rate, format="MP3")
    result = run_cli("detect", str(tmp_path / "bark.mp3"), "--model", str(random_model), "--threshold", "0",
                     "--events", "-", "--threads", "1")
    assert result.returncode == 0, result.stderr
    end = json.loads(result.stdout.splitlines()[-1])
    assert end["event"] == "bark" and abs(end["end_offset_s"] - len(audio) / rate) < 0.1


def test_missing_model_is_one_line_and_exit_2(tmp_path):
    clip = sorted(DOGS.glob("*.ogg"))[0]
    result = run_cli("detect", str(clip), "--model", str(tmp_path / "none.pt"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "none.pt" in result.stderr


@pytest.mark.slow
def test_plot_and_clips(random_model, tmp_path):
    clip = sorted(DOGS.glob("*.ogg"))[0]
    events = tmp_path / "e.jsonl"
    result = run_cli("detect", str(clip), "--model", str(random_model), "--threshold", "0", "--events", str(events),
                     "--plot", str(tmp_path / "heard.png"), "--clips", str(tmp_path / "clips"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "heard.png").stat().st_size > 20000
    start, end = [json.loads(line) for line in events.read_text().splitlines()]
    assert start["clip"] is None and end["clip"].startswith(str(tmp_path / "clips"))
    audio, rate = sf.read(end["clip"])
    # The whole 5 s file is one event; a clip adds up to 1 s either side, clipped to the file.
    assert abs(len(audio) / rate - sf.info(str(clip)).duration) < 0.05
    assert end["end_offset_s"] <= sf.info(str(clip)).duration + 1e-3


def test_nan_and_infinite_samples_are_heard_as_silence_with_one_warning(tmp_path):
    """A float wav holding NaN and infinities (damage): the same events as with silence in their place, the
    plot and the clips written, and one warning naming the file and how much of it is damaged."""
    from helpers import SAMPLES

    audio, rate = sf.read(str(SAMPLES / "example.ogg"), dtype="float32")
    damaged = audio.copy()
    damaged[5 * rate : 7 * rate] = np.nan  # 2 s of NaN over rain, before the second bark
    damaged[30 * rate : 30 * rate + rate // 2] = np.inf
    silent = audio.copy()
    silent[~np.isfinite(damaged)] = 0.0
    sf.write(str(tmp_path / "damaged.wav"), damaged, rate, subtype="FLOAT")
    sf.write(str(tmp_path / "silent.wav"), silent, rate, subtype="FLOAT")

    def barks(name: str, *extra: str) -> tuple[list, str]:
        result = run_cli("detect", str(tmp_path / name), "--events", "-", "--threads", "1", *extra)
        assert result.returncode == 0, result.stderr
        records = [json.loads(line) for line in result.stdout.splitlines()]
        return [(r["offset_s"], r["end_offset_s"]) for r in records if r["event"] == "bark"], result.stderr

    found, warning = barks("damaged.wav", "--plot", str(tmp_path / "heard.png"), "--clips", str(tmp_path / "clips"))
    assert found == barks("silent.wav")[0] and len(found) == 5
    assert (tmp_path / "heard.png").stat().st_size > 20000 and len(list((tmp_path / "clips").iterdir())) == 5
    (line,) = [line for line in warning.splitlines() if "warning" in line.lower()]
    assert "damaged.wav" in line and "2.5 s" in line and "NaN or infinite" in line


def test_a_wav_cut_short_is_scanned_with_a_warning_and_an_empty_one_is_an_error(tmp_path):
    """A recorder that died leaves a WAV whose header promises more than is there; a file with no samples is
    as unreadable as a corrupt one (exit 1, one line naming it)."""
    from helpers import SAMPLES

    audio, rate = sf.read(str(SAMPLES / "example.ogg"), dtype="float32")
    sf.write(str(tmp_path / "whole.wav"), audio, rate, subtype="PCM_16")
    data = (tmp_path / "whole.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + 2 * rate * 20])  # the first 20 of 60 s
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, dtype=np.float32), rate)

    result = run_cli("detect", str(tmp_path / "cut.wav"), "--threads", "1")
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert "cut.wav" in line and "promises 60.0 s" in line and "20.0 s are there" in line
    assert "in 20.0 s of audio" in result.stdout

    result = run_cli("detect", str(tmp_path / "empty.wav"), str(tmp_path / "cut.wav"), "--threads", "1")
    assert result.returncode == 1
    assert "barkwatch: error: " + str(tmp_path / "empty.wav") + ": the file holds no audio (0 samples)" in result.stderr
    assert "cut.wav: " in result.stdout  # the other file is still scanned


def test_a_folder_is_scanned_recursively_with_a_line_per_file(random_model, tmp_path):
    shutil.copy(sorted(DOGS.glob("*.ogg"))[0], tmp_path / "a.ogg")
    (tmp_path / "garden" / "later").mkdir(parents=True)
    shutil.copy(sorted(DOGS.glob("*.ogg"))[1], tmp_path / "garden" / "later" / "b.ogg")
    (tmp_path / "garden" / "notes.txt").write_text("not audio")
    (tmp_path / "nothing").mkdir()
    result = run_cli("detect", str(tmp_path), "--model", str(random_model), "--threshold", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"{tmp_path / 'a.ogg'}: 1 event(s)") for line in lines)
    assert any(line.startswith(f"{tmp_path / 'garden' / 'later' / 'b.ogg'}: 1 event(s)") for line in lines)
    assert lines[-1].startswith("all 2 files: 2 event(s)")
    result = run_cli("detect", str(tmp_path / "nothing"), "--model", str(random_model))
    assert result.returncode == 1 and "nothing: no audio files" in result.stderr


def test_quiet_keeps_the_result_one_line_a_file():
    """-q drops each bark's line and the progress, not the answer: how many barks."""
    example = SAMPLES / "example.ogg"
    result = run_cli("detect", str(example), "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [line for line in result.stdout.splitlines() if line.startswith(str(example))]
    assert len(result.stdout.splitlines()) == 1 and ": 5 event(s), " in result.stdout and result.stderr == ""


def test_audacity_labels_and_raven_tables_hold_the_events(tmp_path):
    # the default model on the example: five events, each a row in both tables at the JSON records' times
    example = SAMPLES / "example.ogg"
    result = run_cli("detect", str(example), "--events", "-", "-q", "--labels", str(tmp_path / "labels.txt"),
                     "--raven", str(tmp_path / "raven.txt"))
    assert result.returncode == 0, result.stderr
    barks = [r for r in map(json.loads, result.stdout.splitlines()) if r["event"] == "bark"]
    assert barks
    labels = [line.split("\t") for line in (tmp_path / "labels.txt").read_text().splitlines()]
    assert [float(x) for a, b, _ in labels for x in (a, b)] == pytest.approx(
        [x for r in barks for x in (r["offset_s"], r["end_offset_s"])], abs=1e-3)
    assert all(label.startswith("bark ") for _, _, label in labels)
    table = list(csv.DictReader((tmp_path / "raven.txt").open(), delimiter="\t"))
    assert [int(row["Selection"]) for row in table] == list(range(1, len(barks) + 1))
    assert [float(row["Begin Time (s)"]) for row in table] == pytest.approx([r["offset_s"] for r in barks], abs=1e-3)
    assert {row["Begin Path"] for row in table} == {str(example.resolve())}
    assert {row["High Freq (Hz)"] for row in table} == {"11025"}


def test_tables_of_several_files_are_one_per_file(random_model, tmp_path):
    for name, src in (("morning.ogg", 0), ("evening.ogg", 1)):
        shutil.copy(sorted(DOGS.glob("*.ogg"))[src], tmp_path / name)
    out = tmp_path / "out"
    result = run_cli("detect", str(tmp_path / "morning.ogg"), str(tmp_path / "evening.ogg"), "--model",
                     str(random_model), "--threshold", "0", "--labels", str(out / "labels.txt"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["labels-evening.txt", "labels-morning.txt"]
    assert all(len(p.read_text().splitlines()) == 1 for p in out.iterdir())  # threshold 0: one event each


def test_outputs_for_several_files_go_into_a_folder_named_after_each_file(random_model, tmp_path):
    """An existing folder, or a name ending in /, receives one file per input named after it, with the right
    extension, and the output says where each went; nothing lands in the current folder."""
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for name, src in (("morning.ogg", 0), ("evening.ogg", 1)):
        shutil.copy(sorted(DOGS.glob("*.ogg"))[src], recordings / name)
    (tmp_path / "plots").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    result = run_cli("detect", str(recordings), "--model", str(random_model), "--threshold", "0",
                     "--plot", str(tmp_path / "plots"), "--labels", str(tmp_path / "labs") + "/",
                     "--raven", str(tmp_path / "labs"), cwd=work)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["evening.png", "morning.png"]
    assert sorted(p.name for p in (tmp_path / "labs").iterdir()) == [
        "evening.selections.txt", "evening.txt", "morning.selections.txt", "morning.txt"]
    assert list(work.iterdir()) == []
    assert f"plot: {tmp_path / 'plots' / 'morning.png'}" in result.stdout
    assert f"labels: {tmp_path / 'labs' / 'evening.txt'}" in result.stdout
