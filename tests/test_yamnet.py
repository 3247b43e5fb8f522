"""YAMNet in torch (barkwatch/model/yamnet.py): its weights read from Google's TFLite file, checked against
the TFLite interpreter on real clips; the resampler that feeds it a barkwatch model's windows; and clear
errors for a TFLite file that is missing, truncated or not YAMNet.

The interpreter computes with int8 weights and int8-quantised activations (its "hybrid" kernels); the port
in float. The bounds below say how far apart the two are allowed to be, for reasons of that rounding alone:
- the body (everything after the log-mel patch), given the interpreter's own patch: within 0.05 in the Dog
  and Bark probabilities (measured 2026-12-06: at most 0.020 on the example's windows);
- the front end: the patch within 0.05 of the interpreter's in the median cell (measured 0.0065); the
  interpreter's int8 DFT rounds each frame to 127 levels, which fills the quietest bins with rounding noise,
  so single cells far below the frame's loudest differ by up to 6 in log;
- the whole network: Dog and Bark probabilities within 0.01 in the median window (measured 1.5e-5), and the
  same side of 0.5 in at least 95% of windows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from barkwatch.model import yamnet
from barkwatch.model.yamnet import BARK, DOG, PATCH_SAMPLES, Resampler, YamnetBranch, YamnetFileError, from_tflite

from helpers import DOGS, REPO, SAMPLES

TFLITE = REPO.parent / "shared" / "pretrained" / "yamnet" / "yamnet.tflite"
needs_tflite = pytest.mark.skipif(not TFLITE.is_file(), reason=f"{TFLITE} is not here (a clone without ../shared)")


def _litert():
    return pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is not installed")


def clip_windows(rate: int = yamnet.RATE) -> np.ndarray:
    """0.975 s windows every 0.25 s of the example and of the sample bark clips, at ``rate``."""
    import soxr

    windows = []
    for path in [SAMPLES / "example.ogg", *sorted(DOGS.glob("*"))[:3]]:
        audio, r = sf.read(str(path), dtype="float32", always_2d=True)
        audio = soxr.resample(audio.mean(axis=1), r, rate).astype(np.float32)
        n = PATCH_SAMPLES * rate // yamnet.RATE
        windows += [audio[s:s + n] for s in range(0, len(audio) - n, rate // 4)]
    return np.stack(windows)


@pytest.fixture(scope="module")
def port():
    _litert()
    if not TFLITE.is_file():
        pytest.skip(f"{TFLITE} is not here (a clone without ../shared)")
    return from_tflite(TFLITE)


@pytest.fixture(scope="module")
def interpreted():
    """The windows, and the interpreter's (default delegates) probabilities and patches for them."""
    litert = _litert()
    if not TFLITE.is_file():
        pytest.skip(f"{TFLITE} is not here (a clone without ../shared)")
    interpreter = litert.Interpreter(model_path=str(TFLITE))
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    probabilities, patch = (d["index"] for d in interpreter.get_output_details())
    windows = clip_windows()
    probs, patches = [], []
    for w in windows:
        interpreter.set_tensor(source, w[None])
        interpreter.invoke()
        probs.append(interpreter.get_tensor(probabilities)[0].copy())
        patches.append(interpreter.get_tensor(patch).copy())
    return windows, np.array(probs), np.array(patches)


def test_the_port_has_yamnets_shape(port):
    assert sum(p.numel() for p in port.parameters()) == yamnet.PARAMETERS
    with torch.no_grad():
        embedding, logits = port(torch.zeros(3, PATCH_SAMPLES))
    assert embedding.shape == (3, 1024) and logits.shape == (3, yamnet.CLASSES)


def test_the_body_matches_the_interpreter_on_its_own_patch(port, interpreted):
    windows, probs, patches = interpreted
    with torch.no_grad():
        mine = torch.sigmoid(port.dense(port.embed(torch.from_numpy(patches)))).numpy()
    assert np.abs(mine - probs)[:, [DOG, BARK]].max() <= 0.05


