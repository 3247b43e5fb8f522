"""Training: windows from clips, a split grouped by recording, the VAE, early stopping, the RL-weight sweep,
the linear classifier, and the exported model.

``--objective one-class`` is the notebook's method: a VAE learns the positives (barks) alone; every window is
then described by its reconstruction loss RL and KL term, and a linear classifier on (log RL, log KL)
separates barks from everything else. What changed is how it is measured and made reproducible: splits never
cut a recording in two, the seed is fixed, windows come from where the sound is, and the classifier is
class-balanced and fitted on data the VAE never saw.

``--objective joint`` keeps the frame (a VAE, and a linear classifier on what it measures) but trains the VAE
on all sounds with a linear bark head on its latent mean, each window mixed into a random other sound at
-5..+15 dB: the head learns what makes a bark a bark wherever it is heard. The classifier is then fitted on
(log RL, log KL, the head's output), which is still linear in (log RL, log KL, mu).

``--bark-net cnn`` (joint objective) replaces the linear head on the latent mean with a bark network
(``model/barknet.py``), a small CNN on the same spectrogram trained beside the VAE with the same loss; the
classifier is then fitted on (log RL, log KL, the network's logit).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..model import compute, modelfile
from ..detection.audio import AudioError, find_audio_files, load_audio
from ..model.classifier import LinearClassifier, fit_logistic, fit_one_class, log_terms
from .augment import Augmentation, augment, spec_augment
from ..model.features import NORMALISATIONS, FeatureParams, Spectrogram, window_samples
from .metrics import best_threshold, roc_auc, summarise
from ..model.barknet import BARKNETS, BarkNet
from ..model.scorer import Scorer
from ..model.vae import PRESETS, VAE, count_parameters, loss_terms

log = logging.getLogger("barkwatch")

SPLITS = ("train", "val", "test")
LR_SCHEDULES = ("constant", "cosine")
WINDOW_CHOICES = (1, 2, 3)
OBJECTIVES = ("one-class", "joint")


class TrainingError(Exception):
    """Training cannot start or go on; the message says why and what to do."""


@dataclass
class TrainConfig:
    positives: Path | None
    out: Path
    negatives: Path | None = None
    labels: Path | None = None  # labels.jsonl from `barkwatch label`: "my dog" against everything else
    init: Path | None = None  # start from this model file's VAE (fine-tuning); its shape and features are kept
    report: Path | None = None
    preset: str = "seed"
    window_s: int = 3
    epochs: int = 50
    rl_weights: tuple[float, ...] = (1e8,)
    objective: str = "one-class"  # or "joint"
    head_weight: float = 1.0  # joint: weight of the bark head's cross-entropy against the VAE loss
    mix_p: float = 0.75  # joint: chance that a training window is mixed into another sound
    mix_snr_db: tuple[float, float] = (-5.0, 15.0)
    bark_snr_db: tuple[float, float] | None = None  # joint: barks' own mixing range (None: mix_snr_db)
    level_dbfs: tuple[float, float] | None = None  # joint: random window level (matters with --norm db)
    floor_dbfs: tuple[float, float] | None = None  # joint: pink-noise floor under every window
    scene: bool = False  # joint: place windows in a room (augment.place_in_scene) instead of mix/level/floor
    background_dbfs: tuple[float, float] = (-45.0, -15.0)  # joint, scene: other sounds' level
    bark_ratio_db: tuple[float, float] = (-5.0, 25.0)  # joint, scene: a bark's loudest frame over the background
    spec_masks: bool = False  # joint: SpecAugment time and frequency masks
    shift_p: float = 0.0  # joint: chance of a circular time shift per window
    onset_windows: bool = False  # bark clips also give windows ending just after each bark's onset
    speed: float = 0.0  # joint: speed perturbation, +- this fraction
    reverb_p: float = 0.0  # joint: chance of a synthetic room response
    lowpass_p: float = 0.0  # joint: chance of a random low-pass
    colour_p: float = 0.0  # joint: chance of a random equaliser
    normalisation: str = "minmax"  # or "db", see features.py
    other_active_db: float | None = None  # negatives: windows within this many dB of the loudest (None: active_db)
    lr: float = 1e-3  # the notebook's 1e-2 makes the network diverge in eval mode after a few hundred steps
    lr_schedule: str = "constant"  # or "cosine": from lr down to 1% of it over --epochs
    weight_decay: float = 5e-4
    batch_size: int = 16  # the notebook used 64; small sets (one dog) then get too few steps per epoch
    device: str = "auto"
    seed: int = 0
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    max_windows_per_clip: int = 4
    active_db: float = 6.0  # windows within this many dB of a clip's loudest window count as "active"
    hop_s: float = 0.25  # suggested detection hop, recorded in the model
    exclude_sources: frozenset[str] = frozenset()  # recordings held out of training entirely
    focal_gamma: float = 0.0  # joint: focal loss exponent for the bark head (0: plain cross-entropy)
    bark_net: str = "none"  # joint: "none" (a linear head on the latent mean) or a BARKNETS name
    bark_weight: float | None = None  # joint: a bark window's weight against another sound's (None: balanced)
    ensemble: int = 1  # VAEs trained with different seeds, their probabilities averaged
    max_minutes: float | None = None  # stop when another epoch would pass this; the best epoch so far is kept
    min_epochs: int = 0  # early stopping waits at least this long (a validation loss that jumps early on)
    yamnet: Path | None = None  # a YAMNet branch beside the bark network: yamnet.tflite or a model that has one
    yamnet_weight: float | None = None  # the model's own logit against YAMNet's (None: the --init's, or 0.4)
    progress: bool = True

    def validate(self) -> None:
        if self.preset not in PRESETS:
            raise TrainingError(f"--preset {self.preset}: unknown preset; choose one of {', '.join(PRESETS)}")
        if self.objective not in OBJECTIVES:
            raise TrainingError(f"--objective {self.objective}: choose {' or '.join(OBJECTIVES)}")
        if self.bark_net != "none" and self.bark_net not in BARKNETS:
            raise TrainingError(f"--bark-net {self.bark_net}: choose none or {', '.join(BARKNETS)}")
        if self.yamnet is not None and self.bark_net == "none":
            raise TrainingError("--yamnet goes beside a bark network: add --bark-net cnn-pcen (the default's)")
        if self.yamnet_weight is not None and not 0 < self.yamnet_weight <= 1:
            raise TrainingError(f"--yamnet-weight {self.yamnet_weight}: give a weight in (0, 1]")
        if self.bark_net != "none" and self.objective != "joint":
            raise TrainingError("--bark-net needs --objective joint: the network learns barks against other sounds")
        if self.bark_net in BARKNETS and BARKNETS[self.bark_net].front != "db" and self.normalisation != "db":
            raise TrainingError(f"--bark-net {self.bark_net} needs --norm db: its PCEN is computed from the fixed "
                                "dB scale")
        if self.objective == "joint" and self.negatives is None and self.labels is None:
            raise TrainingError("--objective joint needs --negatives: the head learns barks against other sounds")
        if self.normalisation not in NORMALISATIONS:
            raise TrainingError(f"--norm {self.normalisation}: choose one of {', '.join(NORMALISATIONS)}")
        if self.window_s not in WINDOW_CHOICES:
            raise TrainingError(f"--window {self.window_s}: the window must be 1, 2 or 3 seconds")
        if self.ensemble < 1:
            raise TrainingError(f"--ensemble {self.ensemble}: train at least one model")
        if self.epochs < 1:
            raise TrainingError(f"--epochs {self.epochs}: train for at least one epoch")
        if self.max_windows_per_clip < 1:
            raise TrainingError(f"--windows-per-clip {self.max_windows_per_clip}: take at least one window")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise TrainingError(f"--max-minutes {self.max_minutes}: give a positive number of minutes")
        if self.batch_size < 2:
            raise TrainingError(f"--batch-size {self.batch_size}: BatchNorm needs at least 2 windows a batch")
        if not self.lr > 0:
            raise TrainingError(f"--lr {self.lr}: the learning rate must be positive")
        if self.bark_weight is not None and not self.bark_weight > 0:
            raise TrainingError(f"--bark-weight {self.bark_weight}: give a positive weight")
        if self.lr_schedule not in LR_SCHEDULES:
            raise TrainingError(f"--lr-schedule {self.lr_schedule}: choose {' or '.join(LR_SCHEDULES)}")
        if not self.weight_decay >= 0:
            raise TrainingError(f"--weight-decay {self.weight_decay}: give 0 or a positive number")
        if not self.rl_weights or any(not (w > 0 and math.isfinite(w)) for w in self.rl_weights):
            raise TrainingError("--rl-weight: every RL weight must be a positive number")
        if Path(self.out).is_dir():
            raise TrainingError(f"--out {self.out}: is a folder; give a file name such as {Path(self.out) / 'model.pt'}")
        if self.report is not None and Path(self.report).exists() and not Path(self.report).is_dir():
            raise TrainingError(f"--report {self.report}: exists and is not a folder; give a folder for the report")
        if self.positives is None and self.labels is None:
            raise TrainingError("give --positives (a folder of barks) or --labels (a labels.jsonl from "
                                "`barkwatch label`)")
        if self.labels is not None and not Path(self.labels).is_file():
            raise TrainingError(f"--labels {self.labels}: no such file; `barkwatch label DIR` writes "
                                "DIR/labels.jsonl")
        for flag, folder in (("--positives", self.positives), ("--negatives", self.negatives)):
            if folder is not None and not Path(folder).is_dir():
                raise TrainingError(f"{flag} {folder}: no such folder; point it at a folder of audio files")


@dataclass
class Clip:
    """One audio file and the windows cut from it (``[k, window samples]`` float32 audio)."""

    path: Path
    label: int  # 1 bark, 0 other
    group: str  # the recording it came from; never split across train/val/test
    waves: np.ndarray | None = None
    category: str = ""  # with --labels: my_dog, other_dog or not_bark


# -- data ------------------------------------------------------------------------------------------------

_ESC = re.compile(r"(?:^|_)\d-(\d+)-[A-Z]-\d+$")  # ESC-50: fold-freesoundid-take-class
_URBANSOUND = re.compile(r"(?:^|_)(\d+)-\d+-\d+-\d+$")  # UrbanSound8K: freesoundid-class-occurrence-slice


def _manifest_groups(folder: Path) -> dict[Path, str]:
    """``dataset/source_id`` of every file listed in a ``manifest.jsonl`` in ``folder`` or its parent."""
    groups: dict[Path, str] = {}
    for candidate in (folder / "manifest.jsonl", folder.parent / "manifest.jsonl"):
        if not candidate.is_file():
            continue
        for line in candidate.read_text().splitlines():
            try:
                entry = json.loads(line)
                source = f"{entry['dataset']}/{entry['source_id']}" if entry.get("dataset") else str(entry["source_id"])
                groups[(candidate.parent / entry["file"]).resolve()] = source
            except (ValueError, KeyError, TypeError):
                continue
        break
    return groups


def recording_group(path: Path, root: Path, manifest: dict[Path, str]) -> str:
    """Which recording a file came from: manifest ``dataset/source_id``, else an ESC-50 / UrbanSound8K
    Freesound id from the file name, else its folder relative to ``root``."""
    if path.resolve() in manifest:
        return manifest[path.resolve()]
    for dataset, pattern in (("ESC-50", _ESC), ("UrbanSound8K", _URBANSOUND)):
        m = pattern.search(path.stem)
        if m:
            return f"{dataset}/{m.group(1)}"
    rel = path.parent.relative_to(root)
    return "dir:" + rel.as_posix()


def active_windows(wave: np.ndarray, n: int, max_windows: int, active_db: float) -> np.ndarray:
    """Windows of ``n`` samples from where the sound is: candidates every quarter window, kept when within
    ``active_db`` of the loudest, at most ``max_windows`` of them spread over the clip. Short clips are
    zero-padded on both sides to one window."""
    if len(wave) <= n:
        pad = n - len(wave)
        return np.pad(wave, (pad // 2, pad - pad // 2))[None, :]
    step = max(1, n // 4)
    starts = list(range(0, len(wave) - n + 1, step))
    if starts[-1] != len(wave) - n:
        starts.append(len(wave) - n)
    energy = np.array([float(np.mean(wave[s : s + n] ** 2)) for s in starts])
    energy_db = 10.0 * np.log10(energy + 1e-12)
    keep = [s for s, e in zip(starts, energy_db) if e >= energy_db.max() - active_db]
    if len(keep) > max_windows:
        keep = [keep[i] for i in np.linspace(0, len(keep) - 1, max_windows).round().astype(int)]
    return np.stack([wave[s : s + n] for s in keep])


def bark_onsets(wave: np.ndarray, rate: int, max_onsets: int = 4, frame: int = 512, hop: int = 256,
                within_db: float = 8.0) -> list[int]:
    """Sample positions where a loud sound starts: where the level of 23 ms frames rises through
    ``within_db`` under the clip's loudest frame (a clip that starts loud starts at 0). At most
    ``max_onsets``, those with the loudest next 0.3 s first, each at least 0.3 s from the others."""
    if len(wave) < frame:
        return [0] if len(wave) and np.any(wave) else []
    starts = np.arange(0, len(wave) - frame + 1, hop)
    level = 10.0 * np.log10(np.array([float(np.mean(wave[s:s + frame] ** 2)) for s in starts]) + 1e-12)
    if level.max() < -90.0:  # digital silence
        return []
    above = level >= level.max() - within_db
    rises = [i for i in range(len(level)) if above[i] and (i == 0 or not above[i - 1])]
    ahead = max(1, int(0.3 * rate / hop))
    chosen: list[int] = []
    for i in sorted(rises, key=lambda i: -level[i:i + ahead].max()):
        if all(abs(int(starts[i]) - c) >= 0.3 * rate for c in chosen):
            chosen.append(int(starts[i]))
        if len(chosen) == max_onsets:
            break
    return sorted(chosen)


def onset_windows(wave: np.ndarray, n: int, rate: int, ends_after_s: tuple[float, ...] = (0.15, 0.35)) -> np.ndarray:
    """Windows of ``n`` samples that end ``ends_after_s`` after each of a bark clip's onsets (``bark_onsets``),
    zero-padded where the clip starts later: what a live detector holds just after a bark begins, which
    ``active_windows`` (the loudest stretches) rarely gives. ``[k, n]``, k = 0 when no onset is found."""
    out = []
    for onset in bark_onsets(wave, rate):
        for after in ends_after_s:
            end = min(len(wave), onset + int(after * rate))
            piece = wave[max(0, end - n):end]
            out.append(np.pad(piece, (n - len(piece), 0)))
    return np.stack(out) if out else np.zeros((0, n), np.float32)


def split_groups(clips: list[Clip], fractions: tuple[float, float, float], seed: int) -> dict[str, list[Clip]]:
    """Assign whole recordings to train/val/test, reproducibly for a given seed.

    Positive recordings are split first, so each split gets its share of barks; negative recordings not
    already placed (through a recording that also holds barks) are split the same way.
    """
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for label in (1, 0):
        groups = sorted({c.group for c in clips if c.label == label and c.group not in assignment})
        order = rng.permutation(len(groups))
        n = len(groups)
        n_val = max(1, round(fractions[1] * n)) if n >= 3 and fractions[1] > 0 else 0
        n_test = max(1, round(fractions[2] * n)) if n >= 3 and fractions[2] > 0 else 0
        for rank, i in enumerate(order):
            split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
            assignment[groups[i]] = split
    return {s: [c for c in clips if assignment[c.group] == s] for s in SPLITS}


def resolve_device(name: str) -> torch.device:
    try:
        return compute.resolve(name)
    except ValueError as e:
        raise TrainingError(f"--device {e}") from e


def _progress(iterable, progress: bool, **kwargs):
    from tqdm import tqdm

    # disable=None hides the bar when stderr is not a terminal (logs, CI).
    return tqdm(iterable, disable=None if progress else True, dynamic_ncols=True, **kwargs)


def read_clips(config: TrainConfig) -> tuple[list[Clip], list[str]]:
    """Read every file and cut its active windows. Returns the clips and the files that were skipped, each as
    "path: reason"."""
    sources = [(Path(config.positives), 1)] if config.positives is not None else []
    if config.negatives is not None:
        sources.append((Path(config.negatives), 0))
    rate = FeatureParams().sample_rate
    n = window_samples(config.window_s, rate)
    files: list[tuple[Path, int, str]] = []
    for root, label in sources:
        manifest = _manifest_groups(root)
        files += [(p, label, recording_group(p, root, manifest)) for p in find_audio_files(root)]
    categories: dict[Path, str] = {}
    if config.labels is not None:
        for path, category in labelled_files(Path(config.labels)):
            files.append((path, int(category == "my_dog"), labelled_group(path)))
            categories[path] = category
    excluded = sum(group in config.exclude_sources for _, _, group in files)
    if excluded:
        log.info("left out %d file(s) from %d held-out recording(s)", excluded, len(config.exclude_sources))
    files = [f for f in files if f[2] not in config.exclude_sources]

    clips: list[Clip] = []
    skipped: list[str] = []
    for path, label, group in _progress(files, config.progress, desc="reading audio", unit="file"):
        try:
            wave = load_audio(path, rate)
        except AudioError as e:
            log.warning("skipped %s", e)
            skipped.append(str(e))
            continue
        active_db = config.active_db if label == 1 or config.other_active_db is None else config.other_active_db
        windows = active_windows(wave, n, config.max_windows_per_clip, active_db)
        if label == 1 and config.onset_windows:
            windows = np.concatenate([windows, onset_windows(wave, n, rate).astype(windows.dtype)])
        clips.append(Clip(path=path, label=label, group=group, waves=windows, category=categories.get(path, "")))
    return clips, skipped


def labelled_files(labels: Path) -> list[tuple[Path, str]]:
    """(clip path, label) for every clip with a label in a labels.jsonl, paths relative to its folder."""
    from ..home.label import labels_in

    return [(labels.parent / name, label) for name, label in sorted(labels_in(labels).items())]


_CLIP_TIME = re.compile(r"^(\d{2})\d{4}_")  # record's clip names: HHMMSS_id


def labelled_group(path: Path) -> str:
    """The recording a labelled clip belongs to, for splitting: clips heard in the same hour of the same day
    (record's <date>/<HHMMSS>_<id> names) are one, as one barking episode must not be on both sides of a split;
    other files are each their own."""
    m = _CLIP_TIME.match(path.name)
    return f"labels:{path.parent.name}/{m.group(1)}" if m else f"labels:{path}"


def initial_weights(path: Path) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """A model file's metadata, its (first) VAE's weights and its bark network's (None without one), to
    fine-tune from."""
    loaded = modelfile.load(path)
    state = loaded.module.state_dict()

    def weights_under(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v.detach().clone() for k, v in state.items() if k.startswith(prefix)}

    vae = weights_under("members.0.vae.") or weights_under("vae.")
    if not vae:
        raise TrainingError(f"--init {path}: no VAE weights found in this model file")
    return loaded.metadata, vae, weights_under("members.0.barknet.") or None


# -- training --------------------------------------------------------------------------------------------


class PrecheltStopping:
    """Early stopping after Prechelt, "Early stopping - but when?" (1997), criterion PQ_alpha.

    With E_opt the lowest validation loss so far, the generalisation loss is GL(t) = 100 (E_va(t) / E_opt - 1),
    and the training progress over the last strip of k epochs is P_k(t) = 1000 (mean E_tr / min E_tr - 1).
    Training stops at the end of a strip when GL(t) / P_k(t) > alpha (the validation loss has risen by more
    than training is still improving), or when P_k(t) < 0.1 (training has stalled). The caller keeps the
    weights of the epoch with the lowest validation loss.
    """

    def __init__(self, k: int = 5, alpha: float = 2.0, min_epochs: int = 0):
        self.k, self.alpha, self.min_epochs = k, alpha, min_epochs
        self.train_losses: list[float] = []
        self.best_val = math.inf
        self.best_epoch = -1
        self.reason = ""

    def update(self, train_loss: float, val_loss: float) -> bool:
        """Record one epoch; True when training should stop."""
        epoch = len(self.train_losses)
        self.train_losses.append(train_loss)
        if val_loss < self.best_val:
            self.best_val, self.best_epoch = val_loss, epoch
        if len(self.train_losses) % self.k != 0 or len(self.train_losses) < self.min_epochs:
            return False
        strip = self.train_losses[-self.k :]
        progress = 1000.0 * (sum(strip) / (self.k * min(strip)) - 1.0)
        generalisation = 100.0 * (val_loss / self.best_val - 1.0)
        if progress < 0.1:
            self.reason = f"training progress P_{self.k} = {progress:.3f} < 0.1 at epoch {epoch + 1}"
            return True
        if generalisation / progress > self.alpha:
            self.reason = f"GL/P_{self.k} = {generalisation / progress:.2f} > {self.alpha} at epoch {epoch + 1}"
            return True
        return False


@dataclass
class VAERun:
    """One trained VAE (weights from its best validation epoch), its bark head (joint objective) and history."""

    rl_weight: float
    vae: VAE
    head: torch.nn.Module | None  # a Linear on the latent mean, or a BarkNet on the spectrogram
    history: dict[str, list[float]]
    epochs: int
    best_epoch: int
    stop_reason: str


@dataclass
class Windows:
    """Every window of a set of clips as one array, with its label and the clip it came from."""

    waves: torch.Tensor  # [n, samples] on the CPU
    labels: torch.Tensor  # [n] float, 1 for barks
    clip_index: np.ndarray  # [n]

    @classmethod
    def of(cls, clips: list[Clip]) -> Windows:
        if not clips:
            return cls(torch.empty(0, 0), torch.empty(0), np.empty(0, dtype=int))
        waves = torch.from_numpy(np.concatenate([c.waves for c in clips]))
        labels = torch.cat([torch.full((len(c.waves),), float(c.label)) for c in clips])
        index = np.concatenate([np.full(len(c.waves), i) for i, c in enumerate(clips)])
        return cls(waves, labels, index)

    @classmethod
    def concat(cls, parts: list[Windows]) -> Windows:
        return cls(torch.cat([p.waves for p in parts]), torch.cat([p.labels for p in parts]),
                   np.concatenate([p.clip_index for p in parts]))

    def select(self, mask: torch.Tensor) -> Windows:
        return Windows(self.waves[mask], self.labels[mask], self.clip_index[mask.numpy()])


def spectrograms(features: Spectrogram, waves: torch.Tensor) -> torch.Tensor:
    """The VAE's input, ``[B, 1, n_mels, frames]`` in [0, 1], computed on ``waves``' device."""
    with torch.no_grad():
        return features(waves)


def augmentation(config: TrainConfig) -> Augmentation:
    return Augmentation(mix_p=config.mix_p, mix_snr_db=config.mix_snr_db, bark_snr_db=config.bark_snr_db,
                        level_dbfs=config.level_dbfs,
                        floor_dbfs=config.floor_dbfs, scene=config.scene, background_dbfs=config.background_dbfs,
                        bark_ratio_db=config.bark_ratio_db, spec_masks=config.spec_masks, shift_p=config.shift_p,
                        speed=config.speed, reverb_p=config.reverb_p, lowpass_p=config.lowpass_p,
                        colour_p=config.colour_p)


@dataclass
class Terms:
    """What the VAE measures on every window of a set: RL, KL, latent mean, and the head's logit if any."""

    rl: np.ndarray
    kl: np.ndarray
    mu: np.ndarray
    logit: np.ndarray | None
    labels: np.ndarray
    clip_index: np.ndarray

    @classmethod
    def concat(cls, parts: list[Terms]) -> Terms:
        """One set of terms from several measured on windows of the same clips (clip indices are kept)."""
        logits = [p.logit for p in parts]
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("rl", "kl", "mu")),
                   None if any(x is None for x in logits) else np.concatenate(logits),
                   np.concatenate([p.labels for p in parts]), np.concatenate([p.clip_index for p in parts]))

    def clip_scores(self, window_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A clip scores its highest-scoring window: what a detector sliding over it would see."""
        n = int(self.clip_index.max()) + 1 if len(self.clip_index) else 0
        scores = np.full(n, -np.inf)
        labels = np.zeros(n, dtype=int)
        np.maximum.at(scores, self.clip_index, window_scores)
        labels[self.clip_index] = self.labels
        return labels, scores


def augmented(windows: Windows, config: TrainConfig, copies: int) -> Windows:
    """``copies`` augmented versions of every window (same labels and clips), reproducible for the seed."""
    rng = torch.Generator().manual_seed(config.seed + 1)
    others = windows.waves[windows.labels == 0]
    aug = augmentation(config)
    return Windows.concat([Windows(augment(windows.waves, others, aug, rng, windows.labels), windows.labels,
                                   windows.clip_index) for _ in range(copies)])


def head_logit(head: torch.nn.Module, x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """The bark head's logit per window: a bark network reads the spectrogram, a linear head the latent mean."""
    return head(x) if isinstance(head, BarkNet) else head(mu).squeeze(1)


def measure(vae: VAE, head: torch.nn.Module | None, features: Spectrogram, windows: Windows, device: torch.device,
            batch: int = 64) -> Terms:
    """RL, KL and mu of every window, decoding the latent mean (eval mode)."""
    vae.eval()
    if head is not None:
        head.eval()
    parts: list[list[torch.Tensor]] = [[], [], [], []]
    with torch.no_grad():
        for chunk in windows.waves.split(batch):
            x = spectrograms(features, chunk.to(device))
            x_hat, mu, logvar = vae(x)
            rl, kl = loss_terms(x, x_hat, mu, logvar)
            logit = head_logit(head, x, mu) if head is not None else torch.zeros_like(rl)
            for store, value in zip(parts, (rl, kl, mu, logit)):
                store.append(value.double().cpu())
    rl, kl, mu, logit = (torch.cat(p).numpy() if p else np.empty(0) for p in parts)
    return Terms(rl, kl, mu, logit if head is not None else None, windows.labels.numpy().astype(int),
                 windows.clip_index)


def _batch_loss(config: TrainConfig, vae: VAE, head: torch.nn.Module | None, x: torch.Tensor, y: torch.Tensor,
                rl_weight: float, pos_weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x_hat, mu, logvar = vae(x)
    rl, kl = loss_terms(x, x_hat, mu, logvar)
    if head is None:  # the notebook's loss
        return (rl_weight * rl + kl).mean(), rl, kl
    # Joint: the VAE loss divided by the RL weight (the same optimum), so that RL is on the scale of the
    # head's cross-entropy and head_weight sets the balance.
    logit = head_logit(head, x, mu)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, y, pos_weight=pos_weight, reduction="none")
    if config.focal_gamma > 0:
        # Focal loss (Lin et al. 2017): windows already classified well count less, so training keeps working
        # on the rare bark-like sounds that decide the false alarms of a detector that listens all day.
        p_true = torch.sigmoid(torch.where(y > 0.5, logit, -logit))
        bce = bce * (1.0 - p_true).pow(config.focal_gamma)
    bce = bce.mean()
    return (rl + kl / rl_weight).mean() + config.head_weight * bce, rl, kl


def train_vae(config: TrainConfig, features: Spectrogram, train: Windows, val: Windows, others: torch.Tensor,
              rl_weight: float, device: torch.device, initial: dict[str, torch.Tensor] | None = None,
              deadline: float | None = None, initial_head: dict[str, torch.Tensor] | None = None) -> VAERun:
    """Train one VAE (and, for the joint objective, its head) with early stopping on ``val``, ending early when
    another epoch as long as the last would pass ``deadline`` (``time.monotonic()``).

    For the joint objective ``val`` is judged as heard in training too: the clean windows plus two augmented
    copies (fixed for the run), so the epoch kept is the one that does best on noisy, mixed audio."""
    torch.manual_seed(config.seed)
    if config.objective == "joint" and len(val.waves):
        val = Windows.concat([val, augmented(val, config, copies=2)])
    joint = config.objective == "joint"
    sample = spectrograms(features, train.waves[: 4 * config.batch_size].to(device))
    vae = VAE(PRESETS[config.preset], sample.shape[-2], sample.shape[-1])
    if initial is not None:
        try:
            vae.load_state_dict(initial)
        except RuntimeError as e:
            raise TrainingError(f"--init: its network does not fit the {config.preset} preset ({e})") from e
    else:
        vae.match_output_scale(float(sample.mean()), float(sample.std()))
    vae = vae.to(device)
    head: torch.nn.Module | None = None
    if joint:
        head = BarkNet(BARKNETS[config.bark_net]) if config.bark_net != "none" else torch.nn.Linear(vae.latent, 1)
        if initial_head is not None:
            head.load_state_dict(initial_head)
        head = head.to(device)
    params = list(vae.parameters()) + (list(head.parameters()) if head is not None else [])
    optimiser = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.epochs, eta_min=config.lr / 100)
                if config.lr_schedule == "cosine" else None)
    positives = float(train.labels.sum())
    balanced = (len(train.labels) - positives) / max(positives, 1.0)  # as many bark windows as others, in effect
    pos_weight = torch.tensor(config.bark_weight if config.bark_weight is not None else balanced, device=device)
    stopper = PrecheltStopping(min_epochs=config.min_epochs)
    aug = augmentation(config)
    rng = torch.Generator().manual_seed(config.seed)
    history: dict[str, list[float]] = {k: [] for k in ("train_loss", "val_loss", "train_rl", "train_kl",
                                                       "val_rl", "val_kl")}
    best = (copy.deepcopy(vae.state_dict()), copy.deepcopy(head.state_dict()) if head is not None else None)
    epochs = _progress(range(config.epochs), config.progress, desc=f"RL weight {rl_weight:.0e}", unit="epoch")
    for _ in epochs:
        epoch_started = time.monotonic()
        vae.train()
        if head is not None:
            head.train()
        totals = np.zeros(3)
        count = 0
        for idx in torch.randperm(len(train.waves), generator=rng).split(config.batch_size):
            if len(idx) < 2:  # BatchNorm cannot train on a single window
                continue
            waves = train.waves[idx].to(device)
            if joint:
                waves = augment(waves, others, aug, rng, train.labels[idx])
            x = spectrograms(features, waves)
            if joint and aug.spec_masks:
                x = spec_augment(x, aug, rng)
            loss, rl, kl = _batch_loss(config, vae, head, x, train.labels[idx].to(device), rl_weight, pos_weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            totals += np.array([loss.item(), rl.mean().item(), kl.mean().item()]) * len(idx)
            count += len(idx)
        train_loss, train_rl, train_kl = totals / max(count, 1)
        if schedule is not None:
            schedule.step()
        val_loss, val_rl, val_kl = _validation_loss(config, vae, head, features, val, rl_weight, pos_weight, device)
        for key, value in zip(history, (train_loss, val_loss if math.isfinite(val_loss) else math.nan, train_rl,
                                        train_kl, val_rl, val_kl)):
            history[key].append(float(value))
        if not math.isfinite(val_loss):
            val_loss = train_loss  # nothing to validate on: stop on training progress alone
        epochs.set_postfix(loss=f"{train_loss:.3g}", val=f"{val_loss:.3g}", RL=f"{train_rl:.3g}",
                           KL=f"{train_kl:.3g}")
        if epochs.disable and config.progress:  # no terminal for a bar (a log file, the journal): one line
            log.info("RL weight %.0e epoch %d: loss %.4g, validation %.4g, RL %.4g, KL %.4g", rl_weight,
                     len(history["train_loss"]), train_loss, val_loss, train_rl, train_kl)
        if not math.isfinite(train_loss):
            raise TrainingError(f"training diverged at RL weight {rl_weight:g} (loss is {train_loss}); "
                                "lower --lr or the RL weight")
        if val_loss < stopper.best_val:
            best = (copy.deepcopy(vae.state_dict()), copy.deepcopy(head.state_dict()) if head is not None else None)
        if stopper.update(train_loss, val_loss):
            break
        if deadline is not None and 2 * time.monotonic() - epoch_started >= deadline:  # now + one more epoch
            done = len(history["train_loss"])
            stopper.reason = f"--max-minutes: another epoch would pass the limit (after epoch {done})"
            break
    vae.load_state_dict(best[0])
    vae.eval()
    if head is not None:
        head.load_state_dict(best[1])
        head.eval()
    return VAERun(rl_weight, vae, head, history, len(history["train_loss"]), stopper.best_epoch + 1,
                  stopper.reason)


def _validation_loss(config: TrainConfig, vae: VAE, head: torch.nn.Module | None, features: Spectrogram, val: Windows,
                     rl_weight: float, pos_weight: torch.Tensor, device: torch.device) -> tuple[float, float, float]:
    """The training loss on clean validation windows (eval mode), with their mean RL and KL; NaN if none."""
    if len(val.waves) == 0:
        return math.nan, math.nan, math.nan
    vae.eval()
    if head is not None:
        head.eval()
    losses, rls, kls = [], [], []
    with torch.no_grad():
        for idx in torch.arange(len(val.waves)).split(64):
            x = spectrograms(features, val.waves[idx].to(device))
            loss, rl, kl = _batch_loss(config, vae, head, x, val.labels[idx].to(device), rl_weight, pos_weight)
            losses.append(loss.item() * len(idx))
            rls.append(rl.sum().item())
            kls.append(kl.sum().item())
    n = len(val.waves)
    return sum(losses) / n, sum(rls) / n, sum(kls) / n


# -- the classifier --------------------------------------------------------------------------------------


def fit_classifier(val: Terms, head: torch.nn.Module | None) -> LinearClassifier:
    """Logistic regression on validation windows (on log RL, log KL, and the head's logit when there is a
    head), threshold for the best balanced accuracy on validation clips; with no negatives, the one-class
    fallback. A linear head's logit is folded into weights on the latent mean; a bark network's stays a
    third column."""
    if not (val.labels == 0).any():
        return fit_one_class(val.rl[val.labels == 1], val.kl[val.labels == 1])
    x = log_terms(val.rl, val.kl)
    if head is not None:
        x = np.hstack([x, val.logit[:, None]])
    mean, std, weight, bias = fit_logistic(x, val.labels)
    mu_weight: tuple[float, ...] = ()
    if head is not None and not isinstance(head, BarkNet):
        # Fold the standardised logit, w (a . mu + c - m) / s, into weights on mu and the bias.
        scale = weight[2] / std[2]
        mu_weight = tuple((scale * head.weight.detach().double().cpu().numpy()[0]).tolist())
        bias += float(scale * (head.bias.item() - mean[2]))
        mean, std, weight = mean[:2], std[:2], weight[:2]
    provisional = LinearClassifier(tuple(mean.tolist()), tuple(std.tolist()), tuple(weight.tolist()), bias,
                                   0.5, "logistic", mu_weight)
    labels, scores = val.clip_scores(provisional.score(val.rl, val.kl, val.mu, val.logit))
    return replace(provisional, threshold=best_threshold(labels, scores))


def classifier_for(config: TrainConfig, run: VAERun, features: Spectrogram, val: Windows,
                   device: torch.device) -> tuple[Terms, LinearClassifier]:
    """The validation terms of a trained VAE and the classifier fitted on them."""
    val_terms = measure(run.vae, run.head, features, val, device)
    fit_terms = val_terms
    if config.objective == "joint":
        # Fit the classifier on what the detector will hear too: the validation windows as they are and
        # mixed, leveled and noised as in training (with the validation split's own other sounds).
        noisy = augmented(val, config, copies=2)
        fit_terms = Terms.concat([val_terms, measure(run.vae, run.head, features, noisy, device)])
    return val_terms, fit_classifier(fit_terms, run.head)


def ensemble_scores(member_terms: list[Terms], members: list[tuple[VAERun, LinearClassifier]]) -> np.ndarray:
    """Each window's score: the mean of the members' probabilities, as ``Scorer`` computes it."""
    return np.mean([c.score(t.rl, t.kl, t.mu, t.logit) for t, (_, c) in zip(member_terms, members)], axis=0)


def split_metrics(member_terms: list[Terms], members: list[tuple[VAERun, LinearClassifier]],
                  threshold: float) -> dict:
    terms = member_terms[0]
    window_scores = ensemble_scores(member_terms, members)
    labels, scores = terms.clip_scores(window_scores)
    out = summarise(labels, scores, threshold)
    out["clips"] = len(labels)
    out["windows"] = len(window_scores)
    out["window_roc_auc"] = roc_auc(terms.labels, window_scores)
    out["rl_roc_auc"] = roc_auc(terms.labels, terms.rl)  # > 0.5: barks reconstruct worse than the rest
    out["kl_roc_auc"] = roc_auc(terms.labels, terms.kl)
    return out


def separation(member_terms: list[Terms], members: list[tuple[VAERun, LinearClassifier]],
               clips: list[Clip]) -> dict:
    """With --labels: how well "my dog" clips stand apart from other dogs' barks and from other sounds, each
    on its own (clip ROC AUC; NaN where a category has no clip)."""
    labels, scores = member_terms[0].clip_scores(ensemble_scores(member_terms, members))
    category = np.array([c.category for c in clips])
    mine = category == "my_dog"
    out = {}
    for name in ("other_dog", "not_bark"):
        chosen = mine | (category == name)
        out[f"my_dog_vs_{name}_roc_auc"] = roc_auc(mine[chosen].astype(int), scores[chosen])
        out[f"{name}_clips"] = int((category == name).sum())
    out["my_dog_clips"] = int(mine.sum())
    return out


def _from_init(config: TrainConfig) -> tuple[TrainConfig, dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """Fine-tuning: the network shape, window and features of the --init model (its weights only fit those),
    its bark network if it has one, and its training augmentation where it recorded one."""
    metadata, weights, head_weights = initial_weights(Path(config.init))
    preset, window = metadata.get("preset"), metadata.get("window_s")
    norm = (metadata.get("features") or {}).get("normalisation", config.normalisation)
    if preset not in PRESETS or window not in WINDOW_CHOICES or norm not in NORMALISATIONS:
        raise TrainingError(f"--init {config.init}: preset {preset!r}, window {window!r} or features {norm!r} "
                            "are not ones this version trains")
    if metadata.get("ensemble", 1) > 1:
        log.info("--init %s: an ensemble; fine-tuning starts from its first member", config.init)
    changes: dict = {"preset": preset, "window_s": int(window), "normalisation": norm, "objective": "joint"}
    bark_net = (metadata.get("bark_net") or {}).get("name", "none")
    if head_weights is not None:
        if bark_net not in BARKNETS:
            raise TrainingError(f"--init {config.init}: bark network {bark_net!r} is not one this version trains")
        changes["bark_net"] = bark_net
    yamnet = metadata.get("yamnet")
    if yamnet and config.yamnet is None:  # an owner's model keeps the default's AudioSet ears
        changes.update(yamnet=Path(config.init), yamnet_weight=config.yamnet_weight or yamnet.get("model_weight"))
    training = metadata.get("training") or {}
    aug = training.get("augmentation")
    if isinstance(aug, dict):
        changes.update(mix_p=aug.get("mix_p", config.mix_p), spec_masks=aug.get("spec_masks", config.spec_masks),
                       speed=aug.get("speed", config.speed), shift_p=aug.get("shift_p", config.shift_p),
                       reverb_p=aug.get("reverb_p", config.reverb_p), lowpass_p=aug.get("lowpass_p", config.lowpass_p),
                       colour_p=aug.get("colour_p", config.colour_p))
        for key in ("mix_snr_db", "bark_snr_db", "level_dbfs", "floor_dbfs"):
            if key in aug:
                changes[key] = tuple(aug[key]) if aug[key] is not None else None
        if "other_active_db" in training:
            changes["other_active_db"] = training["other_active_db"]
    log.info("fine-tuning from %s: preset %s, %d s windows, %s features%s", config.init, preset, window, norm,
             ", its augmentation" if isinstance(aug, dict) else "")
    return replace(config, **changes), weights, head_weights


# -- the whole job ---------------------------------------------------------------------------------------


@dataclass
class TrainResult:
    model_path: Path
    metadata: dict
    report_dir: Path | None
    skipped: list[str] = field(default_factory=list)


def _local_now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def train(config: TrainConfig) -> TrainResult:
    """Run the whole job: read, split, sweep RL weights, fit the classifier, measure, export, report."""
    config.validate()
    # Weights and Adam's moments drift into subnormal floats over a long CPU run, and x86 computes with those
    # many times slower: a training run's epochs went from 1 to 3 minutes. Flushed to zero they cost nothing.
    torch.set_flush_denormal(True)
    started = time.monotonic()
    deadline = started + 60.0 * config.max_minutes if config.max_minutes is not None else None
    device = resolve_device(config.device)
    initial = initial_head = None
    if config.init is not None:
        config, initial, initial_head = _from_init(config)
    if config.yamnet is not None:
        from .yamnet import yamnet_from

        yamnet_from(config.yamnet)  # a bad file fails now, before minutes of training, with nothing written
    features = FeatureParams(normalisation=config.normalisation)
    spectrogram = Spectrogram(features).to(device)
    n_samples = window_samples(config.window_s, features.sample_rate)

    clips, skipped = read_clips(config)
    positives = [c for c in clips if c.label == 1]
    where = f"--positives {config.positives}" if config.positives is not None else f"--labels {config.labels}"
    if not positives:
        raise TrainingError(f"{where}: no readable audio files (wav, flac, ogg, mp3) found"
                            + ("" if config.positives is not None else " among its 'my dog' clips"))
    if config.negatives is not None and not any(c.label == 0 for c in clips):
        raise TrainingError(f"--negatives {config.negatives}: no readable audio files (wav, flac, ogg, mp3) found")
    if len(positives) < 3:
        raise TrainingError(f"{where}: {len(positives)} usable bark clip(s); training needs at least 3")
    has_negatives = config.negatives is not None or any(c.label == 0 for c in clips)
    for label, flag in ((1, "--positives"), (0, "--negatives")):
        members = [c for c in clips if c.label == label]
        if members and len({c.group for c in members}) < 3:
            log.warning("%s: fewer than 3 distinct recordings found (no manifest.jsonl source_id, file-name id "
                        "or subfolders): splitting by file instead, so validation and test figures will be "
                        "optimistic", flag)
            for c in members:
                c.group = f"file:{c.path}"
    if not has_negatives:
        log.warning("no --negatives given: the classifier falls back to one-class (threshold from the barks' "
                    "own scores); give other sounds for a real classifier")

    splits = split_groups(clips, config.split, config.seed)
    if has_negatives and not any(c.label == 0 for c in splits["val"]):
        log.warning("no other sounds reached the validation split (too few files): one-class fallback")
    windows = {s: Windows.of(splits[s]) for s in SPLITS}
    others = windows["train"].waves[windows["train"].labels == 0]
    if config.objective == "one-class":  # the VAE learns the barks alone
        fit_on = {s: windows[s].select(windows[s].labels == 1) for s in ("train", "val")}
    else:
        fit_on = {s: windows[s] for s in ("train", "val")}
    if len(fit_on["train"].waves) < 2:
        raise TrainingError("too few training windows after the split; give more bark recordings")

    # The sweep: one VAE per RL weight; keep the one whose classifier best separates validation clips.
    sweep: list[dict] = []
    best: tuple[float, VAERun, LinearClassifier] | None = None
    for rl_weight in config.rl_weights:
        if best is not None and deadline is not None and time.monotonic() >= deadline:
            log.warning("--max-minutes: no time left for RL weight %g and after; keeping the best so far", rl_weight)
            break
        run = train_vae(config, spectrogram, fit_on["train"], fit_on["val"], others, rl_weight, device, initial,
                        deadline, initial_head)
        val_terms, clf = classifier_for(config, run, spectrogram, windows["val"], device)
        labels, scores = val_terms.clip_scores(clf.score(val_terms.rl, val_terms.kl, val_terms.mu, val_terms.logit))
        auc = roc_auc(labels, scores)
        pos = val_terms.labels == 1
        entry = {"rl_weight": rl_weight, "epochs": run.epochs, "best_epoch": run.best_epoch,
                 "val_roc_auc": auc, "val_rl_mean": float(np.mean(val_terms.rl[pos])),
                 "val_kl_mean": float(np.mean(val_terms.kl[pos])), "history": run.history}
        sweep.append(entry)
        # With negatives: the best validation AUC. Without: the notebook's rule, the lowest validation RL.
        key = auc if has_negatives and math.isfinite(auc) else -entry["val_rl_mean"]
        if best is None or key > best[0]:
            best = (key, run, clf)
    assert best is not None
    _, run, clf = best

    # An ensemble: more VAEs at the chosen RL weight, differing only in their seed; the score is the mean.
    members = [(run, clf)]
    for k in range(1, config.ensemble):
        if deadline is not None and time.monotonic() >= deadline:
            log.warning("--max-minutes: no time left for ensemble member %d; the model has %d", k + 1, k)
            break
        log.info("ensemble member %d of %d", k + 1, config.ensemble)
        extra = train_vae(replace(config, seed=config.seed + k), spectrogram, fit_on["train"], fit_on["val"],
                          others, run.rl_weight, device, initial, deadline, initial_head)
        members.append((extra, classifier_for(config, extra, spectrogram, windows["val"], device)[1]))

    terms = {s: [measure(r.vae, r.head, spectrogram, windows[s], device) for r, _ in members]
             for s in SPLITS if splits[s]}
    if len(members) > 1:
        val_labels, val_scores = terms["val"][0].clip_scores(ensemble_scores(terms["val"], members))
        clf = replace(clf, threshold=best_threshold(val_labels, val_scores))
    metrics = {s: split_metrics(terms[s], members, clf.threshold) for s in terms}
    for s in terms:
        if any(c.category for c in splits[s]):
            metrics[s]["separation"] = separation(terms[s], members, splits[s])
    seconds = time.monotonic() - started

    def barknet_of(r: VAERun) -> BarkNet | None:
        return r.head.cpu() if isinstance(r.head, BarkNet) else None

    if len(members) == 1:
        scorer = Scorer(spectrogram.cpu(), run.vae.cpu(), n_samples, clf, barknet_of(run))
    else:
        scorer = Scorer.ensemble(spectrogram.cpu(), [(r.vae.cpu(), c, barknet_of(r)) for r, c in members],
                                 n_samples)
    metadata = {
        "barkwatch_version": __version__,
        "created": _local_now(),
        "sample_rate": features.sample_rate,
        "window_s": config.window_s,
        "window_samples": n_samples,
        "hop_s": config.hop_s,
        "threshold": clf.threshold,
        "preset": config.preset,
        "network": PRESETS[config.preset].to_dict(),
        "bark_net": ({"name": config.bark_net, **BARKNETS[config.bark_net].to_dict()}
                     if config.bark_net != "none" else None),
        "parameters": sum(count_parameters(r.vae) + (count_parameters(r.head) if isinstance(r.head, BarkNet) else 0)
                          for r, _ in members),
        "ensemble": len(members),
        "features": {**features.to_dict(), "frames": features.frames(n_samples)},
        "classifier": clf.to_dict(),
        "training": {
            "positives": str(config.positives) if config.positives else None,
            "negatives": str(config.negatives) if config.negatives else None,
            "labels": str(config.labels) if config.labels else None,
            "init": str(config.init) if config.init else None,
            "files": {"positive": len(positives), "negative": len(clips) - len(positives),
                      "skipped": len(skipped)},
            "sources": {s: len({c.group for c in splits[s]}) for s in SPLITS},
            "excluded_sources": len(config.exclude_sources),
            "windows": {s: len(windows[s].waves) for s in SPLITS},
            "objective": config.objective,
            "head_weight": config.head_weight if config.objective == "joint" else None,
            "bark_weight": config.bark_weight if config.objective == "joint" else None,
            "augmentation": ({k: v for k, v in vars(augmentation(config)).items()}
                             if config.objective == "joint" else None),
            "other_active_db": config.other_active_db,
            "onset_windows": config.onset_windows,
            "rl_weight": run.rl_weight,
            "rl_weights_tried": list(config.rl_weights),
            "epochs": run.epochs,
            "best_epoch": run.best_epoch,
            "early_stopping": "Prechelt PQ_2 (k=5), or progress < 0.1; best validation epoch kept",
            "min_epochs": config.min_epochs,
            "stopped_because": run.stop_reason or "reached --epochs",
            "lr": config.lr,
            "lr_schedule": config.lr_schedule,
            "weight_decay": config.weight_decay,
            "batch_size": config.batch_size,
            "seed": config.seed,
            "device": str(device),
            "seconds": round(seconds, 1),
        },
        "metrics": metrics,
    }
    config.out.parent.mkdir(parents=True, exist_ok=True)
    modelfile.save(scorer, metadata, config.out)
    if config.yamnet is not None:
        from .yamnet import DEFAULT_MODEL_WEIGHT, branch_after_training

        metadata = branch_after_training(config.out, config.yamnet, config.yamnet_weight or DEFAULT_MODEL_WEIGHT,
                                         {s: windows[s] for s in SPLITS if splits[s]})

    if config.report is not None:
        from .report import write_training_report

        examples = _examples(spectrogram, splits, run.vae)
        write_training_report(config.report, metadata=metadata, sweep=sweep, history=run.history,
                     terms={s: t[0] for s, t in terms.items()},
                     classifier=clf, examples=examples, skipped=skipped)
    return TrainResult(config.out, metadata, config.report, skipped)


def _examples(features: Spectrogram, splits: dict[str, list[Clip]], vae: VAE) -> dict[str, np.ndarray]:
    """Spectrograms for the notebook's three experiments: a held-out bark and a held-out other sound with their
    reconstructions, and four decodings of z ~ N(0, I)."""
    out: dict[str, np.ndarray] = {}
    vae.eval()
    with torch.no_grad():
        for label, name in ((1, "bark"), (0, "other")):
            pool = [c for s in ("test", "val") for c in splits[s] if c.label == label]
            if pool:
                x = spectrograms(features, torch.from_numpy(pool[0].waves[:1]))
                mu, _ = vae.encode(x)
                out[name] = x[0, 0].numpy()
                out[name + "_reconstruction"] = vae.decode(mu)[0, 0].numpy()
                out[name + "_file"] = np.array(str(pool[0].path))
        z = torch.randn(4, vae.latent, generator=torch.Generator().manual_seed(0))
        out["prior_samples"] = vae.decode(z)[:, 0].numpy()
    return out
