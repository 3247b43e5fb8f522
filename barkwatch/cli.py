"""The ``barkwatch`` command: thin wrappers that parse options, call the library, and print.

Heavy modules (torch, librosa, matplotlib) are imported inside the commands, so ``--help`` is instant.
Errors a user can fix are one line on stderr and exit code 2; nothing prints a traceback for them.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import __version__

app = typer.Typer(
    help="Detect dog barks in audio: train a model and inspect it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> None:
    typer.echo(f"barkwatch: error: {message}", err=True)
    raise typer.Exit(code)


def _setup_logging(quiet: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("barkwatch: %(levelname)s: %(message)s"))
    logger = logging.getLogger("barkwatch")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.ERROR if quiet else logging.INFO)
    logger.propagate = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"barkwatch {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """barkwatch: a bark detector built on a variational autoencoder."""


def _parse_weights(values: List[str]) -> tuple[float, ...]:
    weights: list[float] = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                weights.append(float(part))
            except ValueError:
                fail(f"--rl-weight {part}: not a number (examples: 1e8, or 1e4,1e6,1e8 for a sweep)")
    return tuple(weights)


@app.command()
def train(
    positives: Path = typer.Option(..., "--positives", help="Folder of bark recordings (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Where to write the model file (.pt)."),
    negatives: Optional[Path] = typer.Option(None, "--negatives",
                                             help="Folder of other sounds. Without it: one-class fallback."),
    report: Optional[Path] = typer.Option(None, "--report", help="Folder for metrics.json and plots."),
    preset: str = typer.Option("seed", "--preset", help="Network preset: seed (the notebook's) or small."),
    window: int = typer.Option(3, "--window", help="Window length in seconds: 1, 2 or 3."),
    epochs: int = typer.Option(50, "--epochs", help="Most epochs per RL weight (early stopping may end sooner)."),
    rl_weight: List[str] = typer.Option(["1e8"], "--rl-weight",
                                        help="RL weight; repeat or comma-separate several to sweep."),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate."),
    batch_size: int = typer.Option(16, "--batch-size", help="Windows per training step."),
    windows_per_clip: int = typer.Option(4, "--windows-per-clip",
                                         help="Most windows cut from one file (from its loudest part)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps."),
    seed: int = typer.Option(0, "--seed", help="Seed for the split, the initial weights and the shuffling."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Print only errors and the result."),
) -> None:
    """Train a model from a folder of barks (and other sounds) and export it as one file."""
    _setup_logging(quiet)
    from .modelfile import ModelFileError
    from .train import TrainConfig, TrainingError
    from .train import train as run_training

    config = TrainConfig(positives=positives, out=out, negatives=negatives, report=report, preset=preset,
                         window_s=window, epochs=epochs, rl_weights=_parse_weights(rl_weight), lr=lr,
                         batch_size=batch_size,
                         max_windows_per_clip=windows_per_clip, device=device, seed=seed, progress=not quiet)
    try:
        result = run_training(config)
    except (TrainingError, ModelFileError) as e:
        fail(str(e))
    test = result.metadata["metrics"].get("test", {})
    auc = test.get("roc_auc")
    typer.echo(f"model: {result.model_path}")
    if test:
        typer.echo(f"test clips: {test['positives']} barks, {test['negatives']} other; ROC AUC {auc:.3f}, "
                   f"balanced accuracy {test['balanced_accuracy']:.3f}")
    if result.skipped:
        typer.echo(f"skipped {len(result.skipped)} unreadable file(s); see the warnings above")
    if result.report_dir is not None:
        typer.echo(f"report: {result.report_dir / 'metrics.json'}")


@app.command()
def inspect(
    model: Path = typer.Argument(..., help="A model file written by `barkwatch train`."),
    as_json: bool = typer.Option(False, "--json", help="Print the metadata as JSON."),
) -> None:
    """Show a model file's metadata: window, threshold, network, training data and metrics."""
    from .modelfile import ModelFileError, file_hash, read_metadata

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
    ]
    for split, m in meta.get("metrics", {}).items():
        auc = m.get("roc_auc")
        bacc = m.get("balanced_accuracy")
        lines.append(f"{split:<12} {m.get('positives')} barks / {m.get('negatives')} other clips: "
                     f"AUC {_fmt(auc)}, balanced accuracy {_fmt(bacc)}")
    typer.echo("\n".join(lines))


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
