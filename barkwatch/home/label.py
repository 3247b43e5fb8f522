"""Labelling clips in a terminal: is it my dog, another dog, or not a bark?

``barkwatch label DIR`` goes through the clips ``record`` kept (``DIR/recorded.jsonl``, in time order) or, without
an index, every audio file under ``DIR``. For each it plays the clip (when there is an output device), draws a
small spectrogram with coloured half-blocks, shows the model's score, and waits for one key. Works over SSH:
without an output device it shows and does not play.

Labels go to ``DIR/labels.jsonl``, one line per decision, appended and flushed at once, so a crash or a closed
terminal loses nothing and the next run resumes at the first clip without a label. The latest line for a clip
is its label; undo appends a line whose label is null. ``labels_in`` reads the file back for ``train --labels``.

The screen is drawn by ``render`` (pure: text in, text out) so it can be tested without a terminal; the key loop
(``run``) needs one and is tested through tmux.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np

from ..detection.detector import Detector

LABELS_NAME = "labels.jsonl"
LABELS = {"m": "my_dog", "o": "other_dog", "n": "not_bark"}
LABEL_NAMES = {"my_dog": "my dog", "other_dog": "other dog", "not_bark": "not a bark"}
KEYS_HELP = "[m] my dog  [o] other dog  [n] not a bark  [s] skip  [r] replay  [u] undo  [q] quit"
# A dark-to-bright ramp of xterm-256 colours (black, reds, oranges, yellows, white).
PALETTE = (16, 52, 88, 124, 160, 196, 202, 208, 214, 220, 226, 227, 228, 229, 230, 231)


@dataclass(frozen=True)
class Clip:
    path: Path
    name: str  # as written in labels.jsonl: relative to the folder
    start: str | None = None  # local ISO time it was heard, from the index
    kind: str | None = None  # sound, bark or background (record's index)


def find_clips(folder: Path) -> list[Clip]:
    """The clips of ``record``'s index in time order (missing files left out), else every audio file under
    ``folder``, sorted by name."""
    from ..detection.audio import find_audio_files
    from ..live.record import read_index

    index = read_index(folder)
    if index:
        clips = [Clip(folder / e["clip"], e["clip"], e.get("start"), e.get("kind")) for e in index]
        return sorted((c for c in clips if c.path.is_file()), key=lambda c: c.start or "")
    return [Clip(p, p.relative_to(folder).as_posix()) for p in find_audio_files(folder)]


def labels_in(path: Path) -> dict[str, str]:
    """clip name -> label, from a labels.jsonl (the latest line for each clip; null labels and skips dropped)."""
    latest: dict[str, str | None] = {}
    if not path.is_file():
        return {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("clip"), str):
            latest[entry["clip"]] = entry.get("label")
    return {k: v for k, v in latest.items() if v in LABEL_NAMES}


class LabelFile:
    """Appends decisions to labels.jsonl, a line each, flushed at once."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def write(self, clip: Clip, label: str | None, score: float | None) -> None:
        entry = {"clip": clip.name, "label": label, "score": None if score is None else round(score, 4),
                 "at": datetime.now().astimezone().isoformat(timespec="seconds")}
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


# -- drawing ------------------------------------------------------------------------------------------------------


def mel_image(audio: np.ndarray, rate: int, bands: int = 32, columns: int = 96) -> np.ndarray:
    """A small log-mel picture of ``audio``: ``[bands, <= columns]`` in 0..1 (0: 60 dB below the loudest cell),
    lowest band first."""
    import librosa

    if len(audio) < 512:
        audio = np.pad(audio, (0, 512 - len(audio)))
    hop = max(128, int(math.ceil(len(audio) / columns)))
    mel = librosa.feature.melspectrogram(y=audio.astype(np.float32), sr=rate, n_fft=1024, hop_length=hop,
                                         n_mels=bands, fmax=rate / 2)
    db = librosa.power_to_db(mel, ref=np.max(mel) if mel.max() > 0 else 1.0, top_db=60.0)
    return np.clip((db + 60.0) / 60.0, 0.0, 1.0)[:, :columns]


