"""The model exported as ONNX and run with ONNX Runtime: the same scores as the TorchScript file on real audio,
its metadata carried over, no torch in a process that only scores with it, and clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from barkwatch.model import modelfile
from barkwatch.model.onnxrt import load_onnx

from helpers import REPO, SAMPLES, run_cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The shipped model copied to a folder of its own and exported beside itself."""
    folder = tmp_path_factory.mktemp("onnx")
    shutil.copy(modelfile.DEFAULT_MODEL, folder / "default.pt")
    return folder / "default.pt", modelfile.export_onnx(folder / "default.pt")


def example_windows() -> np.ndarray:
    audio, rate = sf.read(str(SAMPLES / "example.ogg"), dtype="float32")
    assert rate == 22050 and audio.ndim == 1
    return np.stack([audio[s:s + 22050] for s in range(0, len(audio) - 22050, 5512)])


def test_onnx_scores_the_example_as_the_torchscript_file_does(exported):
    pt, onnx_path = exported
    assert onnx_path == pt.with_suffix(".onnx") and onnx_path.stat().st_size > 100_000
    windows = example_windows()
    with torch.no_grad():
        expected = [t.numpy() for t in modelfile.load(pt).forward(torch.from_numpy(windows))]
    model = load_onnx(onnx_path)
    for got in (model.forward(windows), [np.concatenate(parts) for parts in
                                         zip(*(model.forward(windows[i:i + 1]) for i in range(len(windows))))]):
        for name, a, b in zip(("rl", "kl", "score"), expected, got):
            assert b.shape == a.shape, name
            assert np.allclose(a, b, rtol=1e-4, atol=1e-4), (name, float(np.abs(a - b).max()))
    assert (expected[2] >= model.threshold).any() and (expected[2] < model.threshold).any()  # barks and not


def test_the_engine_computes_each_frame_once_and_scores_what_the_model_scores_window_by_window(exported):
    """Features once per hop: the engine on ONNX Runtime scores power spectrograms built frame by frame
    (spectrum.StreamFrames); they are the ones each window alone gives, so the scores are the model's own on
    the same windows, and the TorchScript file's on the same windows to 1e-4."""
    from barkwatch.detection.engine import Engine, EngineSettings

    pt, onnx_path = exported
    onnx_model, torch_model = load_onnx(onnx_path), modelfile.load(pt)
    audio, rate = sf.read(str(SAMPLES / "example.ogg"), dtype="float32")
    settings = EngineSettings(hop_s=0.25, gate_dbfs=-45)  # some windows gated: their frames are never computed
    engine = Engine(onnx_model, rate, settings)
    assert engine._frames is not None and Engine(torch_model, rate, settings)._frames is None
    blocks = np.random.default_rng(0).integers(1, 3000, 400)
    windows, i = [], 0
    for size in blocks:
        windows += engine.feed(audio[i : i + size])
        i += size
    windows += engine.feed(audio[i:]) + engine.finish()
    starts = np.array([round(w.start_s * rate) for w in windows])
    # On the frame grid, at the grid point nearest k * 0.25 s: no drift, and four windows a second.
    assert (starts % 512 == 0).all()
    assert np.abs(starts - 5512.5 * np.arange(len(starts))).max() <= 256
    scored = [k for k, w in enumerate(windows) if w.level_dbfs >= settings.gate_dbfs]
    assert 10 < len(scored) < len(windows) - 5
    samples = np.stack([np.pad(audio, (0, rate))[s : s + rate] for s in starts[scored]])
    alone = onnx_model.score(samples)
    np.testing.assert_allclose([windows[k].score for k in scored], alone[2], rtol=0, atol=1e-6)
    np.testing.assert_allclose([windows[k].rl for k in scored], alone[0], rtol=1e-6)
    on_torch = torch_model.score(samples)
    np.testing.assert_allclose(on_torch[2], alone[2], rtol=0, atol=1e-4)
    on_torch_engine = Engine(torch_model, rate, settings)
    torch_windows = on_torch_engine.feed(audio) + on_torch_engine.finish()
    assert [w.start_s for w in torch_windows] == [w.start_s for w in windows]  # both runtimes, the same windows


