"""The benchmark runner (benchmarks/run.py): a quick run writes its JSON and Markdown with numbers in them, and
a benchmark that fails is recorded without stopping the others. Speeds are not asserted: they depend on the
machine and on what else runs on it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import pytest
from helpers import REPO

spec = importlib.util.spec_from_file_location("bench_run", REPO / "benchmarks" / "run.py")
bench_run = importlib.util.module_from_spec(spec)
sys.modules["bench_run"] = bench_run  # its dataclasses look their module up while it runs
spec.loader.exec_module(bench_run)


def positive(stats: dict) -> bool:
    return stats["n"] >= 1 and stats["median"] > 0 and stats["min"] <= stats["median"] <= stats["max"]


@pytest.mark.slow
def test_quick_run_writes_json_and_markdown_with_numbers(tmp_path):
    began = time.monotonic()
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--only",
                             "network,detect,startup", "--models", "models/default.pt,models/default.onnx",
                             "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr[-3000:]

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["quick"] is True
    assert results["machine"]["cores"] >= 1 and results["machine"]["torch"]
    bench = results["benchmarks"]
    assert list(bench) == ["network", "detect", "startup"]
    assert not [name for name, b in bench.items() if "error" in b]

    rows = {row["name"]: row for row in bench["network"]["rows"]}
    default = "barkwatch/model/default"  # models/default.* name the files there
    assert {"seed", "small", "pooled", "medium", f"{default}.pt", f"{default}.onnx",
            f"{default}.onnx, a stream's windows"} <= set(rows)
    for row in rows.values():
        assert set(row["ms_per_window"]) == {"batch1_threads1", "batch1_threads2", "batch8_threads1",
                                             "batch8_threads2"}
        assert all(positive(s) for s in row["ms_per_window"].values())
        assert row["ratio_to_seed"]["batch1_threads1"] > 0
    assert rows["seed"]["ratio_to_seed"]["batch1_threads1"] == 1.0
    # The model card's counts: the small preset's VAE alone, and the default with its bark network and YAMNet.
    assert rows["small"]["parameters"] == 273_219 and rows[f"{default}.pt"]["parameters"] == 320_212 + 3_729_481

    settings = bench["detect"]["settings"]
    assert {(s["threads"], s["gate_dbfs"]) for s in settings} >= {(1, -60.0), (1, -200.0)}
    for s in settings:
        assert positive(s["x_real_time"]) and positive(s["peak_rss_mb"])
        assert s["windows"] > 0 and 0.0 <= s["gated_share"] <= 1.0

    startup = {row["name"]: row for row in bench["startup"]["rows"]}
    assert all(positive(row["wall_s"]) and positive(row["peak_rss_mb"]) for row in startup.values())
    # Measured from a small launcher, not from the runner: the import alone is far below torch's size.
    assert startup["import barkwatch.cli"]["peak_rss_mb"]["median"] < startup["import torch"]["peak_rss_mb"]["median"]

    markdown = (tmp_path / "results.md").read_text()
    for heading in ("## Network cost per window", "## `detect` throughput", "## Start-up"):
        assert heading in markdown
    assert "| seed (preset, random weights) | 1 s | 3,446,499 |" in markdown
    assert "error" not in markdown.lower()
    print(f"quick run: {took:.0f} s")


def test_a_failing_benchmark_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("the device caught fire")

    def fine(ctx):
        return {"rows": [{"name": "import barkwatch.cli", "wall_s": bench_run.stats([0.1, 0.2, 0.3]),
                          "cpu_s": bench_run.stats([0.1]), "peak_rss_mb": bench_run.stats([20.0])}],
                "model": "models/default.pt"}

    monkeypatch.setitem(bench_run.BENCHMARKS, "network", broken)
    monkeypatch.setitem(bench_run.BENCHMARKS, "startup", fine)
    assert bench_run.main(["--only", "network,startup", "--out", str(tmp_path)]) == 1

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["benchmarks"]["network"]["error"] == "RuntimeError: the device caught fire"
    assert results["benchmarks"]["startup"]["rows"][0]["wall_s"]["median"] == 0.2
    markdown = (tmp_path / "results.md").read_text()
    assert "Error: RuntimeError: the device caught fire" in markdown
    assert "| `import barkwatch.cli` | 0.20 s (0.10-0.30) |" in markdown


def test_unknown_benchmark_names_are_refused(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--only", "network,speed",
                             "--out", str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 2
    assert "--only speed: not a benchmark" in result.stderr
    assert not (tmp_path / "results.json").exists()


def test_the_quality_plot_reads_every_recipe_row_of_the_log_and_writes_a_png(tmp_path):
    spec = importlib.util.spec_from_file_location("plot_quality", REPO / "benchmarks" / "plot_quality.py")
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)
    log = "\n".join([
        "| run | idea | kept? | val clip AUC | val 60 min | val 120 min |",
        "| e05 | recipe A | kept | **0.974** | 0.18 / 0.17 | **0.21 / 0.19** |",
        "| e14 | not finished | | | | |",
        "| e19 | head 100 | best | 0.970 | | 0.30 / 0.28 (40 epochs) |",
        "| run | recipe B with | params | val clip AUC | val 120 min: recall @2 / @0.5 | delay |",
        "| h03 | `--preset seed` | 3.5 M | 0.971 | 0.29 / 0.24 | 1.10 s |",
    ])
    assert plot.recipes(log) == [("e05", 0.974, 0.21, 0.19), ("e19", 0.970, 0.30, 0.28), ("h03", 0.971, 0.29, 0.24)]
    real = plot.recipes((REPO / "benchmarks" / "quality.md").read_text())
    assert len(real) >= 30 and {"e12", "e19", "h03"} <= {r[0] for r in real}
    out = tmp_path / "q.png"
    assert plot.main(["--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.main(["--log", str(tmp_path / "absent.md"), "--out", str(out)]) == 2


@pytest.mark.slow
def test_the_soak_benchmark_runs_the_live_path_and_checks_the_log_and_the_quota(tmp_path):
    """A few minutes of audio, not a day (the README has the day's figures): every event in the log, the
    clip quota held with clips deleted to hold it, memory and descriptors sampled."""
    out = tmp_path / "soak.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--hours", "0.1",
                             "--every-min", "1", "--clips-mb", "0.5", "--out", str(out)],
                            capture_output=True, text=True, cwd=REPO, timeout=600)
    soak = json.loads(out.read_text())
    assert result.returncode == 0, (soak, result.stderr[-2000:])
    assert soak["events_raised"] == soak["bark_records_in_log"] >= 5 * 6  # the example's 5 barks, 6 times
    # (a clip is skipped when 8 wait for the encoder: at full speed, barks come faster than in any home)
    assert soak["clips_written"] + soak["clips_skipped"] == soak["events_raised"] and soak["clips_deleted"] > 0
    assert 0 < soak["clips_mb_on_disk"] <= 0.5
    assert soak["rss_mb_after_warmup"] > 0 and soak["fds_at_end"] > 0 and soak["error"] is None
    assert [h for h, _, _ in soak["samples"]] == sorted(h for h, _, _ in soak["samples"])
