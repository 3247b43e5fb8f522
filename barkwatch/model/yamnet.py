"""YAMNet, Google's AudioSet classifier (TensorFlow Model Garden, Apache License 2.0), as a float torch module.

AudioSet holds thousands of dog recordings; barkwatch's own bark data is a few hundred clips. YAMNet learned
them: its "Dog" and "Bark" logits are one more measure for the linear classifier, beside the bark network's
logit and the VAE's RL and KL (``scorer.Scorer``). Its weights come from the TFLite file that Google's model
is distributed as, read once by ``from_tflite`` (``ai-edge-litert``, for reading only); a model file holds
them as ordinary weights, so nothing at run time needs TFLite.

The network, for 0.975 s of mono audio at 16 kHz (15,600 samples):
- front end: 96 frames of 400 samples every 160 (25 ms every 10 ms), periodic Hann, zero-padded to 512,
  magnitude, 64 mel bands 125-7,500 Hz (TensorFlow's HTK-style matrix), ``log(mel + 0.001)``: a [96, 64] patch;
- body: MobileNet v1, a 3x3 conv (32 channels, stride 2) and 13 depthwise-separable blocks, each conv with
  its batch norm folded into a bias and a ReLU; TensorFlow's SAME padding (with stride 2 on these even sizes
  nothing on top/left, one row and column on bottom/right);
- the mean over the final 3 x 2 grid: the 1,024-d embedding; one dense layer: 521 logits (sigmoid: the
  probabilities).

This port runs in float throughout. The TFLite file computes with int8 weights and, in its "hybrid" kernels,
int8-quantised activations; its default interpreter (XNNPACK) is within 0.1 of the float port in the Dog and
Bark probabilities on real clips (``tests/test_yamnet.py`` holds the bound), the plain interpreter up to 0.4.
Fine-tuning needs the float arithmetic (rounding has no useful gradient).

``YamnetBranch`` adapts it to a barkwatch model: the model's windows at its own rate are resampled to 16 kHz
inside the module (``Resampler``: a windowed-sinc polyphase filter as one matrix product), the last 15,600
samples make the patch, and the branch's output is the bark logit ``max(logit[Dog], logit[Bark])``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

RATE = 16000
PATCH_SAMPLES = 15600  # 0.975 s: 96 frames of 400 every 160
FRAME, HOP, FFT = 400, 160, 512
BANDS, FMIN, FMAX = 64, 125.0, 7500.0
LOG_OFFSET = 0.001
CLASSES = 521
DOG, BARK = 69, 70  # AudioSet classes in yamnet_class_map.csv
# (output channels, stride) of the 13 depthwise-separable blocks, layers 2-14 in the TFLite file's names.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
          (512, 1), (1024, 2), (1024, 1))
PARAMETERS = 3_729_481
LICENCE = ("YAMNet weights: Copyright Google LLC, Apache License 2.0 (TensorFlow Model Garden, "
           "research/audioset/yamnet)")


def htk_mel_matrix(bins: int = FFT // 2 + 1, bands: int = BANDS, rate: int = RATE, fmin: float = FMIN,
                   fmax: float = FMAX) -> np.ndarray:
    """TensorFlow's ``linear_to_mel_weight_matrix`` ``[bins, bands]``: triangles on the HTK mel scale
    (1127 ln(1 + f / 700)) between ``bands + 2`` equally spaced edges; the DC bin gets no weight."""

    def mel(f):
        return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    linear = mel(np.linspace(0.0, rate / 2.0, bins)[1:])[:, None]
    edges = np.linspace(mel(fmin), mel(fmax), bands + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((linear - lower) / (centre - lower), (upper - linear) / (upper - centre)))
    return np.vstack([np.zeros((1, bands)), weights]).astype(np.float32)


class FrontEnd(nn.Module):
    """``wave[B, 15600]`` at 16 kHz -> log-mel patch ``[B, 96, 64]``, YAMNet's own features."""

    def __init__(self):
        super().__init__()
        self.register_buffer("window", torch.hann_window(FRAME, periodic=True))
        self.register_buffer("mel", torch.from_numpy(htk_mel_matrix()))
        self.frame, self.hop, self.fft, self.offset = FRAME, HOP, FFT, LOG_OFFSET  # TorchScript reads no globals

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        frames = wave.unfold(-1, self.frame, self.hop) * self.window  # [B, 96, 400]
        magnitude = torch.fft.rfft(frames, n=self.fft).abs()  # [B, 96, 257]
        return torch.log(torch.matmul(magnitude, self.mel) + self.offset)


