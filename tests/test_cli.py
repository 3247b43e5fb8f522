"""`barkwatch` end to end through the command line, on the repository's real sample clips."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from barkwatch.detection.audio import load_audio

from helpers import DOGS, OTHERS, run_cli

PLOTS = ["loss_curves.png", "rl_kl_scatter.png", "rl_weight_sweep.png", "reconstruction_bark.png",
         "reconstruction_other.png", "prior_samples.png"]


def one_line_error(result, *needles):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("barkwatch: error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_help_and_version():
    result = run_cli("--help")
    assert result.returncode == 0 and "train" in result.stdout and "inspect" in result.stdout
    for command in ("train", "inspect"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("barkwatch ")
    listen = run_cli("listen", "--help").stdout  # flags read as flags, values say what they take
    assert "<bool>" not in listen and "-q, --quiet" in listen and "--clips / --no-clips" in listen
    assert "--threshold <float>" in listen


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # plain torch.jit.load, as a user would call it
def test_train_end_to_end_with_defaults(trained):
    out, result = trained
    assert result.returncode == 0, result.stderr
    assert "deprecated" not in result.stderr.lower()
    assert f"report: {out / 'report' / 'metrics.json'}" in result.stdout

    model = torch.jit.load(str(out / "m.pt"))  # torch alone, nothing from barkwatch
    clips = sorted(DOGS.glob("*.ogg"))[:2] + sorted(OTHERS.glob("*.ogg"))[:3]
    wave = torch.from_numpy(np.stack([load_audio(p, 22050)[: 3 * 22050] for p in clips]))
    rl, kl, score = model(wave)
    for t in (rl, kl, score):
        assert t.shape == (5,) and torch.isfinite(t).all()
    assert ((score >= 0) & (score <= 1)).all()

    metrics = json.loads((out / "report" / "metrics.json").read_text())
    for split in ("train", "val", "test"):
        for key in ("roc_auc", "accuracy", "balanced_accuracy"):
            assert key in metrics["splits"][split]
    assert metrics["rl_weight"] == 1e8 and metrics["epochs"] == 2 and metrics["seconds"] > 0
    # Two epochs of the notebook's network: the warning appears exactly when its own test AUC is near chance.
    from barkwatch.cli.model import CHANCE_AUC

    near_chance = metrics["splits"]["test"]["roc_auc"] <= CHANCE_AUC
    assert ("little better than chance" in result.stderr) == near_chance, (metrics["splits"]["test"], result.stderr)
    for plot in PLOTS:
        assert (out / "report" / plot).stat().st_size > 5000


@pytest.mark.slow
def test_inspect_shows_the_metadata(trained):
    out, _ = trained
    result = run_cli("inspect", str(out / "m.pt"))
    assert result.returncode == 0, result.stderr
    assert "seed" in result.stdout and "3 s at 22050 Hz" in result.stdout and "test" in result.stdout
    meta = json.loads(run_cli("inspect", str(out / "m.pt"), "--json").stdout)
    assert meta["window_samples"] == 66150 and meta["features"]["frames"] == 130
    assert meta["training"]["files"] == {"positive": 24, "negative": 65, "skipped": 0}
    assert 0 < meta["threshold"] < 1 and meta["classifier"]["kind"] == "logistic"


@pytest.mark.slow
def test_unreadable_files_are_skipped_and_listed_and_one_class_without_negatives(tmp_path):
    positives = tmp_path / "barks"
    shutil.copytree(DOGS, positives)
    (positives / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    (positives / "notes.txt").write_text("not audio, not even looked at")
    result = run_cli("train", "--positives", str(positives), "--out", str(tmp_path / "m.pt"), "--preset", "small",
                     "--window", "1", "--epochs", "2", "--report", str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    assert "broken.wav" in result.stderr and "one-class" in result.stderr
    assert "nan" not in result.stdout and "no other sounds, so no ROC AUC" in result.stdout  # says what is missing
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert len(metrics["skipped_files"]) == 1 and "broken.wav" in metrics["skipped_files"][0]
    assert metrics["classifier"] == "one-class"
    meta = json.loads(run_cli("inspect", "--json", str(tmp_path / "m.pt")).stdout)
    assert meta["window_samples"] == 22050 and meta["training"]["files"]["skipped"] == 1


@pytest.mark.parametrize("args,needles", [
    (["--positives", "{tmp}/missing"], ["--positives", "missing", "no such folder"]),
    (["--positives", "{tmp}/empty"], ["--positives", "no readable audio"]),
    (["--positives", "{dogs}", "--negatives", "{tmp}/empty"], ["--negatives", "no readable audio"]),
    (["--positives", "{dogs}", "--window", "4"], ["--window 4", "1, 2 or 3"]),
    (["--positives", "{dogs}", "--preset", "huge"], ["--preset huge", "seed"]),
    (["--positives", "{dogs}", "--rl-weight", "lots"], ["--rl-weight lots"]),
    (["--positives", "{dogs}", "--max-minutes", "0"], ["--max-minutes 0", "positive"]),
    (["--positives", "{dogs}", "--weight-decay", "-1"], ["--weight-decay -1.0", "0 or a positive"]),
    (["--positives", "{dogs}", "--bark-weight", "0"], ["--bark-weight 0.0", "positive"]),
    (["--positives", "{dogs}", "--lr-schedule", "steep"], ["--lr-schedule steep", "cosine"]),
    (["--positives", "{dogs}", "--device", "cuda"] if not torch.cuda.is_available() else
     ["--positives", "{dogs}", "--device", "tpu"], ["--device"]),
])
@pytest.mark.slow
def test_bad_training_input_is_one_line_and_exit_2(tmp_path, args, needles):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no audio here")
    args = [a.format(tmp=tmp_path, dogs=DOGS) for a in args]
    result = run_cli("train", *args, "--out", str(tmp_path / "m.pt"), "--epochs", "1")
    one_line_error(result, *needles)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.slow
def test_too_few_barks_is_refused(tmp_path):
    (tmp_path / "two").mkdir()
    for p in sorted(DOGS.glob("*.ogg"))[:2]:
        shutil.copy(p, tmp_path / "two")
    result = run_cli("train", "--positives", str(tmp_path / "two"), "--out", str(tmp_path / "m.pt"))
    one_line_error(result, "at least 3")


def test_inspect_refuses_what_is_not_a_model(tmp_path):
    (tmp_path / "noise.pt").write_bytes(b"\x00" * 100)
    one_line_error(run_cli("inspect", str(tmp_path / "noise.pt")), "noise.pt", "not a barkwatch model")
    one_line_error(run_cli("inspect", str(tmp_path / "absent.pt")), "absent.pt", "no such model file")


@pytest.mark.slow
def test_flat_folders_without_recording_ids_split_by_file_with_a_warning(tmp_path):
    negatives = tmp_path / "household"
    negatives.mkdir()
    for i, p in enumerate(sorted(OTHERS.glob("ESC-50_*.ogg"))[:12]):
        shutil.copy(p, negatives / f"sound{i}.ogg")  # no manifest, no ESC name: one folder, one "recording"
    result = run_cli("train", "--positives", str(DOGS), "--negatives", str(negatives), "--out",
                     str(tmp_path / "m.pt"), "--preset", "small", "--window", "1", "--epochs", "1")
    assert result.returncode == 0, result.stderr
    assert "--negatives: fewer than 3 distinct recordings" in result.stderr
    meta = json.loads(run_cli("inspect", "--json", str(tmp_path / "m.pt")).stdout)
    assert meta["classifier"]["kind"] == "logistic" and meta["metrics"]["val"]["negatives"] >= 1


@pytest.mark.slow
def test_max_minutes_ends_training_before_an_epoch_that_would_pass_it(tmp_path):
    result = run_cli("train", "--positives", str(DOGS), "--negatives", str(OTHERS), "--out", str(tmp_path / "m.pt"),
                     "--preset", "small", "--window", "1", "--epochs", "30", "--max-minutes", "0.001", "-q")
    assert result.returncode == 0, result.stderr
    training = json.loads(run_cli("inspect", "--json", str(tmp_path / "m.pt")).stdout)["training"]
    assert training["epochs"] == 1 and training["best_epoch"] == 1
    assert training["stopped_because"] == "--max-minutes: another epoch would pass the limit (after epoch 1)"


def test_out_that_is_a_folder_is_refused_before_training(tmp_path):
    result = run_cli("train", "--positives", str(DOGS), "--out", str(tmp_path))
    one_line_error(result, "--out", "is a folder")


@pytest.mark.slow
def test_exclude_sources_leaves_whole_recordings_out(tmp_path):
    entries = [json.loads(line) for line in (DOGS.parent / "manifest.jsonl").read_text().splitlines()]
    held = sorted({f"{e['dataset']}/{e['source_id']}" for e in entries if e["label"] == "dog"})[:3]
    held_files = sum(f"{e['dataset']}/{e['source_id']}" in held for e in entries)
    listing = tmp_path / "holdout.txt"
    listing.write_text("# held out\n" + "\n".join(held) + "\n")
    result = run_cli("train", "--positives", str(DOGS), "--negatives", str(OTHERS), "--out", str(tmp_path / "m.pt"),
                     "--preset", "small", "--window", "1", "--epochs", "1", "--exclude-sources", str(listing))
    assert result.returncode == 0, result.stderr
    meta = json.loads(run_cli("inspect", "--json", str(tmp_path / "m.pt")).stdout)
    assert meta["training"]["files"]["positive"] == 24 - held_files
    assert meta["training"]["excluded_sources"] == 3
    one_line_error(run_cli("train", "--positives", str(DOGS), "--out", str(tmp_path / "x.pt"), "--exclude-sources",
                           str(tmp_path / "absent.txt")), "--exclude-sources", "absent.txt")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_joint_objective_exports_a_classifier_on_the_latent_mean(tmp_path):
    result = run_cli("train", "--positives", str(DOGS), "--negatives", str(OTHERS), "--out", str(tmp_path / "j.pt"),
                     "--preset", "small", "--window", "1", "--epochs", "2", "--objective", "joint",
                     "--bark-snr", "0,20", "--weight-decay", "0", "--bark-weight", "1",
                     "--lr-schedule", "cosine")
    assert result.returncode == 0, result.stderr
    meta = json.loads(run_cli("inspect", "--json", str(tmp_path / "j.pt")).stdout)
    assert meta["training"]["objective"] == "joint" and len(meta["classifier"]["mu_weight"]) == 32
    assert meta["training"]["augmentation"]["bark_snr_db"] == [0.0, 20.0] and meta["training"]["weight_decay"] == 0
    assert meta["training"]["bark_weight"] == 1 and meta["training"]["lr_schedule"] == "cosine"
    model = torch.jit.load(str(tmp_path / "j.pt"))
    wave = torch.from_numpy(np.stack([load_audio(p, 22050)[:22050] for p in sorted(DOGS.glob("*.ogg"))[:3]]))
    rl, kl, score = model(wave)
    assert score.shape == (3,) and ((score >= 0) & (score <= 1)).all()
    one_line_error(run_cli("train", "--positives", str(DOGS), "--out", str(tmp_path / "x.pt"), "--objective",
                           "joint"), "--objective joint needs --negatives")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # plain torch.jit.load, as a user would call it
def test_a_bark_network_is_trained_exported_and_fine_tuned_from(tmp_path):
    common = ["--positives", str(DOGS), "--negatives", str(OTHERS), "--preset", "small", "--window", "1",
              "--objective", "joint", "--norm", "db"]
    result = run_cli("train", *common, "--bark-net", "cnn", "--epochs", "2", "--out", str(tmp_path / "b.pt"))
    assert result.returncode == 0, result.stderr
    meta = json.loads(run_cli("inspect", "--json", str(tmp_path / "b.pt")).stdout)
    assert meta["bark_net"]["name"] == "cnn" and len(meta["classifier"]["weight"]) == 3
    assert meta["classifier"]["mu_weight"] == []  # the network's logit, not the latent mean, is the third column
    model = torch.jit.load(str(tmp_path / "b.pt"))
    wave = torch.from_numpy(np.stack([load_audio(p, 22050)[:22050] for p in sorted(DOGS.glob("*.ogg"))[:3]]))
    assert ((model(wave)[2] >= 0) & (model(wave)[2] <= 1)).all()

    # Fine-tuning keeps the network: with a learning rate of 1e-12 its first convolution stays the one given.
    result = run_cli("train", *common, "--init", str(tmp_path / "b.pt"), "--epochs", "1", "--lr", "1e-12",
                     "--out", str(tmp_path / "f.pt"))
    assert result.returncode == 0, result.stderr

    def first_conv(path):
        state = torch.jit.load(str(path)).state_dict()
        return state[next(k for k in state if k.endswith("barknet.blocks.0.weight"))]

    assert torch.allclose(first_conv(tmp_path / "f.pt"), first_conv(tmp_path / "b.pt"), atol=1e-6)
    assert json.loads(run_cli("inspect", "--json", str(tmp_path / "f.pt")).stdout)["bark_net"]["name"] == "cnn"

    one_line_error(run_cli("train", "--positives", str(DOGS), "--negatives", str(OTHERS), "--bark-net", "cnn",
                           "--out", str(tmp_path / "x.pt")), "--bark-net needs --objective joint")
    one_line_error(run_cli("train", *common, "--bark-net", "resnet", "--out", str(tmp_path / "x.pt")),
                   "--bark-net resnet: choose none or cnn")
    one_line_error(run_cli("train", *common[:-1], "minmax", "--bark-net", "cnn-pcen", "--out", str(tmp_path / "x.pt")),
                   "--bark-net cnn-pcen needs --norm db")

    # PCEN in front: trained, exported as TorchScript, scores in range.
    result = run_cli("train", *common, "--bark-net", "cnn-pcen", "--epochs", "1", "--out", str(tmp_path / "p.pt"))
    assert result.returncode == 0, result.stderr
    assert json.loads(run_cli("inspect", "--json", str(tmp_path / "p.pt")).stdout)["bark_net"]["front"] == "pcen"
    assert ((torch.jit.load(str(tmp_path / "p.pt"))(wave)[2] >= 0) & (model(wave)[2] <= 1)).all()


def test_every_help_is_in_words_and_every_summary_whole():
    import typer.main
    from typer.testing import CliRunner

    from barkwatch.cli import app

    runner = CliRunner()
    top = runner.invoke(app, ["--help"], terminal_width=100)
    assert top.exit_code == 0, top.output
    summaries = top.output.split("Commands:", 1)[1].splitlines()
    assert summaries and not any(line.rstrip().endswith("...") for line in summaries), top.output
    for name in typer.main.get_command(app).commands:
        shown = runner.invoke(app, [name, "--help"], terminal_width=100)
        assert shown.exit_code == 0, shown.output
        for python in ("list[", "Path]", "{", "<str>", "%Y", "%H"):  # typer's types and datetime formats
            assert python not in shown.output, f"barkwatch {name} --help shows {python!r}:\n{shown.output}"
    detect = runner.invoke(app, ["detect", "--help"], terminal_width=100).output
    assert "detect [OPTIONS] FILES...\n" in detect and "--start <time>" in detect


def test_a_missing_optional_module_is_one_line_naming_what_to_install(monkeypatch, capsys):
    import typer

    from barkwatch.cli import options

    assert options.missing_text("--plot", ["librosa", "matplotlib"]) == (
        "--plot needs librosa and matplotlib, which this install leaves out: pip install 'librosa>=0.10,<0.12' "
        "'matplotlib>=3.7,<4'")
    torch_text = options.missing_text("train", ["torch", "matplotlib"])
    assert "pip install 'torch>=2.1,<3' --index-url https://download.pytorch.org/whl/cpu" in torch_text
    assert torch_text.endswith("then pip install 'matplotlib>=3.7,<4'") and "\n" not in torch_text

    options.needs("web", "json")  # installed: nothing said
    monkeypatch.setitem(options.INSTALL, "barkwatch_absent", "barkwatch-absent>=1")
    with pytest.raises(typer.Exit) as exit:
        options.needs("--thing", "json", "barkwatch_absent")
    assert exit.value.exit_code == 2
    assert capsys.readouterr().err == ("barkwatch: error: --thing needs barkwatch_absent, which this install leaves "
                                       "out: pip install 'barkwatch-absent>=1'\n")


def test_an_optional_module_a_command_reaches_unchecked_is_one_line_too(monkeypatch, capsys):
    import barkwatch.cli as cli

    def reaches(missing):
        def app():
            raise ModuleNotFoundError(f"No module named '{missing}'", name=missing)
        return app

    monkeypatch.setattr(cli, "installed", lambda module: False)
    monkeypatch.setattr(cli.sys, "argv", ["barkwatch", "report", "--since", "7d"])
    monkeypatch.setattr(cli, "app", reaches("matplotlib.pyplot"))
    with pytest.raises(SystemExit) as exit:
        cli.main()
    assert exit.value.code == 2
    assert capsys.readouterr().err == ("barkwatch: error: report needs matplotlib, which this install leaves out: "
                                       "pip install 'matplotlib>=3.7,<4'\n")
    monkeypatch.setattr(cli, "app", reaches("annotated_doc"))  # not optional: a broken install, shown as it is
    with pytest.raises(ModuleNotFoundError):
        cli.main()


def test_the_install_lines_pin_what_pyproject_pins():
    tomllib = pytest.importorskip("tomllib")
    from barkwatch.cli.options import INSTALL
    from helpers import REPO

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pinned = set(project["dependencies"]) | {d for extra in project["optional-dependencies"].values() for d in extra}
    assert set(INSTALL.values()) <= pinned
