"""``barkwatch enrol``: the whole of teaching barkwatch one dog and one home, as one resumable command.

Five steps, each the command an owner could run by hand, run in turn as child processes with the terminal
handed over (their own progress bars, prompts and keys):

1. ``day``: ``record`` the home with the dog in it (``--day-minutes``): what stands out from the room, as clips;
2. ``quiet``: ``record --keep all`` the home with the dog away (``--quiet-minutes``): calibrate's background;
3. ``label``: ``label`` the day's clips, the most bark-like first (about 60 keys are enough; ``q`` stops);
4. ``train``: ``train --labels`` from the shipped model (``--init``), the owner's labels as data;
5. ``calibrate``: the threshold that keeps the quiet recording within ``--budget`` false alarms an hour,
   written into the enrolled model (and the config file, with ``--set-config``).

What has been done is kept in ``FOLDER/enrol.json`` (written whole after every step or interruption), so
running the same command again carries on where it stopped: a recording interrupted after 40 of 60 minutes
records the other 20, labels already given are kept, a finished step is not run again (``--redo STEP`` runs
it and the ones after it again). Everything but ``run_step`` is pure or reads and writes that one file.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ..files import write_atomic

STATE_NAME = "enrol.json"
STEPS = ("day", "quiet", "label", "train", "calibrate")
MIN_MY_DOG = 3  # "my dog" labels needed to train: fewer give the network nothing to learn the dog from
MIN_OTHER = 3  # "other dog" or "not a bark" labels: the home's own sounds are what enrolment adds


class EnrolError(Exception):
    """A step cannot run or did not succeed: the message says what to do."""


@dataclass
class EnrolState:
    """What ``enrol`` has done in a folder (``enrol.json``)."""

    device: str | None = None
    done: list[str] = field(default_factory=list)  # finished steps, in order
    day_minutes: float = 0.0  # recorded so far
    quiet_minutes: float = 0.0

    @classmethod
    def load(cls, folder: Path) -> "EnrolState":
        path = folder / STATE_NAME
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = cls(**{k: data[k] for k in ("device", "done", "day_minutes", "quiet_minutes") if k in data})
        except (ValueError, TypeError) as e:
            raise EnrolError(f"{path}: not an enrolment state file ({e}); move it away to start again") from e
        if not isinstance(state.done, list) or not all(s in STEPS for s in state.done):
            raise EnrolError(f"{path}: unknown steps in 'done'; move it away to start again")
        return state

    def save(self, folder: Path) -> None:
        write_atomic(folder / STATE_NAME, (json.dumps(asdict(self), indent=1) + "\n").encode())

    def redo(self, step: str) -> None:
        """Forget ``step`` and every step after it (their outputs are overwritten or added to when they run)."""
        later = STEPS[STEPS.index(step):]
        self.done = [s for s in self.done if s not in later]
        if "day" in later:
            self.day_minutes = 0.0
        if "quiet" in later:
            self.quiet_minutes = 0.0


@dataclass(frozen=True)
class EnrolPlan:
    """The choices of one ``enrol`` run; paths are those of the steps' outputs."""

    folder: Path
    device: str
    day_minutes: float = 60.0
    quiet_minutes: float = 60.0
    base_model: Path = Path("models/default.pt")  # the model to start from: it scores the day, and is trained on
    budget: float = 0.5
    negatives: tuple[Path, ...] = ()
    quiet: Path | None = None  # an existing recording of the home without barking instead of the quiet step
    config: Path | None = None
    set_config: Path | None = None
    fast: bool = False  # file: devices read as fast as they are scored
    epochs: int | None = None  # training's most epochs (None: train's own default)

    @property
    def day_dir(self) -> Path:
        return self.folder / "day"

    @property
    def quiet_dir(self) -> Path:
        return self.folder / "quiet"

    @property
    def labels(self) -> Path:
        return self.day_dir / "labels.jsonl"

    @property
    def model(self) -> Path:
        return self.folder / "model.pt"

    @property
    def background(self) -> Path:
        return self.quiet if self.quiet is not None else self.quiet_dir / "audio"