def draw_image(image: np.ndarray, color: bool = True) -> list[str]:
    """Rows of text for ``image`` (``[bands, columns]``, low bands first), high bands on top. In colour, each
    character is two bands (upper-half block: foreground above, background below); without, one band each,
    shaded with ASCII."""
    flipped = image[::-1]
    if not color:
        ramp = " .:-=+*#%@"
        return ["".join(ramp[min(int(v * len(ramp)), len(ramp) - 1)] for v in row) for row in flipped]
    idx = np.minimum((flipped * len(PALETTE)).astype(int), len(PALETTE) - 1)
    if len(idx) % 2:
        idx = np.vstack([idx, np.zeros((1, idx.shape[1]), int)])
    lines = []
    for top, bottom in zip(idx[0::2], idx[1::2]):
        cells = [f"\x1b[38;5;{PALETTE[a]}m\x1b[48;5;{PALETTE[b]}m\u2580" for a, b in zip(top, bottom)]
        lines.append("".join(cells) + "\x1b[0m")
    return lines


def render(clip: Clip, position: int, total: int, counts: dict[str, int], duration_s: float,
           score: float | None, picture: list[str], message: str, playing: str) -> str:
    """The whole screen for one clip, as text (ANSI colours only inside ``picture``)."""
    done = ", ".join(f"{counts.get(k, 0)} {v}" for k, v in LABEL_NAMES.items())
    when = f"  heard {clip.start[:19].replace('T', ' ')}" if clip.start else ""
    kind = f"  ({clip.kind})" if clip.kind else ""
    score_text = "score n/a" if score is None else f"score {score:.2f}"
    width = max((len(_plain(p)) for p in picture), default=40)
    axis = f"0 s{'':{max(width - 3 - len(f'{duration_s:.1f} s'), 1)}}{duration_s:.1f} s"
    lines = [f"barkwatch label: clip {position} of {total}   labelled: {done}",
             f"{clip.name}{kind}{when}",
             f"{duration_s:.1f} s   {score_text}   {playing}",
             "", *picture, axis, "", KEYS_HELP, message]
    return "\x1b[H\x1b[2J" + "\r\n".join(lines) + "\r\n"


def _plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# -- the key loop -------------------------------------------------------------------------------------------------


class Player:
    """Plays clips on the default output device through sounddevice; ``available`` is False (and ``play`` does
    nothing) when there is none, as over SSH."""

    def __init__(self, enabled: bool = True):
        self.available = False
        self.why = "playing is off (--no-play)"
        if not enabled:
            return
        try:
            import sounddevice as sd

            sd.query_devices(kind="output")
            self._sd = sd
            self.available = True
        except Exception as e:  # noqa: BLE001 - PortAudio missing or no output device: show only
            self.why = f"no audio output ({str(e).splitlines()[0] if str(e) else type(e).__name__}): showing only"

    def play(self, audio: np.ndarray, rate: int) -> None:
        if self.available:
            try:
                self._sd.stop()
                self._sd.play(audio, rate)
            except Exception as e:  # noqa: BLE001 - a device that went away: keep labelling
                self.available, self.why = False, f"playing failed ({e}): showing only"

    def stop(self) -> None:
        if self.available:
            self._sd.stop()


ORDERS = ("score", "time")


def in_order(clips: list[Clip], score_clip: Callable[[Path], float | None], order: str,
             progress: Callable[[int, int], None] = lambda done, total: None) -> tuple[list[Clip], dict[str, float | None]]:
    """The clips in the order to label them, and the scores computed on the way (by clip name).

    ``time``: as heard. ``score``: the most bark-like first (the model's highest window score in the clip;
    clips that cannot be scored last, in time order): with a few dozen decisions to spend, an owner confirms
    the barks first and then the sounds the model mistakes for barks, the ones that would be false alarms,
    instead of an hour of clocks and doors. Background samples come last either way."""
    if order not in ORDERS:
        raise LabelError(f"--order {order}: choose {' or '.join(ORDERS)}")
    scores: dict[str, float | None] = {}
    if order == "time":
        return clips, scores
    for done, clip in enumerate(clips, 1):
        scores[clip.name] = score_clip(clip.path)
        progress(done, len(clips))
    ranked = sorted(range(len(clips)), key=lambda k: (clips[k].kind == "background", scores[clips[k].name] is None,
                                                       -(scores[clips[k].name] or 0.0), k))
    return [clips[k] for k in ranked], scores


