"""A YAMNet branch added to a trained model file: AudioSet's ears beside the bark network.

``add_yamnet`` rebuilds a model file's scorer with this version's code, puts a ``YamnetBranch`` beside its
bark network (YAMNet frozen, its weights from Google's TFLite file), and replaces the linear classifier by the
weighted mean of two logits: the model's own decision logit ``z`` (what its classifier computed) and YAMNet's
bark logit ``y``, ``a z + (1 - a) y``. That mean is itself a linear classifier on (log RL, log KL, bark logit,
YAMNet logit), so it is written as one: the old weights and bias times ``a``, and ``1 - a`` on the new column.
The weight ``a`` and the cascade's gate are chosen on validation data (``benchmarks/yamnet.py``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..model import modelfile
from ..model.classifier import LinearClassifier
from ..model.yamnet import LICENCE, YamNet, YamnetBranch, YamnetFileError, from_tflite

# A logit below which YAMNet is not run (``scorer.Scorer``'s cascade): -inf runs it on every window.
NO_CASCADE = float("-inf")
# The weight of the model's own logit against YAMNet's, chosen for the shipped default on the validation mix
# (benchmarks/quality.md); ``train --yamnet`` uses it unless told otherwise or started from a model with one.
DEFAULT_MODEL_WEIGHT = 0.4


def combined_classifier(old: LinearClassifier, model_weight: float) -> LinearClassifier:
    """``model_weight * z_old + (1 - model_weight) * yamnet_logit`` as one linear classifier."""
    if not 0.0 < model_weight <= 1.0:
        raise ValueError(f"model_weight {model_weight}: must be in (0, 1]")
    if not old.uses_logit or old.uses_yamnet:
        raise ValueError("a YAMNet branch goes beside a model with a bark network and no YAMNet branch yet")
    a = float(model_weight)
    return LinearClassifier(
        mean=(*old.mean, 0.0), std=(*old.std, 1.0), weight=(*(a * w for w in old.weight), 1.0 - a),
        bias=a * old.bias, threshold=old.threshold, kind=old.kind, mu_weight=tuple(a * w for w in old.mu_weight))


def yamnet_from(source: str | os.PathLike) -> tuple[YamNet, dict]:
    """YAMNet's weights from Google's TFLite file, or from a model file that already has a YAMNet branch (an
    owner's model trained from the shipped default, which needs no TFLite file); and where they came from."""
    source = Path(source)
    if source.suffix.lower() == ".tflite" or not source.is_file():
        return from_tflite(source), {"source": source.name, "sha1": _sha1(source) if source.is_file() else None}
    loaded = modelfile.load(source)
    provenance = loaded.metadata.get("yamnet")
    if not provenance:
        raise YamnetFileError(f"{source}: a model file without a YAMNet branch; give yamnet.tflite or a model "
                              "that has one (the shipped default)")
    net = YamNet()
    prefix = "yamnet.yamnet."
    net.load_state_dict({k[len(prefix):]: v for k, v in loaded.module.state_dict().items() if k.startswith(prefix)})
    return net.eval(), {"source": provenance.get("source"), "sha1": provenance.get("sha1"),
                        "via": {"file": loaded.path.name, "sha256": loaded.sha256}}


def _local_now() -> str:
    from datetime import datetime

    return datetime.now().astimezone().isoformat(timespec="seconds")


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def add_yamnet(model_path: str | os.PathLike, yamnet_source: str | os.PathLike, out: str | os.PathLike,
               model_weight: float = 0.5, cascade_logit: float = NO_CASCADE, threshold: float | None = None,
               extra: dict | None = None) -> Path:
    """Write ``model_path`` with a YAMNet branch (weights from ``yamnet_source``: ``yamnet_from``) to ``out``;
    ``threshold`` (default: the model's) and ``extra`` metadata (how the weight was chosen, say) go with it.
    Raises ``yamnet.YamnetFileError`` for a bad TFLite file and ``modelfile.ModelFileError`` for a bad model
    file, before anything is written."""
    yamnet, provenance = yamnet_from(yamnet_source)
    loaded = modelfile.load(model_path)
    if loaded.metadata.get("yamnet"):
        raise modelfile.ModelFileError(f"{loaded.path}: already has a YAMNet branch")
    scorer = modelfile.python_scorer(loaded)
    member = scorer.members[0]
    if not member.use_barknet:
        raise modelfile.ModelFileError(f"{loaded.path}: a YAMNet branch goes beside a bark network; this model has "
                                       "none (train one with --bark-net)")
    c = loaded.metadata["classifier"]
    old = LinearClassifier(mean=tuple(c["mean"]), std=tuple(c["std"]), weight=tuple(c["weight"]), bias=c["bias"],
                           threshold=c["threshold"], kind=c["kind"], mu_weight=tuple(c.get("mu_weight") or ()))
    classifier = combined_classifier(old, model_weight)
    from ..model.scorer import Member, Scorer

    branch = YamnetBranch(yamnet, loaded.sample_rate, loaded.window_samples)
    combined = Scorer(scorer.features, None, loaded.window_samples,
                      members=[Member(member.vae, classifier, member.barknet)], yamnet=branch,
                      cascade_logit=cascade_logit)
    threshold = loaded.threshold if threshold is None else float(threshold)
    meta = {k: v for k, v in loaded.metadata.items() if k not in ("format_version", "calibration")}
    meta.update({
        "threshold": threshold,
        # The model's hold threshold was for its own score's scale; the combined score has another.
        "hold_threshold": None,
        "parameters": int(loaded.metadata.get("parameters", 0)) + sum(p.numel() for p in yamnet.parameters()),
        "classifier": {**classifier.to_dict(), "threshold": threshold},
        "yamnet": {
            **provenance, "licence": LICENCE,
            "logit": "max(logit[Dog], logit[Bark]) of the last 0.975 s of the window, resampled to 16 kHz inside "
                     "the model", "frozen": True, "parameters": sum(p.numel() for p in yamnet.parameters()),
            "model_weight": model_weight, "cascade_logit": cascade_logit,
            "made_from": {"file": loaded.path.name, "sha256": loaded.sha256, "created": loaded.metadata.get("created")},
            "added": _local_now(),
            **(extra or {}),
        },
    })
    return modelfile.save(combined, meta, out)


def branch_after_training(out: Path, yamnet_source: Path, model_weight: float, splits: dict) -> dict:
    """``barkwatch train --yamnet``: the model just written to ``out`` gets the branch (no cascade: a gate
    needs a validation mix), its threshold again the best balanced accuracy on the validation split's clips,
    and its clip metrics measured again with the branch. ``splits``: split name -> ``train.Windows``. Returns
    the new metadata."""
    import numpy as np

    from .metrics import best_threshold, summarise

    add_yamnet(out, yamnet_source, out, model_weight=model_weight)
    model = modelfile.load(out)

    def clip_scores(windows) -> tuple[np.ndarray, np.ndarray]:
        scores = np.concatenate([model.score(windows.waves[i:i + 64].numpy())[2]
                                 for i in range(0, len(windows.waves), 64)])
        best = np.full(int(windows.clip_index.max()) + 1, -np.inf)
        labels = np.zeros(len(best), dtype=int)
        np.maximum.at(best, windows.clip_index, scores)
        labels[windows.clip_index] = windows.labels.numpy()
        return labels, best

    meta = dict(model.metadata)
    labels, scores = clip_scores(splits["val"])
    threshold = best_threshold(labels, scores) if 0 < labels.sum() < len(labels) else meta["threshold"]
    metrics = dict(meta.get("metrics") or {})
    for name, windows in splits.items():
        if len(windows.waves):
            split_labels, split_scores = clip_scores(windows)
            metrics[name] = {**metrics.get(name, {}), **summarise(split_labels, split_scores, threshold),
                             "with_yamnet": True}
    changes = {"threshold": threshold, "classifier": {**meta["classifier"], "threshold": threshold},
               "metrics": metrics}
    modelfile.update_metadata(out, out, changes)
    return {**meta, **changes}
