"""The household benchmark (benchmarks/household.py): held-out recordings, the mixed recording and its truth,
and the event scoring, on the repository's sample clips and on hand-made window sequences."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest
import soundfile as sf

from barkwatch.detection.events import WindowScore
from helpers import REPO, SAMPLES

spec = importlib.util.spec_from_file_location("household", REPO / "benchmarks" / "household.py")
household = importlib.util.module_from_spec(spec)
sys.modules["household"] = household  # dataclasses look their module up while the file runs
spec.loader.exec_module(household)

SR = household.SAMPLE_RATE
Bark, Segment = household.Bark, household.Segment


def frame_power(signal: np.ndarray) -> np.ndarray:
    """Mean square of 512-sample frames every 256 samples, as the build measures clips."""
    n = (len(signal) - 512) // 256 + 1
    return np.array([np.mean(np.square(signal[i * 256 : i * 256 + 512])) for i in range(max(n, 0))])


def db(power: float) -> float:
    """Level in dB, -120 for digital silence as the Engine has it."""
    return max(10.0 * math.log10(power), -120.0) if power > 0 else -120.0


@pytest.fixture(scope="module")
def holdout(tmp_path_factory):
    path = tmp_path_factory.mktemp("holdout") / "holdout.txt"
    assert household.main(["holdout", "--data", str(SAMPLES), "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def mix(tmp_path_factory, holdout):
    """A one-minute mix with four barks, and the same mix without them (same seed: same background)."""
    root = tmp_path_factory.mktemp("mix")
    for name, rate in (("barks", "240"), ("none", "0")):
        assert household.main(["build", "--data", str(SAMPLES), "--holdout", str(holdout), "--out",
                               str(root / name), "--minutes", "1", "--barks-per-hour", rate]) == 0
    return root / "barks", root / "none"


# --- holdout ------------------------------------------------------------------------------------------------

def test_holdout_is_deterministic_keeps_whole_recordings_and_covers_every_group(holdout, tmp_path):
    lines = holdout.read_text().splitlines()
    assert lines[0].startswith("# ") and "sha256" in lines[0]
    held = lines[1:]
    assert held == sorted(held) and len(set(held)) == len(held)

    again = tmp_path / "again.txt"
    household.main(["holdout", "--data", str(SAMPLES), "--out", str(again)])
    assert again.read_text() == holdout.read_text()
    other_seed = tmp_path / "seed1.txt"
    household.main(["holdout", "--data", str(SAMPLES), "--out", str(other_seed), "--seed", "1"])
    assert other_seed.read_text().splitlines()[1:] != held

    manifest = [json.loads(line) for line in (SAMPLES / "manifest.jsonl").read_text().splitlines()]
    groups = defaultdict(set)
    for e in manifest:
        groups[(e["label"], e["category"])].add(f"{e['dataset']}/{e['source_id']}")
    assert set(held) <= set().union(*groups.values())  # lines are dataset/source_id of real recordings
    for key, sources in groups.items():
        expected = math.floor(0.2 * len(sources) + 0.5) if len(sources) >= 3 else 0
        assert len(sources & set(held)) == max(expected, 1 if len(sources) >= 3 else 0), key
    # Whole recordings: a held-out recording brings every one of its clips, the rest bring none.
    clips = household.held_out_clips(SAMPLES, holdout)
    assert {c.source for c in clips} == set(held)
    assert len(clips) == sum(f"{e['dataset']}/{e['source_id']}" in set(held) for e in manifest)
    assert len(clips) > len(held)  # some recordings (FSDD speakers) have several clips


def test_holdout_rest_names_every_recording_the_excluded_files_leave(holdout, tmp_path, capsys):
    rest = tmp_path / "rest.txt"
    assert household.main(["holdout", "--data", str(SAMPLES), "--out", str(rest), "--rest",
                           "--exclude", str(holdout)]) == 0
    everything = {c.source for c in household.read_manifest(SAMPLES)}
    held = household.read_holdout(holdout)
    assert household.read_holdout(rest) == everything - held and held
    assert rest.read_text().startswith("# every recording") and f"--exclude {holdout}" in rest.read_text()
    assert household.main(["holdout", "--data", str(SAMPLES), "--out", str(tmp_path / "x.txt"), "--rest"]) == 2
    assert "--rest" in capsys.readouterr().err


def test_holdout_tells_datasets_apart_and_holds_freesound_twins_together():
    clips = ([household.Clip(f"a{i}.ogg", "other", "rain", f"A/{i}") for i in range(5)]
             + [household.Clip(f"b{i}.ogg", "other", "rain", f"B/{i}") for i in range(5)]
             + [household.Clip(f"e{i}.ogg", "dog", "dog", f"ESC-50/{i}") for i in range(10)]
             + [household.Clip(f"u{i}.ogg", "dog", "dog_bark", f"UrbanSound8K/{i}") for i in range(10)]
             + [household.Clip(f"c{i}.ogg", "other", "cat", f"C/{i}") for i in range(2)]
             + [household.Clip(f"h{i}.ogg", "other", "hen", f"H/{i}") for i in range(3)])
    held, twins = household.choose_holdout(clips, 0.2, seed=1)  # seed 0 happens to pick the same ids
    assert len({s for s in held if s[0] in "AB"}) == 2  # 10 recordings in the rain group, not 5
    assert not any(s.startswith("C/") for s in held)  # 2 recordings: too few to spare one
    assert len([s for s in held if s.startswith("H/")]) == 1  # 3 recordings: 0.6 rounds to 1
    for s in held:
        dataset, sid = s.split("/")
        if dataset in household.FREESOUND:
            assert {f"ESC-50/{sid}", f"UrbanSound8K/{sid}"} <= held
    assert twins > 0 and len(held) == 2 + 2 + 2 + 1 + twins
    halves = [household.Clip(f"x{i}.ogg", "other", "x", f"X/{i}") for i in range(5)]
    assert len(household.choose_holdout(halves, 0.5, seed=0)[0]) == 3  # 2.5 rounds up, not to even


# --- build --------------------------------------------------------------------------------------------------

def test_build_writes_the_requested_length_with_barks_where_the_truth_says(mix):
    with_barks, without = mix
    info = sf.info(str(with_barks / "household.wav"))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (SR, 1, "PCM_16", 60 * SR)
    truth = json.loads((with_barks / "truth.json").read_text())
    assert truth["duration_s"] == 60.0 and len(truth["barks"]) == 4 and truth["clipped_samples"] == 0
    assert truth["backgrounds"][0]["start_s"] == 0.0 and truth["backgrounds"][-1]["end_s"] == 60.0

    audio = sf.read(str(with_barks / "household.wav"))[0]
    background = sf.read(str(without / "household.wav"))[0]
    assert json.loads((without / "truth.json").read_text())["backgrounds"] == truth["backgrounds"]
    bark_only = audio - background  # what the barks added, sample for sample
    assert np.sqrt(np.mean(np.square(background))) > 10 ** (-50 / 20)  # never digital silence
    for b in truth["barks"]:
        start, end = round(b["start_s"] * SR), round(b["end_s"] * SR)
        onset, offset = round(b["onset_s"] * SR), round(b["offset_s"] * SR)
        assert start <= onset < offset <= end
        power = frame_power(bark_only[start:end])
        # The loudest 23 ms frame is the recorded peak level, and nearly all the bark's energy is in
        # [onset, offset]; whole frames before the onset or after the offset are 20 dB or more below the peak.
        assert abs(db(power.max()) - b["peak_dbfs"]) < 0.3
        assert np.sum(np.square(bark_only[onset:offset])) > 0.95 * np.sum(np.square(bark_only[start:end]))
        outside = np.concatenate([frame_power(bark_only[start:onset]), frame_power(bark_only[offset:end])])
        assert len(outside) == 0 or db(outside.max()) < db(power.max()) - 19.9
        # The recorded background level is what plays under the bark, so the ratio is what a listener hears.
        assert abs(db(np.mean(np.square(background[onset:offset]))) - b["background_dbfs"]) < 1.5
        assert abs(b["peak_dbfs"] - b["background_dbfs"] - b["ratio_db"]) < 0.02
        # In the mix itself the bark stands well above the -60 dBFS room floor.
        assert db(frame_power(audio[onset:offset]).max()) > -50.0
    assert -5.0 <= min(b["ratio_db"] for b in truth["barks"])
    onsets = [b["start_s"] for b in truth["barks"]]
    assert all(n - p >= 5.0 for p, n in zip([b["end_s"] for b in truth["barks"]], onsets[1:]))


def test_build_is_reproducible_for_a_seed(mix, holdout, tmp_path):
    with_barks, _ = mix
    args = ["build", "--data", str(SAMPLES), "--holdout", str(holdout), "--minutes", "1", "--barks-per-hour", "240"]
    household.main(args + ["--out", str(tmp_path / "same")])
    household.main(args + ["--out", str(tmp_path / "seed1"), "--seed", "1"])
    wav = (with_barks / "household.wav").read_bytes()
    assert (tmp_path / "same" / "household.wav").read_bytes() == wav
    assert (tmp_path / "same" / "truth.json").read_text() == (with_barks / "truth.json").read_text()
    assert (tmp_path / "seed1" / "household.wav").read_bytes() != wav


def test_build_refuses_barks_that_do_not_fit(holdout, tmp_path, capsys):
    code = household.main(["build", "--data", str(SAMPLES), "--holdout", str(holdout), "--out", str(tmp_path),
                           "--minutes", "1", "--barks-per-hour", "3000"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--barks-per-hour" in err


def test_a_holdout_from_other_data_is_refused(tmp_path, capsys):
    holdout = tmp_path / "holdout.txt"
    holdout.write_text("# made elsewhere\nUrbanSound8K/999999\n")
    code = household.main(["build", "--data", str(SAMPLES), "--holdout", str(holdout), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "UrbanSound8K/999999" in err and str(holdout) in err


# --- scoring (pure) -----------------------------------------------------------------------------------------

def windows(scores: list[float]) -> list[WindowScore]:
    """Window i covers [i / 4, i / 4 + 1] s, as 1 s windows every 0.25 s."""
    return [WindowScore(i * 0.25, i * 0.25 + 1.0, s, 0.0, 0.0, -30.0) for i, s in enumerate(scores)]


def scores_with(length_s: float, runs: dict[float, tuple[float, float]]) -> list[float]:
    """0.1 everywhere except runs {first window start: (last window start, score)}."""
    scores = [0.1] * int(length_s * 4)
    for first, (last, score) in runs.items():
        for i in range(int(first * 4), int(last * 4) + 1):
            scores[i] = score
    return scores


SEGMENTS = [Segment(0.0, 25.0, "rain"), Segment(25.0, 35.0, "siren"), Segment(35.0, 60.0, "rain")]


def test_a_found_bark_and_false_alarms_in_their_categories_with_the_delay_worked_out():
    # High windows start at 10.0 .. 10.5 (a bark at 10.2-11.0), at 24.0 .. 24.25 (rain, running on into the
    # siren segment from 25 s) and at 30.0 .. 30.25 (the siren).
    ws = windows(scores_with(60, {10.0: (10.5, 0.9), 24.0: (24.25, 0.8), 30.0: (30.25, 0.8)}))
    events = household.events_at(ws, 0.5)
    assert [(e.start_s, e.detected_s) for e in events] == [(10.0, 11.25), (24.0, 25.25), (30.0, 31.25)]
    point = household.score_events(events, [Bark(10.2, 11.0)], SEGMENTS, hours=60 / 3600, threshold=0.5,
                                   collar_s=1.0)
    assert (point.found, point.recall, point.false_alarms) == (1, 1.0, 2)
    assert point.delays_s == pytest.approx((1.05,))  # confirmed at the end of its second window, 11.25
    assert point.false_alarms_per_hour == pytest.approx(120.0)
    assert point.false_alarms_by_category == {"rain": 1, "siren": 1}  # where each event starts
    summary = point.summary()
    assert summary["delay_median_s"] == pytest.approx(1.05) and summary["recall"] == 1.0
    # Barking time: 0.8 s of bark, all inside the first event (10.0-11.5); events of 1.5, 1.25 and 1.25 s.
    assert summary["time_recall"] == pytest.approx(1.0)
    assert summary["time_precision"] == pytest.approx(0.8 / 4.0)


def test_spans_are_merged_and_overlaps_counted_once():
    assert household.merged_spans([(5, 6), (0, 2), (1, 3), (3, 4), (7, 7)]) == [(0, 4), (5, 6)]
    a, b = [(0.0, 4.0), (5.0, 6.0)], [(1.0, 5.5), (5.8, 9.0)]
    assert household.spans_overlap(a, b) == pytest.approx(3.0 + 0.5 + 0.2)
    assert household.spans_overlap(a, []) == 0.0 and household.spans_length(a) == 5.0


def test_an_event_set_off_before_the_bark_is_a_false_alarm_unless_matching_by_overlap():
    # One event from 4.0 s running on to 10.5 s: it starts 6 s before the bark at 10-11 s.
    ws = windows(scores_with(30, {4.0: (10.0, 0.9)}))
    events = household.events_at(ws, 0.5)
    assert len(events) == 1 and events[0].start_s == 4.0
    strict = household.score_events(events, [Bark(10.0, 11.0)], SEGMENTS, 1.0, 0.5, collar_s=1.0)
    assert (strict.found, strict.false_alarms, strict.false_alarms_by_category) == (0, 1, {"rain": 1})
    loose = household.score_events(events, [Bark(10.0, 11.0)], SEGMENTS, 1.0, 0.5, collar_s=None)
    assert (loose.found, loose.false_alarms) == (1, 0)
    assert loose.delays_s == pytest.approx((5.25 - 10.0,)) and loose.summary()["found_early"] == 1
    # A window that starts within one window length of the onset holds the bark: that event is a find.
    early = household.score_events(household.events_at(windows(scores_with(30, {9.25: (9.5, 0.9)})), 0.5),
                                   [Bark(10.0, 11.0)], SEGMENTS, 1.0, 0.5, collar_s=1.0)
    assert (early.found, early.false_alarms) == (1, 0)


def test_one_event_finds_at_most_one_bark():
    # Everything high: one event from 0 s over barks 9 s apart finds the first only, and is no false alarm.
    events = household.events_at(windows([1.0] * 120), 0.0)
    for barks in ([Bark(0.5, 1.5), Bark(9.5, 10.5)], [Bark(0.2, 0.4), Bark(0.5, 1.5)]):
        for collar in (1.0, None):
            point = household.score_events(events, barks, SEGMENTS, 1.0, 0.0, collar)
            assert (point.events, point.found, point.false_alarms) == (1, 1, 0)


def test_the_sweep_finds_the_best_thresholds_under_each_alarm_rate():
    # Bark windows score 0.9 (bark at 10.2-11.0); a siren at 30 s scores 0.6; a rain patch at 50 s scores 0.3.
    ws = windows(scores_with(60, {10.0: (10.5, 0.9), 30.0: (30.5, 0.6), 50.0: (50.5, 0.3)}))
    thresholds = household.thresholds_for([w.score for w in ws])
    assert thresholds == sorted(thresholds) and thresholds[:4] == [0.1, 0.3, 0.6, 0.9]
    assert thresholds[-1] > 0.9  # above every score: no events at all
    points = household.sweep(ws, [Bark(10.2, 11.0)], SEGMENTS, 1.0, thresholds, collar_s=1.0)
    # At 0.1 every window is high: one event from 0 s, set off by the rain, finds nothing. From 0.3 up, a
    # higher threshold finds no more barks and raises no more alarms.
    assert [(p.found, p.false_alarms, p.events) for p in points] == [(0, 1, 1), (1, 2, 3), (1, 1, 2), (1, 0, 1),
                                                                      (0, 0, 0)]
    assert points[0].false_alarms_by_category == {"rain": 1}
    assert points[1].false_alarms_by_category == {"siren": 1, "rain": 1}
    assert household.best_point(points, 2.0).threshold == 0.9  # found, no alarm: beats 0.3 and 0.6
    assert household.best_point(points, 0.5).threshold == 0.9
    # Equal finds: fewer false alarms beat a higher threshold. At 0.6 the siren's 0.5 middle drops out and its
    # event splits in two.
    split = windows(scores_with(60, {10.0: (10.5, 0.9), 30.0: (30.25, 0.7), 30.5: (33.75, 0.5),
                                     34.0: (34.25, 0.7)}))
    points = household.sweep(split, [Bark(10.2, 11.0)], SEGMENTS, 1.0, [0.5, 0.6], collar_s=1.0)
    assert [(p.found, p.false_alarms) for p in points] == [(1, 1), (1, 2)]
    assert household.best_point(points, 2.0).threshold == 0.5
    noisy = household.sweep(ws, [Bark(30.2, 31.0)], SEGMENTS, 1.0, thresholds, collar_s=1.0)
    assert household.best_point(noisy, 0.5).found == 0  # finding the bark at 0.6 costs an alarm from 0.9
    assert household.best_point(noisy, 1.0).threshold == 0.6


def test_thresholds_are_dense_where_false_alarms_are_few():
    scores = np.random.default_rng(0).random(20000)
    thresholds = household.thresholds_for(scores)
    assert 150 <= len(thresholds) <= 202 and all(0.0 <= t <= 1.0 for t in thresholds)
    assert sum(t > np.quantile(scores, 0.99) for t in thresholds) > len(thresholds) // 3
    assert set(thresholds[:-1]) <= set(scores.tolist())  # every threshold but the last is a score that occurs


# --- evaluate ------------------------------------------------------------------------------------------------

def test_a_clip_scores_its_loudest_window_with_the_gate_off(holdout, tmp_path):
    clips = household.held_out_clips(SAMPLES, holdout)
    chosen = [c for c in clips if c.label == "dog"] + [next(c for c in clips if c.category == "speech_digits")]
    scores = household.score_clips(SAMPLES, chosen, household.LoudnessModel(), 0.25)
    later = 0  # clips whose loudest window is not their first
    for clip, score in zip(chosen, scores):
        audio = sf.read(str(SAMPLES / clip.file), dtype="float32")[0].astype(np.float64)
        starts = [int(math.floor(k * 5512.5 + 0.5)) for k in range(100)]
        full = [a for a in starts if a + SR <= len(audio)]
        tail = [a for a in starts if a + SR > len(audio)][:1]  # the last, zero-padded window
        levels = [db(np.mean(np.square(audio[a : a + SR]))) for a in full]
        levels += [db(np.sum(np.square(audio[a:])) / SR) for a in tail if not full or full[-1] + SR < len(audio)]
        assert score == pytest.approx((max(levels) + 100) / 100, abs=1e-6)
        later += max(levels) > levels[0] + 1.0
    assert later >= 2
    # A clip far below the detector's -60 dBFS gate is still scored: the gate is off for clips.
    sf.write(str(tmp_path / "quiet.wav"), np.full(SR, 10 ** (-80 / 20), dtype=np.float32), SR, subtype="FLOAT")
    quiet = household.score_clips(tmp_path, [household.Clip("quiet.wav", "other", "x", "X/1")],
                                  household.LoudnessModel(), 0.25)
    assert quiet[0] == pytest.approx(0.2, abs=1e-4)


# --- evaluate, end to end -----------------------------------------------------------------------------------

def test_evaluate_the_loudness_baseline_writes_every_figure(mix, holdout, tmp_path):
    with_barks, _ = mix
    out = tmp_path / "loudness.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "household.py"), "evaluate", "--baseline",
                             "loudness", "--mix", str(with_barks), "--holdout", str(holdout), "--data", str(SAMPLES),
                             "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "<= 2 false alarms/h" in result.stdout and "held-out clips" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["model"]["baseline"] == "loudness" and figures["model"]["hop_s"] == 0.25
    assert figures["engine"]["windows"] == 237  # 1 s windows every 0.25 s over 60 s
    assert figures["barks"] == 4 and figures["at_model_threshold"] is None
    assert figures["matching"] == {"rule": "start", "collar_s": 1.0}
    best = figures["at_most_2_per_hour"]
    assert 0 <= best["recall"] <= 1 and best["false_alarms_per_hour"] <= 2.0 and best["barks"] == 4
    # The loudest 4 barks are found at some threshold of plain loudness; a quiet threshold finds fewer.
    assert max(p["recall"] for p in figures["sweep"]) > 0
    assert [p["threshold"] for p in figures["sweep"]] == sorted(p["threshold"] for p in figures["sweep"])
    clips = figures["clips"]
    assert (clips["positives"], clips["negatives"]) == (6, 14) and 0 <= clips["roc_auc"] <= 1
    assert clips["balanced_accuracy"] is None  # a loudness has no threshold of its own


def test_evaluate_a_model_reports_its_own_threshold(mix, holdout, random_model, tmp_path, capsys):
    import torch

    with_barks, _ = mix
    out = tmp_path / "model.json"
    threads = torch.get_num_threads()
    try:  # one thread: beside a busy process, torch's threads spin (40 s here instead of 1 s)
        code = household.main(["evaluate", "--model", str(random_model), "--mix", str(with_barks), "--holdout",
                               str(holdout), "--data", str(SAMPLES), "--out", str(out), "--compute", "cpu",
                               "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0, capsys.readouterr().err
    figures = json.loads(out.read_text())
    assert figures["model"]["threshold"] == 0.5 and figures["model"]["sha256"]
    at_model = figures["at_model_threshold"]
    assert at_model["threshold"] == 0.5 and at_model["barks"] == 4
    assert figures["clips"]["threshold"] == 0.5 and 0 <= figures["clips"]["balanced_accuracy"] <= 1


def test_calibrate_takes_the_best_threshold_within_the_budget_from_an_evaluation(mix, random_model, tmp_path,
                                                                                capsys):
    import torch

    from barkwatch.model import modelfile

    with_barks, _ = mix
    result = tmp_path / "val.json"
    threads = torch.get_num_threads()
    try:
        assert household.main(["evaluate", "--model", str(random_model), "--mix", str(with_barks), "--out",
                               str(result), "--compute", "cpu", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    sweep = json.loads(result.read_text())["sweep"]
    out = tmp_path / "calibrated.pt"
    assert household.main(["calibrate", "--model", str(random_model), "--result", str(result), "--budget", "60",
                           "--out", str(out)]) == 0
    allowed = [p for p in sweep if p["false_alarms_per_hour"] <= 60]
    best = max(allowed, key=lambda p: (p["recall"], p["threshold"]))
    calibrated = modelfile.read_metadata(out)
    assert calibrated["threshold"] == best["threshold"] != modelfile.read_metadata(random_model)["threshold"]
    assert calibrated["calibration"]["budget_per_hour"] == 60 and calibrated["calibration"]["mix"] == str(with_barks)
    assert "hold_threshold" not in calibrated  # evaluated without a hold: none is written
    # Evaluated with a hold, the calibrated model carries it: its events are the ones the sweep counted.
    held = tmp_path / "val-held.json"
    assert household.main(["evaluate", "--model", str(random_model), "--mix", str(with_barks), "--out",
                           str(held), "--compute", "cpu", "--threads", "1", "--hold", "0.25"]) == 0
    torch.set_num_threads(threads)
    assert json.loads(held.read_text())["tracker"]["hold_threshold"] == 0.25
    assert household.main(["calibrate", "--model", str(random_model), "--result", str(held), "--budget", "60",
                           "--out", str(out)]) == 0
    assert modelfile.read_metadata(out)["hold_threshold"] == 0.25
    # An evaluation of another model file is refused: its sweep says nothing about this one.
    capsys.readouterr()
    assert household.main(["calibrate", "--model", str(out), "--result", str(result), "--out",
                           str(tmp_path / "x.pt")]) == 2
    assert "different model" in capsys.readouterr().err


def test_evaluate_needs_a_model_or_the_baseline_and_a_truth(mix, tmp_path, capsys):
    assert household.main(["evaluate", "--mix", str(mix[0])]) == 2
    assert "--model" in capsys.readouterr().err
    assert household.main(["evaluate", "--baseline", "loudness", "--mix", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "truth.json") in err and "build" in err


@pytest.mark.slow
def test_parity_finds_the_two_runtimes_the_same_detector_and_a_retrained_file_not(mix, tmp_path):
    from barkwatch.model.modelfile import DEFAULT_MODEL, update_metadata

    parity = [sys.executable, str(REPO / "benchmarks" / "parity.py"), "--mix", str(mix[0])]
    same = subprocess.run(parity + ["--model", str(DEFAULT_MODEL), "--against", str(DEFAULT_MODEL.with_suffix(
        ".onnx")), "--out", str(tmp_path / "same.json")], capture_output=True, text=True, timeout=600)
    assert same.returncode == 0, same.stderr
    (row,) = json.loads((tmp_path / "same.json").read_text())["mixes"]
    assert row["windows"] >= row["scored"] > 150 and row["same_events"]
    assert 0 < row["max_abs_score_diff"] <= 1e-4  # two runtimes: float rounding, never exactly 0
    assert row["model"]["events"] == row["against"]["events"] > 0
    # A model that really differs (its threshold, hence its events) is caught, with exit status 1.
    other = update_metadata(DEFAULT_MODEL, tmp_path / "other.pt", {"threshold": 0.2})
    differs = subprocess.run(parity + ["--model", str(DEFAULT_MODEL), "--against", str(other)],
                             capture_output=True, text=True, timeout=600)
    assert differs.returncode == 1 and "events DIFFER" in differs.stdout, differs.stdout + differs.stderr