def steps_left(state: EnrolState, plan: EnrolPlan) -> list[str]:
    """The steps still to run, in order (``quiet`` is skipped when a recording was given)."""
    return [s for s in STEPS if s not in state.done and not (s == "quiet" and plan.quiet is not None)]


def command_for(step: str, state: EnrolState, plan: EnrolPlan) -> list[str]:
    """The ``barkwatch`` arguments of one step, for what is left of it."""
    common = ["--config", str(plan.config)] if plan.config is not None else []
    model = ["--model", str(plan.base_model)]
    fast = ["--fast"] if plan.fast and plan.device.startswith("file:") else []
    if step == "day":
        left = max(plan.day_minutes - state.day_minutes, 0.0)
        return ["record", "--device", plan.device, "--out", str(plan.day_dir), "--minutes", f"{left:g}",
                *fast, *model, *common]
    if step == "quiet":
        left = max(plan.quiet_minutes - state.quiet_minutes, 0.0)
        return ["record", "--device", plan.device, "--out", str(plan.quiet_dir), "--keep", "all",
                "--minutes", f"{left:g}", *fast, *common]
    if step == "label":
        return ["label", str(plan.day_dir), *model, *common]
    if step == "train":
        negatives = [arg for path in plan.negatives for arg in ("--negatives", str(path))]
        epochs = ["--epochs", str(plan.epochs)] if plan.epochs is not None else []
        return ["train", "--labels", str(plan.labels), *negatives, "--init", str(plan.base_model), *epochs,
                "--out", str(plan.model)]
    if step == "calibrate":
        return ["calibrate", "--model", str(plan.model), "--background", str(plan.background), "--barks",
                str(plan.labels), "--budget", f"{plan.budget:g}", "--out", str(plan.model),
                "--plot", str(plan.folder / "calibration.png"),
                *(["--set-config", str(plan.set_config)] if plan.set_config is not None else []), *common]
    raise ValueError(f"unknown step {step!r}")


def check_labels(counts: dict[str, int], labels: Path) -> None:
    """Enough labels to train on, or an EnrolError that says what is missing."""
    mine = counts.get("my_dog", 0)
    other = counts.get("other_dog", 0) + counts.get("not_bark", 0)
    if mine < MIN_MY_DOG or other < MIN_OTHER:
        raise EnrolError(f"{labels}: {mine} 'my dog' and {other} other label(s); training needs at least "
                         f"{MIN_MY_DOG} of each (record more with a longer --day-minutes and --redo day, or "
                         "label more) and run enrol again")


def recorded_minutes(folder: Path) -> float:
    """Minutes of audio ``record --keep all`` has written and indexed in ``folder``."""
    from ..live.record import read_index

    return sum(float(e.get("duration_s") or 0.0) for e in read_index(folder) if e.get("kind") == "audio") / 60


@dataclass(frozen=True)
class StepResult:
    returncode: int
    interrupted: bool
    minutes: float  # wall-clock minutes the step ran


def run_step(args: Sequence[str]) -> StepResult:
    """Run ``barkwatch ARGS`` with this terminal. Ctrl-C (or SIGINT/SIGTERM to this process) is passed on
    and the child is waited for, so a recording closes its files before ``enrol`` records how far it got."""
    began = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "barkwatch", *args])
    interrupted = False

    def on_stop(signum, frame) -> None:
        raise KeyboardInterrupt

    # Installed, not inherited: a shell that starts enrol in the background leaves SIGINT ignored, and Python
    # then installs no KeyboardInterrupt of its own (record and listen install theirs in the same way).
    previous = {s: signal.signal(s, on_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:
                interrupted = True
                if child.poll() is None:
                    child.send_signal(signal.SIGINT)  # a terminal's Ctrl-C reached it too: once more is harmless
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return StepResult(code, interrupted, (time.monotonic() - began) / 60)