def run(folder: Path, score_clip: Callable[[Path], float | None], play: bool = True,
        read_key: Callable[[], str] | None = None, write: Callable[[str], None] | None = None,
        order: str = "score") -> dict[str, int]:
    """Label the clips of ``folder`` (in ``order``, see ``in_order``) until they are all done or ``q``; returns
    the counts per label."""
    import soundfile as sf

    clips = find_clips(folder)
    if not clips:
        raise LabelError(f"{folder}: no clips to label (record some with `barkwatch record --out {folder}`)")
    if read_key is None and not sys.stdin.isatty():  # said before minutes of scoring, not after
        raise LabelError(NEEDS_A_TERMINAL)
    write = write or (lambda text: (sys.stdout.write(text), sys.stdout.flush()))
    clips, scores = in_order(clips, score_clip, order,
                             lambda done, total: write(f"\rscoring the clips to put the most bark-like first: "
                                                       f"{done}/{total}"))
    labels_path = folder / LABELS_NAME
    labelled = labels_in(labels_path)
    player = Player(play)
    out = LabelFile(labels_path)
    color = os.environ.get("TERM", "") not in ("", "dumb") and "NO_COLOR" not in os.environ
    history: list[int] = []  # clips decided in this run, for undo
    message = "" if player.available else player.why
    i = next((k for k, c in enumerate(clips) if c.name not in labelled), len(clips))
    try:
        with _KeyReader() if read_key is None else nullcontext() as keys:
            read = read_key or keys.read
            while i < len(clips):
                clip = clips[i]
                try:
                    audio, rate = sf.read(str(clip.path), dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError, OSError) as e:
                    message = f"{clip.name}: cannot read audio ({e}); skipped"
                    i += 1
                    continue
                mono = audio.mean(axis=1)
                score = scores[clip.name] if clip.name in scores else score_clip(clip.path)
                picture = draw_image(mel_image(mono, rate), color)
                counts = _counts(labelled)
                playing = "playing" if player.available else "not playing"
                write(render(clip, i + 1, len(clips), counts, len(mono) / rate, score, picture, message, playing))
                player.play(mono, rate)
                key = read()
                message = ""
                if key in LABELS:
                    out.write(clip, LABELS[key], score)
                    labelled[clip.name] = LABELS[key]
                    history.append(i)
                    message = f"clip {i + 1}: {LABEL_NAMES[LABELS[key]]}"
                    i += 1
                elif key in ("s", " "):
                    history.append(i)
                    message = f"clip {i + 1}: skipped"
                    i += 1
                elif key == "r":
                    continue
                elif key == "u":
                    if not history:
                        message = "nothing to undo in this run"
                        continue
                    i = history.pop()
                    if clips[i].name in labelled:
                        out.write(clips[i], None, None)
                        del labelled[clips[i].name]
                    message = f"clip {i + 1}: label undone"
                elif key in ("q", "\x03", "\x04"):
                    break
                else:
                    message = f"{key!r}: not a key here; {KEYS_HELP}"
    finally:
        player.stop()
        out.close()
    counts = _counts(labelled)
    write("\x1b[H\x1b[2J" if i < len(clips) else "")
    return counts


def _counts(labelled: dict[str, str]) -> dict[str, int]:
    return dict(Counter(labelled.values()))


class LabelError(Exception):
    """A folder that cannot be labelled; the message says why."""


NEEDS_A_TERMINAL = "label needs a terminal (it reads single keys); run it in one, e.g. over ssh -t"


class _KeyReader:
    """Single keys from the terminal, without Enter and without echo (cbreak mode), restored on exit."""

    def __enter__(self):
        import termios
        import tty

        if not sys.stdin.isatty():
            raise LabelError(NEEDS_A_TERMINAL)
        self._fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        sys.stdout.write("\x1b[?25l")  # hide the cursor while drawing
        return self

    def read(self) -> str:
        data = os.read(self._fd, 8)
        return data.decode("utf-8", errors="replace")[:1] if data else "q"

    def __exit__(self, *exc):
        import termios

        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        sys.stdout.write("\x1b[?25h")
        sys.stdout.flush()
        return False


def scorer_for(detector: Detector) -> Callable[[Path], float | None]:
    """``clip -> the detector's highest window score in it`` (None when the clip cannot be scored). Give it a
    detector with the gate open (``gate_dbfs=-inf``): a faint bark is worth a score too."""
    import soundfile as sf

    def score(path: Path) -> float | None:
        try:
            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError):
            return None
        engine = detector.engine(rate)
        windows = engine.feed(audio) + engine.finish()
        return max((w.score for w in windows), default=None)

    return score


def summary(counts: dict[str, int], total: int, folder: Path) -> str:
    done = sum(counts.values())
    parts = ", ".join(f"{counts.get(k, 0)} {v}" for k, v in LABEL_NAMES.items())
    return f"{done} of {total} clips labelled ({parts}) in {folder / LABELS_NAME}"
