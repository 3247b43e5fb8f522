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

from helpers import REPO, SAMPLES

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
