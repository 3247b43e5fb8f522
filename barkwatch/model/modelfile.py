"""Saving and loading barkwatch model files: the only module that touches ``torch.jit``.

A model file is one TorchScript archive holding the ``Scorer`` module and, as the extra file
``barkwatch.json``, its metadata (format version, sample rate, window length, threshold, feature parameters,
classifier, training summary and metrics). Anyone can load it with ``torch.jit.load`` alone.

TorchScript is deprecated from torch 2.13 on; it is kept because it is a single self-contained file that
loads without Python source. The warnings torch emits for it are silenced here, and nowhere else, so users
never see them. Should the format move (to ``torch.export``'s ``.pt2``, say), this module is the one to change.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import warnings
import zipfile
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..files import atomic_path

FORMAT_VERSION = 1
METADATA_NAME = "barkwatch.json"
# The model used when none is given, shipped inside the package (package data, so a wheel has it too);
# models/default.pt in a checkout links to it.
DEFAULT_MODEL = Path(__file__).resolve().with_name("default.pt")


class ModelFileError(Exception):
    """A model file that is missing, unreadable, not a barkwatch model, or too new. The message names it."""


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*TorchScript.*", category=DeprecationWarning)
        yield


def file_hash(path: str | os.PathLike) -> str:
    """First 16 hex digits of the file's SHA-256: names a model in events and reports."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


# Weight decay drives the weights of units that stopped learning towards zero without reaching it: the default
# model held tens of thousands between 1e-38 and 1e-30. Multiplied by activations they give subnormal floats,
# which x86 CPUs compute many times slower (the whole network ran 2x slower, one convolution 30x). Nothing
# under this magnitude can move a float32 sum of activations in [0, 1]-scaled spectrograms, so it is zeroed.
NEGLIGIBLE = 1e-20


def zero_negligible(module) -> int:
    """Set every parameter and floating-point buffer entry of ``module`` smaller in magnitude than
    ``NEGLIGIBLE`` to exactly zero, in place; returns how many there were. Scores do not change (tested)."""
    import torch

    changed = 0
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tiny = (tensor.abs() < NEGLIGIBLE) & (tensor != 0)
                changed += int(tiny.sum())
                tensor[tiny] = 0.0
    return changed


def save(module, metadata: dict, path: str | os.PathLike) -> Path:
    """Script ``module`` (in eval mode, on the CPU, negligible weights zeroed) and write it with ``metadata``
    to ``path`` atomically."""
    import torch

    path = Path(path)
    meta = {"format_version": FORMAT_VERSION, **metadata}
    # A frozen copy: outputs of the loaded file then never require grad, so .numpy() just works.
    module = copy.deepcopy(module).to("cpu").eval().requires_grad_(False)
    zero_negligible(module)
    with _quiet_torchscript():
        scripted = torch.jit.script(module)
    return _write(scripted, meta, path)


def _write(scripted, meta: dict, path: Path) -> Path:
    import torch

    try:
        with atomic_path(path) as tmp, _quiet_torchscript():
            torch.jit.save(scripted, str(tmp), _extra_files={METADATA_NAME: json.dumps(meta, indent=2)})
    except (OSError, RuntimeError) as e:
        raise ModelFileError(f"{path}: cannot write the model file ({getattr(e, 'strerror', None) or e})") from e
    return path


def update_metadata(path: str | os.PathLike, out: str | os.PathLike, changes: dict) -> Path:
    """Copy the model file ``path`` to ``out`` (which may be the same file) with ``changes`` merged into its
    metadata; the network is untouched. How a threshold calibrated after training gets into the model."""
    loaded = load(path)
    return _write(loaded.module, {**loaded.metadata, **changes}, Path(out))


def python_scorer(loaded: LoadedModel):
    """The ``Scorer`` (a plain torch module) a loaded model file was exported from, rebuilt from its metadata
    and weights with this version's code. One VAE, with or without a bark network; not ensembles."""
    from .barknet import BarkNet, BarkNetConfig
    from .classifier import LinearClassifier
    from .features import FeatureParams, Spectrogram
    from .scorer import Scorer
    from .vae import VAE, VAEConfig

    meta, path = loaded.metadata, loaded.path
    if int(meta.get("ensemble", 1)) != 1:
        raise ModelFileError(f"{path}: an ensemble of {meta['ensemble']} cannot be rebuilt; retrain it")
    try:
        features = FeatureParams(**{k: v for k, v in meta["features"].items() if k != "frames"})
        network = VAEConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["network"].items()})
        bark = meta.get("bark_net")
        barknet = None if not bark else BarkNet(BarkNetConfig(
            channels=tuple(bark["channels"]), pools=tuple(tuple(p) for p in bark["pools"]),
            dropout=bark["dropout"], front=bark.get("front", "db")), bands=features.n_mels)
        c = meta["classifier"]
        classifier = LinearClassifier(mean=tuple(c["mean"]), std=tuple(c["std"]), weight=tuple(c["weight"]),
                                      bias=c["bias"], threshold=c["threshold"], kind=c["kind"],
                                      mu_weight=tuple(c.get("mu_weight") or ()))
        window = int(meta["window_samples"])
        branch = None
        if meta.get("yamnet"):
            from .yamnet import YamNet, YamnetBranch

            branch = YamnetBranch(YamNet(), features.sample_rate, window)
        scorer = Scorer(Spectrogram(features), VAE(network, features.n_mels, features.frames(window)), window,
                        classifier, barknet, yamnet=branch,
                        cascade_logit=float((meta.get("yamnet") or {}).get("cascade_logit", float("-inf"))))
        scorer.load_state_dict(loaded.module.state_dict())
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: cannot be rebuilt with this barkwatch ({str(e).splitlines()[0]})") from e
    return scorer.eval()


