"""``barkwatch train`` and ``barkwatch inspect``: making a model file and reading one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from .options import Quiet, auc_text, fail, needs, setup_logging

# A clip ROC AUC at or under this on the model's own test clips: little better than a coin (0.5).
CHANCE_AUC = 0.6

def _parse_weights(values: List[str]) -> tuple[float, ...]:
    weights: list[float] = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                weights.append(float(part))
            except ValueError:
                fail(f"--rl-weight {part}: not a number (examples: 1e8, or 1e4,1e6,1e8 for a sweep)")
    return tuple(weights)


def _parse_range(flag: str, text: str) -> tuple[float, float]:
    """"LOW,HIGH" in dB -> (low, high)."""
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        fail(f"{flag} {text}: give a range as LOW,HIGH in dB, e.g. -5,15")
    if low > high:
        fail(f"{flag} {text}: the low end is above the high end")
    return low, high


def _parse_split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1.0) > 1e-6 or parts[0] <= 0 or parts[1] <= 0:
        fail(f"--split {text}: give three shares TRAIN,VAL,TEST summing to 1, train and validation above 0")
    return parts  # type: ignore[return-value]


def train(
    positives: Optional[Path] = typer.Option(None, "--positives", help="Folder of bark recordings (searched "
                                             "recursively)."),
    out: Path = typer.Option(..., "--out", help="Where to write the model file (.pt)."),
    negatives: Optional[Path] = typer.Option(None, "--negatives",
                                             help="Folder of other sounds. Without it: one-class fallback."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="A labels.jsonl from `barkwatch label`: its "
                                          "'my dog' clips are barks, 'other dog' and 'not a bark' are not."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this model file's network "
                                        "(fine-tuning, e.g. models/default.pt): its preset, window, features "
                                        "and augmentation are used, and --lr defaults to 3e-4."),
    report: Optional[Path] = typer.Option(None, "--report", help="Folder for metrics.json and plots."),
    preset: str = typer.Option("seed", "--preset", help="Network preset: seed (the notebook's), medium, small or pooled (small, pooled over time)."),
    window: int = typer.Option(3, "--window", help="Window length in seconds: 1, 2 or 3."),
    epochs: int = typer.Option(50, "--epochs", help="Most epochs per RL weight (early stopping may end sooner)."),
    rl_weight: List[str] = typer.Option(["1e8"], "--rl-weight", metavar="<weights>",
                                        help="RL weight; repeat or comma-separate several to sweep."),
    objective: str = typer.Option("one-class", "--objective", help="one-class: the VAE learns the barks alone "
                                  "(the notebook); joint: it learns all sounds with a bark head on its latent mean."),
    head_weight: float = typer.Option(1.0, "--head-weight", help="Joint objective: weight of the bark head."),
    yamnet: Optional[Path] = typer.Option(None, "--yamnet", help="Put YAMNet (AudioSet's classifier, frozen) "
                                          "beside the bark network: its weights from yamnet.tflite or a model "
                                          "file that has them; a model trained --init from one keeps its branch."),
    yamnet_weight: Optional[float] = typer.Option(None, "--yamnet-weight", help="With --yamnet: the weight of "
                                                  "the model's own logit against YAMNet's (default 0.4)."),
    bark_net: str = typer.Option("none", "--bark-net", help="Joint: the bark head. none: a linear head on the "
                                 "VAE's latent mean; cnn or cnn-wide: a small convolutional network on the "
                                 "spectrogram, whose logit joins log RL and log KL in the classifier; cnn-pcen: "
                                 "cnn on trainable PCEN of it (needs --norm db)."),
    bark_weight: Optional[float] = typer.Option(None, "--bark-weight", help="Joint: weight of a bark window in "
                                                "the head's loss against another sound's (default: balanced, "
                                                "the barks weigh as much as all other windows together)."),
    norm: str = typer.Option("minmax", "--norm", help="Spectrogram scaling: minmax (each window to [0, 1], the "
                             "notebook's), db (a fixed scale, -100 dBFS to full scale: keeps loudness) or peak (dB below the "
                             "window's loudest cell: level-invariant, no stretching)."),
    mix_snr: str = typer.Option("-5,15", "--mix-snr", help="Joint: range of window-over-other-sound ratios "
                                "(dB) when mixing."),
    bark_snr: Optional[str] = typer.Option(None, "--bark-snr", help="Joint: the barks' own mixing range (dB), "
                                           "e.g. 0,20: a bark mixed far under another sound is inaudible, and "
                                           "calling that window a bark teaches false alarms (default: --mix-snr)."),
    level: Optional[str] = typer.Option(None, "--level", help="Joint: set each training window to a random RMS "
                                        "level in this range, e.g. -50,-10 (dBFS)."),
    noise_floor: Optional[str] = typer.Option(None, "--noise-floor", help="Joint: add pink noise at a random "
                                              "level in this range under every training window, e.g. -80,-50."),
    scene: bool = typer.Option(False, "--scene", help="Joint: place each training window in a room instead of "
                               "--mix-snr, --level and --noise-floor: another sound at --background dBFS under "
                               "it, a pink floor (--noise-floor, default -70,-55), and a bark's loudest 23 ms "
                               "--bark-ratio dB over what is under it, so every window labelled bark holds an "
                               "audible bark."),
    background: str = typer.Option("-45,-15", "--background", help="Joint, --scene: RMS range of the other "
                                   "sounds (dBFS)."),
    bark_ratio: str = typer.Option("-5,25", "--bark-ratio", help="Joint, --scene: range of a bark's loudest "
                                   "23 ms over what is under it (dB)."),
    split: str = typer.Option("0.7,0.15,0.15", "--split", help="Shares of recordings for train, validation "
                              "(early stopping, the classifier) and test (the report's figures); test may be 0 "
                              "when the model is judged elsewhere."),
    focal: float = typer.Option(0.0, "--focal", help="Joint: focal-loss exponent for the bark head (e.g. 2): "
                                "hard, bark-like sounds weigh more than easy ones."),
    ensemble: int = typer.Option(1, "--ensemble", help="Train this many VAEs (different seeds) and average "
                                 "their scores in the one exported file."),
    speed: float = typer.Option(0.0, "--speed", help="Joint: play training windows up to this fraction faster "
                                "or slower (pitch and pace), e.g. 0.15."),
    shift: float = typer.Option(0.0, "--shift", help="Joint: chance of moving a training window's sound to a "
                                "random place in it (circularly), e.g. 0.5: barks entering and leaving the window."),
    onset_windows: bool = typer.Option(False, "--onset-windows", help="Bark clips also give windows that end "
                                       "0.15 and 0.35 s after each bark's onset: what a live detector holds "
                                       "just after a bark begins (a shorter delay)."),
    reverb: float = typer.Option(0.0, "--reverb", help="Joint: chance of a synthetic room response per window."),
    lowpass: float = typer.Option(0.0, "--lowpass", help="Joint: chance of a low-pass at 4-10.5 kHz per window "
                                  "(microphones and resampling cut the top of the spectrum)."),
    colour: float = typer.Option(0.0, "--colour", help="Joint: chance of a random equaliser per window (tilt "
                                 "and broad boosts or cuts up to 12 dB: other microphones and rooms)."),
    spec_masks: bool = typer.Option(False, "--spec-masks", help="Joint: SpecAugment time and frequency masks."),
    other_active_db: Optional[float] = typer.Option(None, "--other-active-db", help="Cut other sounds' windows "
                                                    "from anywhere within this many dB of their loudest "
                                                    "(default: the loudest part only, as for barks)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate (default 1e-3; 3e-4 with --init)."),
    lr_schedule: str = typer.Option("constant", "--lr-schedule", help="constant, or cosine: the learning rate "
                                    "falls from --lr to 1% of it over --epochs."),
    batch_size: int = typer.Option(16, "--batch-size", help="Windows per training step."),
    weight_decay: float = typer.Option(5e-4, "--weight-decay", help="Adam's L2 penalty (the notebook's 5e-4; "
                                       "0 turns it off)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop training when another epoch would "
                                                "pass this many minutes, keeping the best epoch so far."),
    min_epochs: int = typer.Option(0, "--min-epochs", min=0, help="Early stopping waits at least this many "
                                   "epochs (the best validation epoch is still the one kept)."),
    windows_per_clip: int = typer.Option(4, "--windows-per-clip",
                                         help="Most windows cut from one file (from its loudest part)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps."),
    seed: int = typer.Option(0, "--seed", help="Seed for the split, the initial weights and the shuffling."),
    exclude_sources: Optional[list[Path]] = typer.Option(None, "--exclude-sources", metavar="<path>",
                                                         help="Text file of recordings (dataset/source_id, one "
                                                         "a line) to leave out entirely; repeatable."),
    quiet: Quiet = False,
) -> None:
    """Train a model from a folder of barks (and other sounds) and export it as one file."""
    needs("train", "torch", *(["matplotlib"] if report is not None else []))  # the report's plots
    setup_logging(quiet)
    from ..model.modelfile import ModelFileError
    from ..training.train import TrainConfig, TrainingError
    from ..training.train import train as run_training

    excluded: frozenset[str] = frozenset()
    for listing in exclude_sources or []:
        try:
            lines = listing.read_text().splitlines()
        except OSError as e:
            fail(f"--exclude-sources {listing}: cannot read ({e.strerror})")
        excluded |= frozenset(x.strip() for x in lines if x.strip() and not x.startswith("#"))
    if lr is None:
        lr = 3e-4 if init is not None else 1e-3
    config = TrainConfig(positives=positives, out=out, negatives=negatives, labels=labels, init=init,
                         report=report, preset=preset,
                         window_s=window, epochs=epochs, rl_weights=_parse_weights(rl_weight), lr=lr,
                         lr_schedule=lr_schedule,
                         objective=objective, head_weight=head_weight, normalisation=norm,
                         mix_snr_db=_parse_range("--mix-snr", mix_snr),
                         bark_snr_db=_parse_range("--bark-snr", bark_snr) if bark_snr else None,
                         level_dbfs=_parse_range("--level", level) if level else None,
                         floor_dbfs=_parse_range("--noise-floor", noise_floor) if noise_floor else None,
                         scene=scene, background_dbfs=_parse_range("--background", background),
                         bark_ratio_db=_parse_range("--bark-ratio", bark_ratio),
                         spec_masks=spec_masks, other_active_db=other_active_db, split=_parse_split(split),
                         speed=speed, shift_p=shift, onset_windows=onset_windows, reverb_p=reverb, lowpass_p=lowpass,
                         colour_p=colour,
                         ensemble=ensemble,
                         focal_gamma=focal, bark_weight=bark_weight, bark_net=bark_net,
                         batch_size=batch_size, weight_decay=weight_decay, max_minutes=max_minutes, min_epochs=min_epochs,
                         max_windows_per_clip=windows_per_clip, device=device, seed=seed,
                         exclude_sources=excluded, yamnet=yamnet, yamnet_weight=yamnet_weight,
                         progress=not quiet)
    from ..model.yamnet import YamnetFileError

    try:
        result = run_training(config)
    except (TrainingError, ModelFileError, YamnetFileError) as e:
        fail(str(e))
    test = result.metadata["metrics"].get("test", {})
    auc = test.get("roc_auc")
    typer.echo(f"model: {result.model_path}")
    if test and not test["negatives"]:
        typer.echo(f"test clips: {test['positives']} barks and no other sounds, so no ROC AUC or balanced "
                   "accuracy: give --negatives (other sounds) to measure how well it tells barks apart")
    elif test and not test["positives"]:
        typer.echo(f"test clips: no barks among {test['negatives']} other sounds, so no ROC AUC: give more bark "
                   "recordings")
    elif test:
        typer.echo(f"test clips: {test['positives']} barks, {test['negatives']} other; ROC AUC {auc:.3f}, "
                   f"balanced accuracy {test['balanced_accuracy']:.3f}")
        if auc is not None and auc <= CHANCE_AUC:
            typer.echo(f"barkwatch: warning: on its own test clips this model is little better than chance (ROC AUC "
                       f"{auc:.3f}): more epochs, more recordings, or the default model's recipe "
                       "(docs/training.md) should do better", err=True)
    for split in ("val", "test"):
        sep = result.metadata["metrics"].get(split, {}).get("separation")
        if sep:
            typer.echo(f"{split} separation (clip ROC AUC): my dog vs other dogs "
                       f"{auc_text(sep['my_dog_vs_other_dog_roc_auc'])} ({sep['other_dog_clips']} clips), "
                       f"vs not a bark {auc_text(sep['my_dog_vs_not_bark_roc_auc'])} ({sep['not_bark_clips']} clips)")
    if result.skipped:
        typer.echo(f"skipped {len(result.skipped)} unreadable file(s); see the warnings above")
    if result.report_dir is not None:
        typer.echo(f"report: {result.report_dir / 'metrics.json'}")


def inspect(
    model: Path = typer.Argument(..., help="A model file written by `barkwatch train`."),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
) -> None:
    """Show a model file's metadata: window, threshold, network, training data and metrics."""
    from ..model.modelfile import ModelFileError, file_hash, read_metadata

    try:
        meta = read_metadata(model)
    except ModelFileError as e:
        fail(str(e))
    if as_json:
        typer.echo(json.dumps(meta, indent=2))
        return
    training = meta.get("training", {})
    lines = [
        f"model        {model} (sha256 {file_hash(model)})",
        f"format       {meta['format_version']}, barkwatch {meta.get('barkwatch_version', '?')}, "
        f"created {meta.get('created', '?')}",
        f"network      {meta.get('preset')} ({meta.get('parameters', 0):,} parameters)",
        f"window       {meta.get('window_s')} s at {meta.get('sample_rate')} Hz, suggested hop {meta.get('hop_s')} s",
        f"classifier   {meta.get('classifier', {}).get('kind')}, threshold {meta.get('threshold', 0):.3f}",
        f"trained on   {training.get('files', {}).get('positive')} bark and "
        f"{training.get('files', {}).get('negative')} other files; RL weight {training.get('rl_weight', 0):g}, "
        f"{training.get('epochs')} epochs on {training.get('device')} in {training.get('seconds')} s",
        f"onnx export  {onnx_export_status(model)}",
    ]
    yamnet = meta.get("yamnet")
    if yamnet:
        lines.insert(4, f"yamnet       YAMNet's bark logit, {yamnet.get('logit')}; weights from {yamnet.get('source')} "
                        f"(sha1 {str(yamnet.get('sha1'))[:12]}), {yamnet.get('parameters', 0):,} parameters, "
                        f"{'frozen' if yamnet.get('frozen') else 'fine-tuned'}; {yamnet.get('licence')}")
        lines.insert(5, f"combination  {yamnet.get('model_weight')} x the model's own logit + "
                        f"{1 - float(yamnet.get('model_weight', 1)):.2f} x YAMNet's; YAMNet runs where the model's "
                        f"own logit is at least {float(yamnet.get('cascade_logit', float('-inf'))):.3f}")
    for split, m in meta.get("metrics", {}).items():
        auc = m.get("roc_auc")
        bacc = m.get("balanced_accuracy")
        lines.append(f"{split:<12} {m.get('positives')} barks / {m.get('negatives')} other clips: "
                     f"AUC {auc_text(auc)}, balanced accuracy {auc_text(bacc)}")
    typer.echo("\n".join(lines))