def test_the_metadata_comes_along_with_where_it_came_from(exported):
    pt, onnx_path = exported
    meta, source = load_onnx(onnx_path).metadata, modelfile.load(pt)
    assert meta["exported_from"] == {"file": "default.pt", "sha256": source.sha256}
    assert {k: v for k, v in meta.items() if k != "exported_from"} == source.metadata


def test_scoring_with_onnx_runtime_imports_no_torch(exported):
    _, onnx_path = exported
    code = ("import sys, numpy as np\n"
            "from barkwatch.model.onnxrt import load_onnx\n"
            f"m = load_onnx({str(onnx_path)!r})\n"
            "rl, kl, score = m.forward(np.zeros((3, m.window_samples), np.float32))\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'n': len(score)}))\n")
    result = subprocess.run([sys.executable, "-c", "import json\n" + code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"torch": False, "n": 3}


def test_missing_foreign_and_unlabelled_files_are_refused_naming_them(tmp_path, exported):
    with pytest.raises(modelfile.ModelFileError, match="nothing.onnx: no such file"):
        load_onnx(tmp_path / "nothing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(modelfile.ModelFileError, match="junk.onnx: not a model ONNX Runtime can load"):
        load_onnx(junk)
    import onnx

    bare = onnx.load(str(exported[1]))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(modelfile.ModelFileError, match="bare.onnx: an ONNX model without barkwatch's metadata"):
        load_onnx(tmp_path / "bare.onnx")
    older = onnx.load(str(exported[1]))
    older.graph.input[0].name = "samples"  # inputs other than the ones this barkwatch writes (power[, wave])
    for node in older.graph.node:
        node.input[:] = ["samples" if name == "power" else name for name in node.input]
    onnx.save(older, str(tmp_path / "older.onnx"))
    with pytest.raises(modelfile.ModelFileError, match="older.onnx: exported by an older barkwatch"):
        load_onnx(tmp_path / "older.onnx")


def test_the_shipped_onnx_file_is_the_shipped_model():
    meta = load_onnx(modelfile.DEFAULT_MODEL.with_suffix(".onnx")).metadata
    assert meta["exported_from"] == {"file": "default.pt", "sha256": modelfile.file_hash(modelfile.DEFAULT_MODEL)}


# Runs barkwatch's command line in a process where importing torch fails, as on a box without it.
WITHOUT_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch' (hidden: the box has no torch)")

sys.meta_path.insert(0, NoTorch())
from barkwatch.cli import main
sys.argv = ["barkwatch"] + sys.argv[1:]
main()
"""


def run_without_torch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


def barks(stdout: str) -> list[tuple]:
    events = [json.loads(line) for line in stdout.splitlines()]
    return [(e["offset_s"], e["detected_offset_s"], e["end_offset_s"], e["peak_score"]) for e in events
            if e["event"] == "bark"]


def test_detect_without_torch_finds_what_the_torch_runtime_finds():
    example = str(SAMPLES / "example.ogg")
    with_torch = run_cli("detect", example, "--events", "-", "--runtime", "torch", "-q")
    assert with_torch.returncode == 0, with_torch.stderr
    without = run_without_torch("detect", example, "--events", "-", "-q")  # auto: torch is not there
    assert without.returncode == 0, without.stderr
    assert barks(without.stdout) == barks(with_torch.stdout) and len(barks(with_torch.stdout)) == 5
    assert '"file": "default.onnx"' in without.stdout


def test_listen_without_torch_reports_a_bark_from_a_recording(tmp_path):
    audio, rate = sf.read(str(SAMPLES / "example.ogg"), dtype="float32", frames=7 * 22050)
    clip = tmp_path / "first-bark.wav"  # the example's first bark, 2.2-2.7 s
    sf.write(str(clip), audio, rate)
    events = tmp_path / "events.jsonl"
    result = run_without_torch("listen", "--device", f"file:{clip}", "--events", str(events), "--runtime", "onnx",
                               "--state-dir", str(tmp_path / "state"), "--no-clips", "-q", timeout=120)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert [r["event"] for r in records] == ["bark_start", "bark"]
    assert records[1]["model"]["file"] == "default.onnx" and 1.0 <= records[1]["offset_s"] <= 2.5


def test_runtime_choices_that_cannot_work_are_one_line_errors(tmp_path, exported):
    pt, onnx_path = exported
    example = str(SAMPLES / "example.ogg")
    cases = [
        (["--model", str(onnx_path), "--runtime", "torch"], "is an ONNX model"),
        (["--runtime", "onnx", "--compute", "cuda"], "the onnx runtime runs on the CPU"),
        (["--runtime", "tensorflow"], "runtime tensorflow: choose one of auto, torch, onnx"),
        (["--compute", "gpu"], "compute gpu: choose one of auto, cpu, cuda, mps"),  # a typo, not a runtime matter
        (["--runtime", "onnx", "--compute", "gpu"], "compute gpu: choose one of auto, cpu, cuda, mps"),
    ]
    lonely = tmp_path / "lonely.pt"
    shutil.copy(pt, lonely)
    cases.append((["--model", str(lonely), "--runtime", "onnx"], "lonely.onnx: no ONNX export of lonely.pt"))
    assert "onnx export  none (`barkwatch export-onnx" in run_cli("inspect", str(lonely)).stdout
    for args, needle in cases:
        result = run_cli("detect", example, *args, "-q")
        assert result.returncode == 2 and needle in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


def test_auto_runs_a_current_onnx_export_on_the_cpu_and_torch_otherwise(tmp_path):
    from barkwatch.detection.detector import resolve_runtime

    rex = tmp_path / "rex.pt"
    shutil.copy(modelfile.DEFAULT_MODEL, rex)
    assert resolve_runtime("auto", rex, "auto", gpu=False) == "torch"  # no export beside it
    shutil.copy(modelfile.DEFAULT_MODEL.with_suffix(".onnx"), rex.with_suffix(".onnx"))
    assert resolve_runtime("auto", rex, "auto", gpu=False) == "onnx"
    assert resolve_runtime("auto", None, "cpu", gpu=True) == "onnx"  # the CPU asked for: a GPU is no matter
    # A GPU to be used (present and compute auto, or asked for): torch, the one runtime that can use it.
    assert resolve_runtime("auto", rex, "auto", gpu=True) == "torch"
    assert resolve_runtime("auto", rex, "cuda", gpu=False) == "torch"
    assert resolve_runtime("torch", rex, "cpu", gpu=False) == "torch"
    assert resolve_runtime("onnx", tmp_path / "elsewhere.pt", "auto", gpu=True) == "onnx"  # as asked
    assert resolve_runtime("auto", rex.with_suffix(".onnx"), "auto", gpu=True) == "onnx"


def test_an_export_older_than_its_model_file_is_passed_over_by_auto_and_refused_when_asked_for(tmp_path, caplog):
    from barkwatch.detection.detector import Detector
    from barkwatch.model.onnxrt import OnnxModel

    rex = tmp_path / "rex.pt"
    shutil.copy(modelfile.DEFAULT_MODEL, rex)
    shutil.copy(modelfile.DEFAULT_MODEL.with_suffix(".onnx"), rex.with_suffix(".onnx"))
    # The copies are the export and its source (the export names the source by its hash, not its name).
    assert isinstance(Detector.load(rex, runtime="onnx").model, OnnxModel)
    assert f"onnx export  {rex.with_suffix('.onnx')}, current: --runtime auto runs it" in \
        run_cli("inspect", str(rex)).stdout
    modelfile.update_metadata(rex, rex, {"threshold": 0.5})  # rex.pt changed since its export
    assert f"{rex.with_suffix('.onnx')}, stale: exported from another rex.pt; `barkwatch export-onnx" in \
        run_cli("inspect", str(rex)).stdout
    with caplog.at_level("WARNING", logger="barkwatch"):
        detector = Detector.load(rex, compute="cpu")
    assert isinstance(detector.model, modelfile.LoadedModel) and detector.threshold == 0.5
    assert "rex.onnx is older than rex.pt: running rex.pt on torch; `barkwatch export-onnx" in caplog.text
    with pytest.raises(modelfile.ModelFileError, match="rex.onnx: exported from another rex.pt"):
        Detector.load(rex, runtime="onnx")