def rebuild(path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Export the model file ``path`` again to ``out`` with this version's code: the same weights and
    metadata, so the same scores to float rounding, from the network code barkwatch now writes (a faster
    formulation of the same arithmetic, say)."""
    loaded = load(path)
    return save(python_scorer(loaded), {k: v for k, v in loaded.metadata.items() if k != "format_version"}, out)


ONNX_INPUT = "power"  # the exported graph's input: see export_onnx
ONNX_WAVE = "wave"  # and, for a model with a YAMNet branch, the windows' samples


def export_onnx(path: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the model file ``path`` as ONNX (default: beside it, ``.onnx`` for ``.pt``) for runtimes without
    torch, with the same metadata as JSON in the ONNX model's ``barkwatch.json`` property. The graph is the
    model from the power spectrogram on (``scorer.PowerScorer``): ``power[B, n_fft // 2 + 1, frames] -> (rl,
    kl, score)`` for any batch size, the mel bank and all after it inside; ``onnxrt.OnnxModel.forward`` takes
    samples, as the TorchScript file does, and computes the STFT in numpy (``spectrum.power_spectrum``). Needs
    ``onnx`` and ``onnxscript`` (``pip install 'barkwatch[onnx]'``); raises ``ModelFileError`` naming the file
    on any failure."""
    import torch

    from .scorer import PowerScorer, PowerWaveScorer

    loaded = load(path)
    out = Path(out) if out is not None else loaded.path.with_suffix(".onnx")
    scorer = python_scorer(loaded)
    features = loaded.metadata["features"]
    try:
        import onnx
    except ImportError:
        raise ModelFileError(f"{out}: ONNX export needs the onnx and onnxscript packages: "
                             "pip install 'barkwatch[onnx]'") from None
    # An example batch of 2: torch.export fixes a dimension of size 1 to 1.
    example = torch.zeros(2, int(features["n_fft"]) // 2 + 1, 1 + loaded.window_samples // int(features["hop_length"]))
    batch = torch.export.Dim("batch", min=1, max=4096)
    if scorer.use_yamnet:  # the cascade's data-dependent batch needs the TorchScript-based exporter
        module, inputs, names = PowerWaveScorer(scorer).eval(), (example, torch.zeros(2, loaded.window_samples)), \
            [ONNX_INPUT, ONNX_WAVE]
    else:
        module, inputs, names = PowerScorer(scorer).eval(), (example,), [ONNX_INPUT]
    try:
        # The exporter prints its progress and logs what it skips (torchvision's operators); a command's
        # output is its own.
        exporter_log = logging.getLogger("torch.onnx")
        level = exporter_log.level
        exporter_log.setLevel(logging.ERROR)
        with _quiet_torchscript(), warnings.catch_warnings(), atomic_path(out) as tmp, \
                redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)  # the exporter on two inputs sharing the batch axis
            program = torch.onnx.export(module, inputs, dynamo=True, input_names=names,
                                        output_names=["rl", "kl", "score"],
                                        dynamic_shapes=tuple({0: batch} for _ in names), verbose=False)
            model = program.model_proto
            meta = {"format_version": FORMAT_VERSION,
                    **{k: v for k, v in loaded.metadata.items() if k != "format_version"},
                    "exported_from": {"file": loaded.path.name, "sha256": loaded.sha256}}
            onnx.helper.set_model_props(model, {METADATA_NAME: json.dumps(meta, indent=2)})
            onnx.save(model, str(tmp))
    except (OSError, RuntimeError, ValueError, ImportError) as e:
        raise ModelFileError(f"{out}: cannot write the ONNX model ({getattr(e, 'strerror', None) or e})") from e
    finally:
        exporter_log.setLevel(level)
    return out


def _check_metadata(path: Path, raw: bytes | str) -> dict:
    try:
        meta = json.loads(raw)
    except ValueError as e:
        raise ModelFileError(f"{path}: its {METADATA_NAME} is not valid JSON; re-export the model") from e
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int):
        raise ModelFileError(f"{path}: {METADATA_NAME} has no format version; re-export the model")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format {version} is newer than this barkwatch reads ({FORMAT_VERSION}); "
            "upgrade barkwatch"
        )
    return meta