class _Conv(nn.Module):
    """A convolution with its batch norm folded into the bias, TensorFlow's SAME padding, then ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, groups=groups, bias=True)
        # SAME on even sizes: stride 2 pads bottom/right only, stride 1 pads 1 all round (a 1x1 needs none).
        pad = 0 if kernel == 1 else (1 if stride == 1 else 0)
        after = 0 if kernel == 1 else 1
        self.pad = (pad, after, pad, after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(nn.functional.pad(x, self.pad)))


class YamNet(nn.Module):
    """``wave[B, 15600]`` at 16 kHz -> ``(embedding[B, 1024], logits[B, 521])``."""

    def __init__(self):
        super().__init__()
        self.front = FrontEnd()
        layers: list[nn.Module] = [_Conv(1, 32, 3, 2)]
        previous = 32
        for channels, stride in BLOCKS:
            layers += [_Conv(previous, previous, 3, stride, groups=previous), _Conv(previous, channels, 1, 1)]
            previous = channels
        self.body = nn.Sequential(*layers)
        self.dense = nn.Linear(previous, CLASSES)

    def embed(self, patch: torch.Tensor) -> torch.Tensor:
        """Log-mel patch ``[B, 96, 64]`` -> the 1,024-d embedding."""
        return self.body(patch.unsqueeze(1)).mean(dim=(2, 3))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.embed(self.front(wave))
        return embedding, self.dense(embedding)


def resampling_matrix(rate_in: int, rate_out: int, taps: int = 128, beta: float = 8.0) -> tuple[np.ndarray, int, int]:
    """The polyphase filter of a ``rate_in`` -> ``rate_out`` resampler as a matrix: with ``up/down`` the
    reduced ratio, output block ``q`` (``up`` samples) = input samples ``down * q - taps // 2 + [0, span)``
    times the returned ``[span, up]`` matrix. A Kaiser-windowed sinc (``taps`` per output sample, beta 8:
    about 80 dB down) with its -6 dB point at 0.994 of the lower Nyquist frequency (7,950 Hz for 16 kHz), so
    YAMNet's bands (to 7.5 kHz) pass and what would fold into them (above 8.5 kHz) is removed. Returns the
    matrix, ``down`` and ``up``."""
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    cutoff = 0.994 * min(1.0, up / down) / 2.0  # cycles per input sample
    span = (down * (up - 1)) // up + taps + 1
    matrix = np.zeros((span, up), dtype=np.float64)
    half = taps // 2
    for p in range(up):
        t = p * down / up  # the output sample's place, in input samples from the block start
        k = np.arange(int(math.floor(t)) - half + 1, int(math.floor(t)) + half + 1)
        x = t - k
        h = 2 * cutoff * np.sinc(2 * cutoff * x) * np.kaiser(taps, beta)
        matrix[k + half, p] = h / h.sum()  # unit gain at DC
    return matrix.astype(np.float32), down, up


class Resampler(nn.Module):
    """``wave[B, N]`` at ``rate_in`` -> ``[B, N * rate_out / rate_in]`` at ``rate_out`` (N a multiple of the
    reduced ``rate_in``), zeros assumed beyond the window's ends. The same arithmetic in TorchScript, ONNX and
    on any device: a reshape into blocks and one matrix product."""

    def __init__(self, rate_in: int, rate_out: int):
        super().__init__()
        matrix, self.down, self.up = resampling_matrix(rate_in, rate_out)
        self.span = matrix.shape[0]
        self.half = 64  # resampling_matrix's taps // 2
        self.register_buffer("matrix", torch.from_numpy(matrix))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        blocks = wave.size(1) // self.down
        extra = (self.span + self.down - 1) // self.down  # blocks past the end a segment may reach into
        padded = nn.functional.pad(wave, (self.half, (blocks + extra) * self.down - wave.size(1) - self.half))
        rows = padded.reshape(wave.size(0), blocks + extra, self.down)
        segments = torch.cat([rows[:, i:i + blocks] for i in range(extra + 1)], dim=2)[:, :, :self.span]
        return torch.matmul(segments, self.matrix).reshape(wave.size(0), blocks * self.up)


class YamnetBranch(nn.Module):
    """A barkwatch model's windows ``[B, N]`` at ``sample_rate`` -> YAMNet's bark logit ``[B]``,
    ``max(logit[Dog], logit[Bark])``, on the last 0.975 s of each window (the freshest audio)."""

    def __init__(self, yamnet: YamNet, sample_rate: int, window_samples: int):
        super().__init__()
        if window_samples * RATE < PATCH_SAMPLES * sample_rate:
            raise ValueError(f"a YAMNet branch needs windows of at least 0.975 s; these are "
                             f"{window_samples / sample_rate:.3f} s")
        self.resample = Resampler(sample_rate, RATE) if sample_rate != RATE else nn.Identity()
        self.yamnet = yamnet
        self.patch_samples, self.dog, self.bark = PATCH_SAMPLES, DOG, BARK

    @torch.jit.export
    def patch(self, wave: torch.Tensor) -> torch.Tensor:
        """Windows -> YAMNet's log-mel patches ``[B, 96, 64]``."""
        resampled = self.resample(wave)
        return self.yamnet.front(resampled[:, resampled.size(1) - self.patch_samples:])

    @torch.jit.export
    def patch_logit(self, patch: torch.Tensor) -> torch.Tensor:
        """Log-mel patches -> the bark logit. The cascade computes every window's patch (cheap, and its FFT's
        shape must not depend on the data for the ONNX export) and runs this only on the windows it chose."""
        logits = self.yamnet.dense(self.yamnet.embed(patch))
        return torch.maximum(logits[:, self.dog], logits[:, self.bark])

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.patch_logit(self.patch(wave))


