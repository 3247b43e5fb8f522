"""The exported model file: one TorchScript archive that scores raw audio, loads anywhere, and fails clearly."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
import torch

from barkwatch.model import modelfile
from barkwatch.detection.audio import load_audio
from barkwatch.model.classifier import LinearClassifier
from barkwatch.model.features import Spectrogram
from barkwatch.model.vae import PRESETS, VAE
from barkwatch.model.scorer import Scorer

from helpers import DOGS, OTHERS

N = 22050  # 1 s windows keep this quick; the format is the same for 2 and 3 s


def real_windows() -> torch.Tensor:
    clips = sorted(DOGS.glob("*.ogg"))[:3] + sorted(OTHERS.glob("*.ogg"))[:3]
    return torch.from_numpy(np.stack([load_audio(p, 22050)[:N] for p in clips]))


@pytest.fixture(scope="module")
def scorer():
    torch.manual_seed(0)
    vae = VAE(PRESETS["small"], 128, 44)
    vae.train()
    with torch.no_grad():  # settle BatchNorm statistics so outputs are not degenerate
        vae(torch.rand(8, 1, 128, 44))
    clf = LinearClassifier((-3.0, 1.0), (1.0, 0.5), (0.3, 1.2), -0.2, 0.6, "logistic")
    return Scorer(Spectrogram(), vae, N, clf).eval()


def save(scorer, path, **extra):
    meta = {"sample_rate": 22050, "window_s": 1, "window_samples": N, "threshold": 0.6, **extra}
    return modelfile.save(scorer, meta, path)


def test_export_loaded_in_a_fresh_process_matches_the_model_in_memory(scorer, tmp_path):
    path = save(scorer, tmp_path / "m.pt")
    wave = real_windows()
    np.save(tmp_path / "wave.npy", wave.numpy())
    with torch.no_grad():
        expected = [t.numpy() for t in scorer(wave)]
    # Nothing but torch in the other process: the file must be self-contained.
    code = (
        "import sys, numpy as np, torch\n"
        "m = torch.jit.load(sys.argv[1])\n"
        "rl, kl, score = m(torch.from_numpy(np.load(sys.argv[2])))\n"
        "np.save(sys.argv[3], np.stack([rl.numpy(), kl.numpy(), score.numpy()]))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "wave.npy"), str(tmp_path / "out.npy")],
                   check=True, cwd=tmp_path)
    got = np.load(tmp_path / "out.npy")
    assert got.shape == (3, len(wave))
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    assert ((got[2] >= 0) & (got[2] <= 1)).all()


def test_metadata_round_trips_and_loading_is_silent(scorer, tmp_path):
    path = save(scorer, tmp_path / "m.pt", preset="small")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a TorchScript deprecation warning would fail here
        loaded = modelfile.load(path)
        save(scorer, tmp_path / "again.pt")
    assert loaded.metadata["format_version"] == modelfile.FORMAT_VERSION
    assert loaded.metadata["preset"] == "small" and loaded.window_samples == N
    assert modelfile.read_metadata(path) == loaded.metadata
    assert len(loaded.sha256) == 16


def test_wrong_window_length_is_a_clear_error(scorer, tmp_path):
    loaded = modelfile.load(save(scorer, tmp_path / "m.pt"))
    with pytest.raises(Exception, match=str(N)):
        loaded.module(torch.zeros(1, N - 1))


def _assert_refused(path, needle):
    with pytest.raises(modelfile.ModelFileError) as info:
        modelfile.load(path)
    message = str(info.value)
    assert str(path) in message and needle in message and "\n" not in message


def test_missing_random_truncated_foreign_and_newer_files_are_refused(scorer, tmp_path):
    _assert_refused(tmp_path / "nope.pt", "no such model file")

    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(5000))
    _assert_refused(tmp_path / "random.pt", "not a barkwatch model")

    good = save(scorer, tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    _assert_refused(tmp_path / "truncated.pt", "not a barkwatch model")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "foreign.pt"))
    _assert_refused(tmp_path / "foreign.pt", "without barkwatch metadata")

    newer = tmp_path / "newer.pt"
    save(scorer, newer)
    with zipfile.ZipFile(newer) as z:
        items = {n: z.read(n) for n in z.namelist()}
    name = next(n for n in items if n.endswith("extra/barkwatch.json"))
    meta = json.loads(items[name])
    meta["format_version"] = modelfile.FORMAT_VERSION + 1
    items[name] = json.dumps(meta).encode()
    with zipfile.ZipFile(newer, "w") as z:
        for n, data in items.items():
            z.writestr(n, data)
    _assert_refused(newer, "upgrade barkwatch")


def test_an_ensemble_scores_the_mean_of_its_members_and_round_trips(tmp_path):
    from barkwatch.model.scorer import Member

    torch.manual_seed(0)
    members = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        vae = VAE(PRESETS["small"], 128, 44).eval()
        clf = LinearClassifier((0.0, 0.0), (1.0, 1.0), (0.3 * seed, -0.2), 0.1, 0.5, "logistic")
        members.append((vae, clf))
    ensemble = Scorer.ensemble(Spectrogram(), members, N).eval()
    singles = [Scorer(Spectrogram(), v, N, c).eval() for v, c in members]
    wave = torch.randn(3, N) * 0.1
    with torch.no_grad():
        expected = sum(s(wave)[2] for s in singles) / 2
        assert torch.allclose(ensemble(wave)[2], expected, atol=1e-6)
    path = modelfile.save(ensemble, {"threshold": 0.5, "sample_rate": 22050, "window_samples": N}, tmp_path / "e.pt")
    loaded = modelfile.load(path)
    with torch.no_grad():
        assert torch.allclose(loaded.module(wave)[2], expected, atol=1e-5)
    assert isinstance(ensemble.members[0], Member)


def test_update_metadata_changes_the_threshold_and_keeps_the_network(tmp_path, scorer):
    path = modelfile.save(scorer, {"threshold": 0.5, "sample_rate": 22050, "window_samples": N}, tmp_path / "m.pt")
    out = modelfile.update_metadata(path, tmp_path / "m2.pt", {"threshold": 0.9, "calibration": {"budget": 1}})
    a, b = modelfile.load(path), modelfile.load(out)
    assert b.threshold == 0.9 and b.metadata["calibration"] == {"budget": 1} and a.threshold == 0.5
    wave = torch.randn(2, N) * 0.1
    with torch.no_grad():
        assert torch.equal(a.module(wave)[2], b.module(wave)[2])


def test_a_bark_network_joins_the_classifier_and_round_trips(tmp_path):
    """The exported score is the linear classifier on (log RL, log KL, the bark network's logit), computed
    by hand here from the parts, and the saved file gives the same in a fresh load."""
    from barkwatch.model.barknet import BarkNet
    from barkwatch.model.vae import loss_terms

    torch.manual_seed(3)
    vae, net = VAE(PRESETS["small"], 128, 44).eval(), BarkNet().eval()
    clf = LinearClassifier((-4.0, 2.0, 0.0), (1.0, 1.0, 2.0), (0.2, -0.3, 1.5), 0.1, 0.5, "logistic")
    scorer = Scorer(Spectrogram(), vae, N, clf, net).eval()
    wave = torch.randn(3, N) * 0.1
    with torch.no_grad():
        x = scorer.spectrogram(wave)
        mu, logvar = vae.encode(x)
        rl, kl = loss_terms(x, vae.decode(mu), mu, logvar)
        expected = clf.score(rl.double().numpy(), kl.double().numpy(), logit=net(x).double().numpy())
        assert np.allclose(scorer(wave)[2].numpy(), expected, atol=1e-5)
    loaded = modelfile.load(modelfile.save(scorer, {"threshold": 0.5, "sample_rate": 22050, "window_samples": N},
                                           tmp_path / "b.pt"))
    with torch.no_grad():
        assert np.allclose(loaded.forward(wave)[2].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="bark network"):
        Scorer(Spectrogram(), vae, N, clf)  # three weights but no network to give the third column


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script, the model format asked for
def test_the_shipped_model_rebuilt_with_this_code_scores_the_same(tmp_path):
    import soundfile as sf

    from helpers import SAMPLES

    audio, rate = sf.read(str(SAMPLES / "example.ogg"), dtype="float32", frames=22050 * 8)
    assert rate == 22050
    windows = torch.from_numpy(np.stack([audio[s:s + 22050] for s in range(0, len(audio) - 22050, 5512)]))
    shipped = modelfile.load(modelfile.DEFAULT_MODEL)
    rebuilt = modelfile.load(modelfile.rebuild(modelfile.DEFAULT_MODEL, tmp_path / "rebuilt.pt"))
    assert rebuilt.metadata == shipped.metadata
    with torch.no_grad():
        for before, after in zip(shipped.forward(windows), rebuilt.forward(windows)):
            assert torch.allclose(before, after, rtol=1e-5, atol=1e-6)


def test_an_ensemble_is_not_rebuilt(tmp_path):
    path = tmp_path / "ensemble.pt"
    modelfile.save(torch.nn.Identity(), {"ensemble": 2, "sample_rate": 22050, "window_s": 1,
                                         "window_samples": 22050, "threshold": 0.5}, path)
    with pytest.raises(modelfile.ModelFileError, match="ensemble of 2 cannot be rebuilt"):
        modelfile.rebuild(path, tmp_path / "out.pt")


def test_negligible_weights_are_zeroed_on_save_and_load_without_changing_scores(scorer, tmp_path):
    # What weight decay leaves on units that stopped learning (the default model had tens of thousands):
    # they cost subnormal arithmetic and add nothing a float32 sum can hold.
    import copy

    tiny = copy.deepcopy(scorer)
    conv = tiny.members[0].vae.encoder[3]
    with torch.no_grad():
        conv.weight[:4] = 3e-33
        conv.bias[0] = -1e-37
    wave = real_windows()
    with torch.no_grad():
        expected = [t.numpy() for t in tiny(wave)]
    # The file keeps the tiny weights when written by something other than save (an older barkwatch).
    with modelfile._quiet_torchscript():
        scripted = torch.jit.script(copy.deepcopy(tiny).requires_grad_(False))
    older = modelfile._write(scripted, {"format_version": 1, "sample_rate": 22050, "window_s": 1,
                                        "window_samples": N, "threshold": 0.6}, tmp_path / "older.pt")
    for path in (older, save(tiny, tmp_path / "new.pt")):
        loaded = modelfile.load(path)
        weights = dict(loaded.module.named_parameters())["members.0.vae.encoder.3.weight"]
        assert (weights[:4] == 0).all() and (weights[4:] != 0).all()
        assert dict(loaded.module.named_parameters())["members.0.vae.encoder.3.bias"][0] == 0
        for got, want in zip(loaded.score(wave.numpy()), expected):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert modelfile.zero_negligible(tiny) == 4 * conv.weight[0].numel() + 1
    assert modelfile.zero_negligible(tiny) == 0
