"""Input devices: what PortAudio lists, and resolving a ``--device`` value to one of them (or to a file).

No torch here, and sounddevice is imported only when the devices are queried, so everything else (and the
tests, which resolve against recorded lists) runs without PortAudio.

``--device`` accepts, tried in this order:

- ``file:PATH``: a recording played through the capture path (demos, tests); the file must exist.
- a URL (``rtsp://``, ``http://``, ``https://``, ``rtmp://``, ``srt://``, ``udp://``, ...): a network stream
  (a camera's audio, another machine's microphone), read through ffmpeg, which must be installed.
- ``default``: PortAudio's default input (what ``sounddevice.InputStream()`` opens with no device).
- an integer: the device with that PortAudio index, which must have input channels.
- an exact name, case-sensitive, then case-insensitive.
- an ALSA id ``hw:N`` or ``hw:N,M``: the device whose name holds ``(hw:N,M)``, ``hw:N`` meaning ``hw:N,0``.
  Card and device numbers must both be equal, so ``hw:1`` never picks ``hw:10,0`` or ``hw:1,1``. An ALSA id
  that matches nothing is an error; it never falls back to a substring search.
- a case-insensitive substring of exactly one input's name (several: an error listing them).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence


class DeviceError(Exception):
    """A device that cannot be listed or found; the message is one line that says what to do."""


@dataclass(frozen=True)
class InputDevice:
    index: int  # PortAudio's device index, valid until PortAudio re-enumerates
    name: str
    hostapi: str  # the host API's name: ALSA, JACK Audio Connection Kit, ...
    channels: int  # most input channels
    default_samplerate: float
    is_default: bool  # PortAudio's default input


@dataclass(frozen=True)
class FileSource:
    """A recording to feed through the capture path instead of a microphone (``--device file:PATH``)."""

    path: Path


@dataclass(frozen=True)
class NetworkSource:
    """A network stream read through ffmpeg instead of a microphone (``--device rtsp://...``)."""

    url: str


# What PortAudio reports: query_devices(), query_hostapis(), and the default input's index (-1: none).
Snapshot = tuple[Sequence[Mapping], Sequence[Mapping], int]

# PortAudio's ALSA host API names a hardware PCM "<card name>: <PCM name> (hw:<card>,<device>)".
_ALSA_NAME_ID = re.compile(r"\(hw:(\d+),(\d+)\)")
_ALSA_SPEC = re.compile(r"hw:(\d+)(?:,(\d+))?")
_INDEX_SPEC = re.compile(r"-?[0-9]+")
_URL_SPEC = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


def inputs_from(devices: Sequence[Mapping], hostapis: Sequence[Mapping], default_input: int) -> list[InputDevice]:
    """The devices with input channels, in PortAudio's order, from what ``sounddevice.query_devices()`` and
    ``query_hostapis()`` return; ``default_input`` is the default input's index (-1 when there is none)."""
    return [InputDevice(index=int(d["index"]), name=str(d["name"]), hostapi=str(hostapis[d["hostapi"]]["name"]),
                        channels=int(d["max_input_channels"]), default_samplerate=float(d["default_samplerate"]),
                        is_default=int(d["index"]) == default_input)
            for d in devices if d["max_input_channels"] > 0]


def query_portaudio() -> Snapshot:
    """Ask PortAudio (through sounddevice) for its devices, host APIs and default input.

    PortAudio enumerates devices once, when sounddevice is imported: a device plugged in later appears only
    in a new process (or after re-initialising PortAudio).
    """
    try:
        import sounddevice as sd
    except ImportError as e:
        raise DeviceError(f"python-sounddevice is not installed ({e}): run scripts/setup") from e
    except OSError as e:  # sounddevice could not find or load libportaudio.so.2
        raise DeviceError(f"PortAudio cannot be loaded ({e}): install libportaudio2 "
                          "(sudo apt-get install libportaudio2, or run scripts/setup)") from e
    except Exception as e:  # noqa: BLE001 - Pa_Initialize failing raises sounddevice's own PortAudioError
        raise DeviceError(f"PortAudio cannot start ({e}): check the sound system (alsa, pulseaudio)") from e
    try:
        devices = list(sd.query_devices())
        hostapis = list(sd.query_hostapis())
    except sd.PortAudioError as e:
        raise DeviceError(f"PortAudio cannot list the devices ({e})") from e
    try:
        # Honours sounddevice.default.device, else PortAudio's default input.
        default_input = int(sd.query_devices(kind="input")["index"])
    except (sd.PortAudioError, ValueError):  # no default input device
        default_input = -1
    return devices, hostapis, default_input


def list_inputs(query: Callable[[], Snapshot] | None = None) -> list[InputDevice]:
    """The input devices PortAudio lists (``query`` replaces PortAudio, for tests). Raises ``DeviceError``
    when PortAudio cannot be loaded."""
    return inputs_from(*(query or query_portaudio)())


def is_network(spec: str) -> bool:
    """Whether ``--device`` names a network stream (a URL) rather than a microphone or a file."""
    return bool(_URL_SPEC.fullmatch(spec))


def resolve(spec: str, inputs: Sequence[InputDevice],
            which: Callable[[str], str | None] = shutil.which) -> InputDevice | FileSource | NetworkSource:
    """The input that ``spec`` names (the rules are in this module's docstring). Raises ``DeviceError`` with
    one line naming ``spec`` and listing the inputs when nothing or several inputs match, or for a URL when
    ``which`` finds no ffmpeg."""
    if spec.startswith("file:"):
        return _file_source(spec)
    if is_network(spec):
        if which("ffmpeg") is None:
            raise DeviceError(f"{spec.split('://')[0]}:// streams are read through ffmpeg, which is not installed: "
                              "sudo apt install ffmpeg")
        return NetworkSource(spec)
    if spec == "default":
        chosen = [d for d in inputs if d.is_default]
        if not chosen:
            raise DeviceError(f"there is no default input device; inputs: {_compact(inputs)}")
        return chosen[0]
    if _INDEX_SPEC.fullmatch(spec):
        chosen = [d for d in inputs if d.index == int(spec)]
        if not chosen:
            raise DeviceError(f"no input device has index {spec}; inputs: {_compact(inputs)}")
        return chosen[0]
    for same in (lambda name: name == spec, lambda name: name.casefold() == spec.casefold()):
        chosen = [d for d in inputs if same(d.name)]
        if chosen:
            return _one(spec, chosen)
    alsa = _ALSA_SPEC.fullmatch(spec)
    if alsa:
        wanted = (int(alsa[1]), int(alsa[2] or 0))
        chosen = [d for d in inputs if wanted in _alsa_ids(d.name)]
        if not chosen:
            raise DeviceError(f"no input device matches {spec!r} (ALSA card {wanted[0]}, device {wanted[1]}); "
                              f"inputs: {_compact(inputs)}")
        return _one(spec, chosen)
    chosen = [d for d in inputs if spec.casefold() in d.name.casefold()] if spec else []
    if not chosen:
        raise DeviceError(f"no input device matches {spec!r}; inputs: {_compact(inputs)}")
    return _one(spec, chosen)


def format_table(inputs: Sequence[InputDevice]) -> str:
    """The inputs as a table for ``barkwatch devices``: index, name, host API, input channels, default rate;
    ``*`` marks the default input. With no inputs, the header alone."""
    rows = [("", "index", "name", "host API", "inputs", "rate")]
    rows += [("*" if d.is_default else "", str(d.index), d.name, d.hostapi, str(d.channels),
              f"{d.default_samplerate:g}") for d in inputs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {1, 4, 5}  # numbers align right
    return "\n".join("  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                              for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows)


def why_no_inputs(cards: Path = Path("/proc/asound/cards"), env: Mapping[str, str] = os.environ) -> str:
    """A likely reason PortAudio lists no inputs, as a clause for one line; empty when nothing stands out.

    PortAudio on Linux reaches microphones through ALSA: a sound card (``/proc/asound/cards``) or a sound
    server (PulseAudio or PipeWire, found by its socket) must be visible to this process.
    """
    try:
        listed = cards.read_text()
    except OSError:  # no ALSA in this kernel or container
        listed = ""
    has_card = bool(listed.strip()) and "no soundcards" not in listed
    runtime = Path(env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    has_server = bool(env.get("PULSE_SERVER")) or any(
        (runtime / socket).exists() for socket in ("pulse/native", "pipewire-0"))
    if not has_card and not has_server:
        return "no sound card and no sound server (PulseAudio, PipeWire) is visible to this process"
    if has_card and not has_server:
        return "a sound card is visible but PortAudio could open no capture device on it (no microphone, or " \
               "this user is not in the 'audio' group)"
    return ""


def _file_source(spec: str) -> FileSource:
    raw = spec[len("file:"):]
    if not raw:
        raise DeviceError("file: needs a path to a recording, e.g. file:samples/example.ogg")
    path = Path(raw).expanduser()
    if not path.is_file():
        raise DeviceError(f"{spec}: {'is not a file' if path.exists() else 'no such file'}")
    return FileSource(path)


def _alsa_ids(name: str) -> set[tuple[int, int]]:
    return {(int(card), int(device)) for card, device in _ALSA_NAME_ID.findall(name)}


def _one(spec: str, chosen: Sequence[InputDevice]) -> InputDevice:
    if len(chosen) > 1:
        raise DeviceError(f"{spec!r} matches {len(chosen)} input devices: {_compact(chosen, hostapi=True)}; "
                          "give the index or the full name")
    return chosen[0]


def _compact(inputs: Sequence[InputDevice], hostapi: bool = False) -> str:
    if not inputs:
        return "none"
    # Names are PortAudio's: one line each, so the whole message stays on one line.
    return ", ".join(f"{d.index} '{d.name}'" + (f" ({d.hostapi})" if hostapi else "") for d in inputs)