class YamnetFileError(Exception):
    """A TFLite file that is missing, unreadable or not YAMNet; the message names it and what was expected."""


def from_tflite(path: str | os.PathLike) -> YamNet:
    """A float ``YamNet`` with the weights of Google's ``yamnet.tflite`` (int8 weights dequantised with their
    per-tensor scales, batch norms already folded into biases there). Needs ``ai-edge-litert`` (``pip install
    ai-edge-litert``), here only; raises ``YamnetFileError`` naming the file on anything else."""
    path = Path(path)
    if not path.is_file():
        raise YamnetFileError(f"{path}: no such file; expected YAMNet as a TFLite file (yamnet.tflite)")
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        raise YamnetFileError(f"{path}: reading a TFLite file needs ai-edge-litert: pip install 'barkwatch[yamnet]'") \
            from None
    try:
        interpreter = Interpreter(model_path=str(path),
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                                  experimental_preserve_all_tensors=True)
        details = interpreter.get_tensor_details()
    except (ValueError, RuntimeError) as e:
        raise YamnetFileError(f"{path}: not a readable TFLite file ({str(e).splitlines()[0]}); "
                              "expected YAMNet (yamnet.tflite)") from e
    by_name = {d["name"]: d for d in details}

    def values(d: dict) -> np.ndarray:
        v = interpreter.get_tensor(d["index"]).astype(np.float32)
        if d["dtype"] == np.int8:  # per-tensor dynamic-range quantisation, zero point 0
            v = v * np.float32(d["quantization_parameters"]["scales"][0])
        return v

    def tensor(name: str, prefix: bool = False) -> np.ndarray:
        """The tensor called ``name``, dequantised; with ``prefix``, the 4-d tensor whose name starts so (the
        depthwise weights' names run on with the ops fused into them), the stored int8 one before the
        interpreter's float copy of it."""
        if prefix:
            found = [d for d in details if d["name"].startswith(name) and len(d["shape"]) == 4]
        else:
            found = [by_name[name]] if name in by_name else []
        if not found:
            raise YamnetFileError(f"{path}: no tensor {name!r}; expected YAMNet (yamnet.tflite), not another network")
        return values(min(found, key=lambda d: d["dtype"] != np.int8))

    net = YamNet()
    base = "yamnet_frames"
    names = [(f"{base}/layer1/conv/Conv2D", f"{base}/layer1/conv/bn/FusedBatchNormV3", False)]
    for i in range(2, 15):
        names += [(f"{base}/layer{i}/depthwise_conv/bn/FusedBatchNormV3;{base}/layer{i}/depthwise_con",
                   f"{base}/layer{i}/depthwise_conv/bn/FusedBatchNormV3", True),
                  (f"{base}/layer{i}/pointwise_conv/Conv2D", f"{base}/layer{i}/pointwise_conv/bn/FusedBatchNormV3",
                   False)]
    state = dict(net.state_dict())
    try:
        for index, (w_name, b_name, depthwise) in enumerate(names):
            w = tensor(w_name, prefix=depthwise)
            # TFLite: depthwise [1, 3, 3, C] -> torch [C, 1, 3, 3]; others OHWI -> OIHW.
            w = np.transpose(w, (3, 0, 1, 2)) if depthwise else np.transpose(w, (0, 3, 1, 2))
            state[f"body.{index}.conv.weight"] = torch.from_numpy(np.ascontiguousarray(w))
            state[f"body.{index}.conv.bias"] = torch.from_numpy(tensor(b_name))
        state["dense.weight"] = torch.from_numpy(tensor(f"{base}/dense/MatMul"))
        state["dense.bias"] = torch.from_numpy(tensor(f"{base}/dense/BiasAdd/ReadVariableOp/resource"))
        net.load_state_dict(state)
    except RuntimeError as e:
        raise YamnetFileError(f"{path}: its tensors do not fit YAMNet ({str(e).splitlines()[0]}); "
                              "expected Google's yamnet.tflite") from e
    return net.eval()
