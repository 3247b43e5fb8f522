"""A model file exported as ONNX (``modelfile.export_onnx``), run with ONNX Runtime instead of torch.

ONNX Runtime and numpy are all this needs: a process that scores with it never imports torch, which is most
of a torch process's memory and start-up (on the development machine, 61 MB and 0.1 s from start to the first
score against 275 MB and 1.5 s). ``pip install 'barkwatch[lite]'``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .modelfile import METADATA_NAME, ONNX_INPUT, ONNX_WAVE, ModelFileError, ModelFileInfo, file_hash
from .spectrum import power_spectrum


@dataclass
class OnnxModel(ModelFileInfo):
    """An ONNX model file ready to run on ONNX Runtime; a ``WindowScorer`` (``model/interface.py``)."""

    session: object = None  # onnxruntime.InferenceSession

    def forward(self, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``wave[B, window_samples]`` (float32) -> ``(rl[B], kl[B], score[B])`` (float32): the TorchScript
        file's ``forward``, its STFT done here in numpy and the rest by the exported graph."""
        features = self.metadata["features"]
        power = power_spectrum(wave, int(features["n_fft"]), int(features["hop_length"]))
        return tuple(self.session.run(None, self._inputs(power, wave)))

    def _inputs(self, power: np.ndarray, wave: np.ndarray) -> dict:
        inputs = {ONNX_INPUT: np.asarray(power, np.float32)}
        if self.metadata.get("yamnet"):  # the YAMNet branch computes its own features from the samples
            inputs[ONNX_WAVE] = np.ascontiguousarray(wave, dtype=np.float32)
        return inputs

    def score(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``WindowScorer`` interface: ``forward`` in float64."""
        return tuple(x.astype(np.float64) for x in self.forward(windows))

    def score_power(self, power: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``score`` from the windows' power spectrograms (``spectrum.power_spectrum``'s, ``[B, n_fft // 2 + 1,
        frames]``), which the engine computes once per frame of the stream, and the windows themselves (which
        only a YAMNet branch reads)."""
        return tuple(x.astype(np.float64) for x in self.session.run(None, self._inputs(power, windows)))


def is_export_of(model: OnnxModel, source: str | os.PathLike) -> bool:
    """Whether ``model`` was exported from the model file ``source`` as that file is now (its metadata's
    ``exported_from`` names the file's SHA-256): a ``.pt`` retrained or recalibrated since is not."""
    source = Path(source)
    made_from = model.metadata.get("exported_from") or {}
    return source.is_file() and made_from.get("sha256") == file_hash(source)


def load_onnx(path: str | os.PathLike, threads: int = 1) -> OnnxModel:
    """Load an ONNX model file written by ``export_onnx`` onto ONNX Runtime's CPU provider with ``threads``
    threads; every failure is a ``ModelFileError`` that names the file and what to do."""
    path = Path(path)
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelFileError(f"{path}: running an ONNX model needs onnxruntime: pip install 'barkwatch[lite]'") \
            from None
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file; write one with barkwatch.model.modelfile.export_onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are noise here
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        raw = session.get_modelmeta().custom_metadata_map.get(METADATA_NAME)
        metadata = json.loads(raw) if raw else None
    except Exception as e:  # onnxruntime raises its own exception types for unreadable files
        raise ModelFileError(f"{path}: not a model ONNX Runtime can load ({str(e).splitlines()[0]})") from e
    if not isinstance(metadata, dict) or "window_samples" not in metadata:
        raise ModelFileError(f"{path}: an ONNX model without barkwatch's metadata; export it with "
                             "barkwatch.model.modelfile.export_onnx")
    expected = [ONNX_INPUT, ONNX_WAVE] if metadata.get("yamnet") else [ONNX_INPUT]
    if [i.name for i in session.get_inputs()] != expected:
        raise ModelFileError(f"{path}: exported by an older barkwatch (its inputs are not {', '.join(expected)}); "
                             "export it again with `barkwatch export-onnx`")
    return OnnxModel(session=session, metadata=metadata, path=path, sha256=file_hash(path))
