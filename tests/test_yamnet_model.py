"""A model file with a YAMNet branch: trained with `train --yamnet`, fine-tuned from without the TFLite file,
shown by `inspect`, refused when its branch is missing or not YAMNet, and its cascade never leaving out a
window that the full model scores at or above its thresholds on validation audio."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from barkwatch.model import modelfile
from barkwatch.model.modelfile import ModelFileError
from barkwatch.model.yamnet import YamNet, YamnetBranch

from helpers import DOGS, OTHERS, REPO, run_cli
from test_cli import one_line_error

TFLITE = REPO.parent / "shared" / "pretrained" / "yamnet" / "yamnet.tflite"
DATA = REPO.parent / "shared" / "data" / "barks-dev"
needs_tflite = pytest.mark.skipif(not TFLITE.is_file(), reason=f"{TFLITE} is not here (a clone without ../shared)")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

COMMON = ["--positives", str(DOGS), "--negatives", str(OTHERS), "--preset", "small", "--window", "1",
          "--objective", "joint", "--norm", "db", "--bark-net", "cnn-pcen", "--epochs", "1"]


def branch_weights(path) -> dict[str, torch.Tensor]:
    state = torch.jit.load(str(path)).state_dict()
    return {k: v for k, v in state.items() if k.startswith("yamnet.yamnet.")}


@pytest.mark.slow
@needs_tflite
def test_train_puts_yamnet_beside_the_bark_network_and_fine_tuning_keeps_it_without_the_tflite_file(tmp_path):
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")
    result = run_cli("train", *COMMON, "--yamnet", str(TFLITE), "--out", str(tmp_path / "y.pt"))
    assert result.returncode == 0, result.stderr
    meta = json.loads(run_cli("inspect", "--json", str(tmp_path / "y.pt")).stdout)
    assert len(meta["classifier"]["weight"]) == 4 and meta["yamnet"]["model_weight"] == 0.4
    assert meta["yamnet"]["source"] == "yamnet.tflite" and "Apache" in meta["yamnet"]["licence"]
    assert meta["metrics"]["val"]["with_yamnet"] and 0 < meta["threshold"] < 1
    shown = run_cli("inspect", str(tmp_path / "y.pt")).stdout
    assert "yamnet" in shown and "Apache License 2.0" in shown and "0.4 x the model's own logit" in shown
    # The branch scores: YAMNet's logit moves the score of a bark window.
    model = modelfile.load(tmp_path / "y.pt")
    assert branch_weights(tmp_path / "y.pt")["yamnet.yamnet.dense.weight"].shape == (521, 1024)

    # An owner's model started from it keeps the same ears, read from the model file, not from TFLite.
    result = run_cli("train", *COMMON, "--init", str(tmp_path / "y.pt"), "--yamnet-weight", "0.5",
                     "--out", str(tmp_path / "f.pt"))
    assert result.returncode == 0, result.stderr
    tuned = json.loads(run_cli("inspect", "--json", str(tmp_path / "f.pt")).stdout)["yamnet"]
    assert tuned["model_weight"] == 0.5 and tuned["via"]["file"] == "y.pt" and tuned["source"] == "yamnet.tflite"
    before, after = branch_weights(tmp_path / "y.pt"), branch_weights(tmp_path / "f.pt")
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert model.threshold == meta["threshold"]


def test_a_bad_yamnet_file_stops_training_before_it_starts_and_writes_nothing(tmp_path):
    out = tmp_path / "x.pt"
    one_line_error(run_cli("train", *COMMON, "--yamnet", str(tmp_path / "absent.tflite"), "--out", str(out)),
                   "absent.tflite", "expected YAMNet")
    truncated = tmp_path / "yamnet.tflite"
    truncated.write_bytes(b"TFL3" + bytes(5000))
    result = run_cli("train", *COMMON, "--yamnet", str(truncated), "--out", str(out))
    assert result.returncode == 2 and str(truncated) in result.stderr, result.stderr
    one_line_error(run_cli("train", *COMMON, "--yamnet", str(modelfile.DEFAULT_MODEL.with_suffix(".onnx")),
                           "--out", str(out)), "default.onnx")
    assert not out.exists()


def _non_yamnet_model(tmp_path):
    """A small model without a branch: the one the tests train with a bark network, or else any shipped one."""
    from barkwatch.model.barknet import BarkNet, BarkNetConfig
    from barkwatch.model.classifier import LinearClassifier
    from barkwatch.model.features import FeatureParams, Spectrogram
    from barkwatch.model.scorer import Scorer
    from barkwatch.model.vae import PRESETS, VAE

    features = FeatureParams(normalisation="db")
    clf = LinearClassifier((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.1, 0.1, 1.0), 0.0, 0.5, "logistic")
    scorer = Scorer(Spectrogram(features), VAE(PRESETS["small"], features.n_mels, features.frames(22050)), 22050,
                    clf, BarkNet(BarkNetConfig(front="pcen")))
    meta = {"sample_rate": 22050, "window_samples": 22050, "window_s": 1, "threshold": 0.5, "hop_s": 0.25,
            "features": features.to_dict(), "classifier": clf.to_dict(), "network": PRESETS["small"].to_dict(),
            "bark_net": {"name": "cnn-pcen", **BarkNetConfig(front="pcen").to_dict()}}
    return scorer, meta


def test_a_model_file_whose_yamnet_branch_is_missing_or_not_yamnet_is_refused_with_the_reason(tmp_path):
    scorer, meta = _non_yamnet_model(tmp_path)
    plain = modelfile.save(scorer, meta, tmp_path / "plain.pt")
    modelfile.load(plain)  # fine as it is
    claims = modelfile.update_metadata(plain, tmp_path / "claims.pt", {"yamnet": {"source": "yamnet.tflite"}})
    with pytest.raises(ModelFileError, match="claims.pt: its metadata names a YAMNet branch but the file holds none"):
        modelfile.load(claims)

    from barkwatch.model.classifier import LinearClassifier
    from barkwatch.model.scorer import Member, Scorer

    other = YamNet()
    other.dense = torch.nn.Linear(1024, 10)  # another network's head: not AudioSet's 521 classes
    clf = LinearClassifier((0.0,) * 4, (1.0,) * 4, (0.1, 0.1, 1.0, 1.0), 0.0, 0.5, "logistic")
    member = scorer.members[0]
    wrong = Scorer(scorer.features, None, 22050, members=[Member(member.vae, clf, member.barknet)],
                   yamnet=YamnetBranch(other, 22050, 22050))
    wrong.yamnet.dog, wrong.yamnet.bark = 0, 1
    path = modelfile.save(wrong, {**meta, "classifier": clf.to_dict(), "yamnet": {"source": "x"}},
                          tmp_path / "wrong.pt")
    with pytest.raises(ModelFileError, match="wrong.pt: its YAMNet branch is not YAMNet"):
        modelfile.load(path)
    result = run_cli("detect", "--model", str(path), str(REPO / "samples" / "example.ogg"), "--runtime", "torch")
    assert result.returncode == 2 and "is not YAMNet" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_cascade_never_leaves_out_a_window_the_full_model_scores_above_its_thresholds_on_validation_audio(
        tmp_path):
    """The shipped default's cascade against the same model with YAMNet on every window, on a 30-minute mix
    of the validation recordings (the ones its gate was chosen on): every window the full model scores at or
    above the lower of its threshold and hold threshold scores exactly the same with the cascade."""
    meta = modelfile.read_metadata(modelfile.DEFAULT_MODEL)
    if not meta.get("yamnet"):
        pytest.skip("the shipped default has no YAMNet branch")
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is not here (a clone without ../shared)")
    mix = tmp_path / "mix"
    built = subprocess.run([sys.executable, str(REPO / "benchmarks" / "household.py"), "build", "--data", str(DATA),
                            "--holdout", str(REPO / "benchmarks" / "validation.txt"), "--minutes", "30",
                            "--seed", "1", "--out", str(mix)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    import soundfile as sf

    from barkwatch.detection.engine import Engine, EngineSettings

    loaded = modelfile.load(modelfile.DEFAULT_MODEL)
    full = modelfile.python_scorer(loaded)
    full.cascade_logit = -math.inf
    audio, rate = sf.read(str(mix / "household.wav"), dtype="float32")
    engine = Engine(loaded, rate, EngineSettings(hop_s=float(meta["hop_s"])))
    windows = engine.feed(audio) + engine.finish()
    audio = np.concatenate([audio, np.zeros(loaded.window_samples, np.float32)])  # finish() pads the last window
    cascade = np.array([w.score for w in windows])
    starts = [int(round(w.start_s * rate)) for w in windows]
    scored = np.array([w.level_dbfs >= engine.settings.gate_dbfs for w in windows])
    lowest = min(loaded.threshold, float(meta.get("hold_threshold") or 1.0))
    everything = np.zeros(len(windows))
    with torch.inference_mode():
        idx = np.flatnonzero(scored)
        for first in range(0, len(idx), 64):
            chosen = idx[first:first + 64]
            batch = torch.from_numpy(np.stack([audio[starts[i]:starts[i] + loaded.window_samples] for i in chosen]))
            everything[chosen] = full(batch)[2].numpy()
    above = everything >= lowest
    assert above.sum() >= 20  # barks are in the mix: the test compares something
    assert np.allclose(cascade[above], everything[above], atol=1e-5)
    skipped = scored & (np.abs(cascade - everything) > 1e-5)
    assert (everything[skipped] < lowest).all()
    assert 0 < skipped.sum() < scored.sum()  # the cascade leaves YAMNet out somewhere, and not everywhere


def test_the_combined_classifier_is_the_weighted_mean_of_the_two_logits():
    """add_yamnet writes a z_model + (1 - a) y as one linear classifier on four columns: the same number."""
    from barkwatch.model.classifier import LinearClassifier
    from barkwatch.training.yamnet import combined_classifier

    rng = np.random.default_rng(0)
    old = LinearClassifier((1.0, -2.0, 0.5), (2.0, 3.0, 1.5), (-0.06, 0.08, 2.49), 0.3, 0.988, "logistic",
                           tuple(rng.normal(size=4)))
    rl, kl, logit, y = np.exp(rng.normal(size=50)), np.exp(rng.normal(size=50)), rng.normal(size=50), \
        rng.normal(scale=5, size=50)
    mu = rng.normal(size=(50, 4))
    z_old = np.log(old.score(rl, kl, mu, logit) / (1 - old.score(rl, kl, mu, logit)))
    new = combined_classifier(old, 0.4)
    p = new.score(rl, kl, mu, logit, y)
    assert new.uses_yamnet and np.allclose(np.log(p / (1 - p)), 0.4 * z_old + 0.6 * y, atol=1e-9)
    with pytest.raises(ValueError, match="model_weight"):
        combined_classifier(old, 0.0)
    with pytest.raises(ValueError, match="already|bark network"):
        combined_classifier(new, 0.5)