def onnx_export_status(model: Path) -> str:
    """What ``--runtime auto`` will make of the ONNX export beside ``model``, in one line."""
    from ..model.modelfile import ModelFileError
    from ..model.onnxrt import is_export_of, load_onnx

    onnx_path = model.with_suffix(".onnx")
    if not onnx_path.is_file():
        return f"none (`barkwatch export-onnx {model}` writes one, for ONNX Runtime)"
    try:
        exported = load_onnx(onnx_path)
    except ModelFileError as e:
        return str(e)
    if not is_export_of(exported, model):
        return f"{onnx_path}, stale: exported from another {model.name}; `barkwatch export-onnx {model}`"
    return f"{onnx_path}, current: --runtime auto runs it on the CPU"


def export_onnx(
    model: Path = typer.Argument(..., help="A model file (.pt) written by `barkwatch train` or shipped."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write it (default: beside the model, .onnx)."),
) -> None:
    """Export a model file as ONNX, for `--runtime onnx` (ONNX Runtime without torch: a small box's choice)."""
    from ..model.modelfile import ModelFileError, export_onnx as export

    needs("export-onnx", "torch", "onnx", "onnxscript")
    try:
        written = export(model, out)
    except ModelFileError as e:
        fail(str(e))
    typer.echo(f"{written}: the same network and metadata as {model}; --runtime auto (the default) runs it on "
               "the CPU")