def read_metadata(path: str | os.PathLike) -> dict:
    """The model's ``barkwatch.json``, read straight from the archive without loading torch."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; train one with `barkwatch train` or pass --model")
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/extra/" + METADATA_NAME)]
            if not names:
                raise ModelFileError(
                    f"{path}: a TorchScript file without barkwatch metadata, not a barkwatch model; "
                    "export it with `barkwatch train`"
                )
            raw = archive.read(names[0])
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelFileError(
            f"{path}: not a barkwatch model file (unreadable or truncated); point --model at a file "
            "written by `barkwatch train`"
        ) from e
    return _check_metadata(path, raw)


@dataclass
class ModelFileInfo:
    """What every loaded model file says of itself: its metadata, where it is, and a short hash that
    identifies it (a TorchScript file here, an ONNX one in ``onnxrt``)."""

    metadata: dict
    path: Path
    sha256: str

    @property
    def sample_rate(self) -> int:
        return int(self.metadata["sample_rate"])

    @property
    def window_samples(self) -> int:
        return int(self.metadata["window_samples"])

    @property
    def threshold(self) -> float:
        return float(self.metadata["threshold"])


@dataclass
class LoadedModel(ModelFileInfo):
    """A TorchScript model file ready to run on its device; a ``WindowScorer`` (``model/interface.py``)."""

    module: object = None  # torch.jit.ScriptModule
    device: str = "cpu"

    def forward(self, wave):
        """``wave[B, window_samples]`` (a torch tensor on the model's device) -> ``(rl[B], kl[B], score[B])``."""
        return self.module(wave)

    def score(self, windows):
        """The ``WindowScorer`` interface: numpy windows in, float64 numpy out, scored on the model's device."""
        import numpy as np
        import torch

        with torch.inference_mode():
            wave = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device)
            rl, kl, score = (t.double().cpu().numpy() for t in self.module(wave))
        return rl, kl, score


def load(path: str | os.PathLike, device: str = "cpu") -> LoadedModel:
    """Load a model file onto ``device``; every failure is a ``ModelFileError`` that names the file."""
    import torch

    path = Path(path)
    read_metadata(path)  # fails fast, with a clear message, on anything that is not our archive
    extra = {METADATA_NAME: ""}
    try:
        with _quiet_torchscript():
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except RuntimeError as e:
        raise ModelFileError(
            f"{path}: the model cannot be loaded ({str(e).splitlines()[0]}); re-export it with this barkwatch"
        ) from e
    module.eval()
    metadata = _check_metadata(path, extra[METADATA_NAME])
    check_yamnet_branch(path, metadata, {k: tuple(v.shape) for k, v in module.state_dict().items()})
    zero_negligible(module)  # files written before save did it run as fast as new ones
    return LoadedModel(module=module, metadata=metadata, path=path, sha256=file_hash(path), device=str(device))


YAMNET_SHAPES = {"yamnet.yamnet.body.0.conv.weight": (32, 1, 3, 3), "yamnet.yamnet.body.26.conv.weight": (1024, 1024, 1, 1),
                 "yamnet.yamnet.dense.weight": (521, 1024), "yamnet.yamnet.front.mel": (257, 64)}


def check_yamnet_branch(path: Path, metadata: dict, shapes: dict[str, tuple[int, ...]]) -> None:
    """A model file whose metadata and weights disagree about a YAMNet branch (one missing, or of another
    shape than YAMNet's) is refused with the reason; ``shapes`` are its weights' names and shapes."""
    said = bool(metadata.get("yamnet"))
    columns = len((metadata.get("classifier") or {}).get("weight") or ())
    has = any(k.startswith("yamnet.yamnet.") for k in shapes)
    if said and not has:
        raise ModelFileError(f"{path}: its metadata names a YAMNet branch but the file holds none; re-export it")
    if has and not said:
        raise ModelFileError(f"{path}: holds a YAMNet branch its metadata does not describe; re-export it")
    if said and columns != 4:
        raise ModelFileError(f"{path}: a YAMNet branch needs a classifier with 4 weights, this one has {columns}; "
                             "re-export it")
    for name, shape in YAMNET_SHAPES.items() if said else ():
        if shapes.get(name) != shape:
            raise ModelFileError(f"{path}: its YAMNet branch is not YAMNet ({name} is {shapes.get(name)}, expected "
                                 f"{shape}); re-export it from yamnet.tflite")
