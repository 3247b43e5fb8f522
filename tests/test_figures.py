"""The published figures agree with the benchmark files they come from (benchmarks/figures/, docs/home-results.json),
and those files were measured on the shipped default model: a figure copied wrong, or a default retrained
without remeasuring, fails here."""

import hashlib
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "benchmarks" / "figures"
README = (REPO / "README.md").read_text()
BENCHMARKS_DOC = (REPO / "docs" / "benchmarks.md").read_text()


def result(name: str) -> dict:
    return json.loads((FIGURES / name).read_text())


def r2(x: float) -> str:
    return f"{x:.2f}"


def table_row(text: str, starts: str) -> list[str]:
    """The cells of the one table row whose first cell starts with ``starts``, bold marks dropped."""
    rows = [line.replace("**", "") for line in text.splitlines() if line.replace("**", "").startswith("| " + starts)]
    assert len(rows) == 1, f"{len(rows)} rows start with {starts!r}"
    return [cell.strip().replace("**", "") for cell in rows[0].strip().strip("|").split("|")]


def test_the_household_figures_were_measured_on_the_shipped_model():
    shipped = hashlib.sha256((REPO / "models" / "default.pt").read_bytes()).hexdigest()[:16]
    for name in ("household-test-seed0.json", "household-test-seed2.json"):
        assert result(name)["model"]["sha256"] == shipped, f"{name} was measured on another model"


@pytest.mark.parametrize("text", [README, BENCHMARKS_DOC], ids=["README", "docs/benchmarks.md"])
def test_the_default_models_row_is_its_test_mix_result(text):
    r = result("household-test-seed0.json")
    auc, at_threshold, best2, best05, delay = table_row(text, "default model")[1:6]
    own, two, half = r["at_model_threshold"], r["at_most_2_per_hour"], r["at_most_0.5_per_hour"]
    assert auc == f"{r['clips']['roc_auc']:.3f}"
    assert at_threshold.startswith(f"{r2(own['recall'])} ({r2(own['recall_foreground'])}), "
                                   f"{own['false_alarms_per_hour']:.1f}"), at_threshold
    assert best2 == f"{r2(two['recall'])} ({r2(two['recall_foreground'])})"
    assert best05 == r2(half["recall"])
    assert delay == f"{r2(two['delay_median_s'])} s / {r2(two['delay_p95_s'])} s"


def test_the_readme_describes_the_test_mix_and_both_draws_as_measured():
    first, second = result("household-test-seed0.json"), result("household-test-seed2.json")
    counts = re.search(r"\((\d+) barks over everyday sounds, (\d+) of them foreground\)", README)
    assert counts, "the README's description of the test mix"
    assert (int(counts[1]), int(counts[2])) == (
        first["barks"], first["at_model_threshold"]["barks_by_salience"]["foreground"])
    a, b = first["at_model_threshold"], second["at_model_threshold"]
    opening = (f"({r2(a['recall'])} and {r2(b['recall'])} on two mixes; {r2(a['recall_foreground'])} and "
               f"{r2(b['recall_foreground'])} of the foreground ones)")
    assert opening in " ".join(README.split()), f"the opening paragraph should say {opening}"
    two = second["at_most_2_per_hour"]
    draw = (f"finds {r2(b['recall'])} ({r2(b['recall_foreground'])}) at its threshold with no false alarm, and "
            f"{r2(two['recall'])} ({r2(two['recall_foreground'])}) at the best threshold for <= 2 an hour")
    assert b["false_alarms_per_hour"] == 0.0 and draw in " ".join(README.split())


def test_the_readme_speed_figures_are_the_benchmark_runs():
    run = result("run.json")["benchmarks"]
    default = next(row for row in run["network"]["rows"] if row["name"].endswith("default.onnx"))
    ms = default["ms_per_window"]
    cell = table_row(README, "the network, one 1 s window")[1]
    assert cell == f"{ms['batch1_threads1']['median']:.2f} / {ms['batch8_threads1']['median']:.2f} ms"
    listen = run["listen"]
    cost = table_row(README, "`listen` on the 90-minute test mix")[1]
    cpu = listen["cpu_s_per_audio_s"]
    assert cost == f"{cpu['median']:.3f} ({cpu['min']:.3f}-{cpu['max']:.3f})"
    assert table_row(README, "peak RSS, `listen`")[1].startswith(f"{listen['peak_rss_mb']:.0f} MB")
    assert table_row(README, "`listen`, start to first audio")[1] == f"{listen['start_to_first_audio_s']:.2f} s"
    latency = result("latency.json")
    cell = table_row(README, "live latency")[1]
    assert cell == (f"median {latency['latency']['median_s']:.2f} s, p95 {latency['latency']['p95_s']:.2f} s, "
                    f"{latency['found']} of {latency['barks']}")


def test_the_readme_home_table_is_the_home_benchmarks_result():
    modes = json.loads((REPO / "docs" / "home-results.json").read_text())["modes"]
    for row, mode in (("shipped model, its own threshold", "default"), ("shipped model + `calibrate`",
                      "default+calibrate"), ("enrolled + `calibrate`", "enrolled+calibrate")):
        m = modes[mode]
        cells = table_row(README, row)[1:5]
        assert cells == [r2(m["recall"]), r2(m["false_alarms_per_hour"]), f"{r2(m['delay_median_s'])} s",
                         r2(m["other_dog_accept"])], row


def test_the_model_cards_figures_are_both_test_mixes_results():
    card = (REPO / "models" / "README.md").read_text()
    for prefix, name in (("90-minute mix, seed 0", "household-test-seed0.json"),
                         ("second draw of the same recordings, seed 2", "household-test-seed2.json")):
        own = result(name)["at_model_threshold"]
        assert table_row(card, prefix)[1] == (f"{r2(own['recall'])} ({r2(own['recall_foreground'])}) at "
                                              f"{own['false_alarms_per_hour']:.1f}"), name
    for prefix, name in (("best recall at <= 2 / <= 0.5", "household-test-seed0.json"),
                         ("seed 2: best recall", "household-test-seed2.json")):
        two, half = result(name)["at_most_2_per_hour"], result(name)["at_most_0.5_per_hour"]
        assert table_row(card, prefix)[1] == (f"{r2(two['recall'])} ({r2(two['recall_foreground'])}) / "
                                              f"{r2(half['recall'])}"), name