def test_the_front_end_and_the_whole_network_match_the_interpreter(port, interpreted):
    windows, probs, patches = interpreted
    with torch.no_grad():
        patch = port.front(torch.from_numpy(windows)).numpy()
        mine = torch.sigmoid(port(torch.from_numpy(windows))[1]).numpy()
    assert np.median(np.abs(patch - patches)) <= 0.05
    difference = np.abs(mine - probs)[:, [DOG, BARK]]
    assert np.median(difference) <= 0.01
    agree = ((mine[:, [DOG, BARK]] >= 0.5) == (probs[:, [DOG, BARK]] >= 0.5)).all(axis=1)
    assert agree.mean() >= 0.95
    # Real barks among the windows: the test says something about dogs.
    assert (probs[:, [DOG, BARK]].max(axis=1) >= 0.5).sum() >= 10


def test_the_branch_resamples_a_models_windows_as_a_good_resampler_does(port):
    """The branch takes 1 s windows at 22,050 Hz and resamples inside the module; its bark logit is the
    port's on the same audio resampled by soxr (very high quality) to within 0.1 in the median window."""
    import soxr

    branch = YamnetBranch(port, 22050, 22050).eval()
    windows = clip_windows(22050)  # 0.975 s at 22,050 Hz: pad each to a 1 s window ending with it
    n = windows.shape[1]
    full = np.pad(windows, ((0, 0), (22050 - n, 0)))
    with torch.no_grad():
        got = branch(torch.from_numpy(full)).numpy()
        resampled = np.stack([soxr.resample(w, 22050, 16000, quality="VHQ")[-PATCH_SAMPLES:] for w in full])
        logits = port(torch.from_numpy(resampled.astype(np.float32)))[1]
        want = torch.maximum(logits[:, DOG], logits[:, BARK]).numpy()
    assert np.median(np.abs(got - want)) <= 0.1
    assert ((got >= 0) == (want >= 0)).mean() >= 0.95


def test_the_resampler_passes_yamnets_bands_and_removes_what_would_fold_into_them():
    resampler = Resampler(22050, 16000)
    t = np.arange(22050) / 22050

    def gain(freq: float) -> float:
        tone = torch.from_numpy(np.sin(2 * np.pi * freq * t).astype(np.float32))[None]
        out = resampler(tone).numpy()[0, 500:-500]
        return float(np.sqrt(2 * np.mean(out ** 2)))

    assert resampler(torch.zeros(2, 22050)).shape == (2, 16000)
    for freq in (125, 1000, 4000, 7500):
        assert abs(gain(freq) - 1) <= 0.01, freq
    for freq in (8600, 10000):
        assert gain(freq) <= 1e-3, freq


def test_the_mel_matrix_is_tensorflows():
    """Spot values of TensorFlow's linear_to_mel_weight_matrix(64, 257, 16000, 125, 7500): triangles that sum
    to about one across each band's rising and falling slope, nothing below 125 Hz or above 7,500 Hz."""
    m = yamnet.htk_mel_matrix()
    assert m.shape == (257, 64) and (m >= 0).all() and m.max() <= 1.0
    hz = np.linspace(0, 8000, 257)
    assert m[hz < 125].sum() == 0 and m[hz > 7500].sum() == 0
    assert (m.sum(axis=1)[(hz > 300) & (hz < 7000)] > 0.5).all()


def test_a_missing_truncated_or_foreign_file_is_refused_naming_it(tmp_path):
    _litert()
    with pytest.raises(YamnetFileError, match="no such file"):
        from_tflite(tmp_path / "yamnet.tflite")
    foreign = tmp_path / "default.onnx"
    foreign.write_bytes((REPO / "models" / "default.onnx").read_bytes())
    with pytest.raises(YamnetFileError, match=str(foreign)):
        from_tflite(foreign)
    if TFLITE.is_file():
        truncated = tmp_path / "truncated.tflite"
        truncated.write_bytes(TFLITE.read_bytes()[:100_000])
        with pytest.raises(YamnetFileError, match="truncated.tflite.*expected YAMNet"):
            from_tflite(truncated)
