"""`barkwatch train --labels ... [--init MODEL]`: a specific-dog model from `barkwatch label`'s labels.jsonl,
fine-tuned from the shipped model, on real clips (the repository's ESC-10 dogs stand in for 'my dog' and
'other dogs')."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from barkwatch.model.modelfile import DEFAULT_MODEL, load
from barkwatch.training.train import labelled_group
from helpers import DOGS, OTHERS, run_cli


def write_labels(folder: Path, mine: int = 8, others_dogs: int = 8, not_barks: int = 24) -> Path:
    dogs, others = sorted(DOGS.iterdir()), sorted(OTHERS.iterdir())
    lines = []
    for i, p in enumerate(dogs[: mine + others_dogs]):
        shutil.copy(p, folder / p.name)
        lines.append({"clip": p.name, "label": "my_dog" if i < mine else "other_dog"})
    for p in others[:not_barks]:
        shutil.copy(p, folder / p.name)
        lines.append({"clip": p.name, "label": "not_bark"})
    lines.append({"clip": dogs[0].name, "label": None})  # undone, then labelled again below
    lines.append({"clip": dogs[0].name, "label": "my_dog"})
    (folder / "labels.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder / "labels.jsonl"


@pytest.mark.slow
def test_fine_tuning_from_the_shipped_model_on_labels(tmp_path):
    labels = write_labels(tmp_path)
    out = tmp_path / "mine.pt"
    result = run_cli("train", "--labels", str(labels), "--init", str(DEFAULT_MODEL), "--epochs", "2",
                     "--split", "0.5,0.25,0.25", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "fine-tuning from" in result.stderr
    assert "separation (clip ROC AUC): my dog vs other dogs" in result.stdout
    model = load(out)
    base = load(DEFAULT_MODEL)
    training = model.metadata["training"]
    assert training["labels"] == str(labels) and training["init"] == str(DEFAULT_MODEL)
    assert training["files"] == {"positive": 8, "negative": 32, "skipped": 0}
    # The shipped model's shape and features, whatever this command's own defaults are.
    assert model.metadata["preset"] == base.metadata["preset"] and model.metadata["window_s"] == 1
    assert model.metadata["features"]["normalisation"] == base.metadata["features"]["normalisation"]
    seps = [model.metadata["metrics"][s].get("separation") for s in ("val", "test")]
    assert any(s and s["my_dog_clips"] > 0 for s in seps)


@pytest.mark.slow
def test_init_really_starts_from_the_given_weights(tmp_path):
    labels = write_labels(tmp_path)
    out = tmp_path / "still.pt"
    result = run_cli("train", "--labels", str(labels), "--init", str(DEFAULT_MODEL), "--epochs", "1", "--lr",
                     "1e-12", "--split", "0.5,0.25,0.25", "--out", str(out))
    assert result.returncode == 0, result.stderr

    def encoder(path):
        state = load(path).module.state_dict()
        key = next(k for k in state if k.endswith("vae.encoder.0.weight"))
        return state[key]

    # With a learning rate of 1e-12 the first convolution is the shipped one (BatchNorm statistics move, the
    # weights cannot); from scratch it would be a fresh random draw.
    assert torch.allclose(encoder(out), encoder(DEFAULT_MODEL), atol=1e-6)


@pytest.mark.slow
def test_labels_errors_name_the_file_and_what_to_do(tmp_path):
    result = run_cli("train", "--labels", str(tmp_path / "labels.jsonl"), "--out", str(tmp_path / "m.pt"))
    assert result.returncode == 2 and "labels.jsonl: no such file" in result.stderr
    result = run_cli("train", "--out", str(tmp_path / "m.pt"))
    assert result.returncode == 2 and "--positives" in result.stderr and "--labels" in result.stderr
    few = tmp_path / "few"
    few.mkdir()
    labels = write_labels(few, mine=2, others_dogs=2, not_barks=6)
    result = run_cli("train", "--labels", str(labels), "--out", str(tmp_path / "m.pt"), "--init", str(DEFAULT_MODEL))
    assert result.returncode == 2 and "training needs at least 3" in result.stderr and "--labels" in result.stderr
    not_a_model = sorted(OTHERS.iterdir())[0]
    result = run_cli("train", "--labels", str(labels), "--out", str(tmp_path / "m.pt"), "--init", str(not_a_model))
    assert result.returncode == 2 and not_a_model.name in result.stderr and "not a barkwatch model" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("name, group", [
    ("clips/2026-11-25/101500_ab12.flac", "labels:2026-11-25/10"),
    ("clips/2026-11-25/105959_cd34.flac", "labels:2026-11-25/10"),
    ("clips/2026-11-26/101500_ab12.flac", "labels:2026-11-26/10"),
])
def test_clips_heard_in_the_same_hour_are_one_recording(name, group):
    assert labelled_group(Path(name)) == group
    assert labelled_group(Path("my/own/bark.wav")) == "labels:my/own/bark.wav"
