"""Listing input devices and resolving ``--device``, on device lists recorded in the shape sounddevice returns."""

from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from barkwatch import cli
from barkwatch.live import devices as devices_module
from barkwatch.live.devices import (DeviceError, FileSource, InputDevice, NetworkSource, format_table, inputs_from,
                                    list_inputs, query_portaudio, resolve, why_no_inputs)

from helpers import REPO

DATA = Path(__file__).parent / "data"


def recorded(machine: str) -> tuple[list[dict], list[dict], int]:
    snapshot = json.loads((DATA / f"devices-{machine}.json").read_text())
    return snapshot["devices"], snapshot["hostapis"], snapshot["default_input"]


@pytest.fixture
def pi() -> list[InputDevice]:
    return list_inputs(lambda: recorded("raspberrypi"))


@pytest.fixture
def desktop() -> list[InputDevice]:
    return list_inputs(lambda: recorded("desktop"))


def error(spec: str, inputs: list[InputDevice]) -> str:
    with pytest.raises(DeviceError) as caught:
        resolve(spec, inputs)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# Listing


def test_inputs_keep_only_devices_with_input_channels(pi, desktop):
    assert [d.index for d in pi] == [1, 2, 4]
    assert [d.index for d in desktop] == [0, 4, 6, 7, 9]
    usb = desktop[1]
    assert usb == InputDevice(index=4, name="USB Audio Device: - (hw:1,0)", hostapi="ALSA", channels=1,
                              default_samplerate=48000.0, is_default=False)


def test_default_input_is_marked_once(pi, desktop):
    assert [d.index for d in pi if d.is_default] == [1]
    assert [d.index for d in desktop if d.is_default] == [9]


def test_host_api_name_comes_from_the_device_hostapi_index():
    devices = [{"name": "system", "index": 0, "hostapi": 1, "max_input_channels": 2, "max_output_channels": 2,
                "default_samplerate": 48000.0}]
    hostapis = [{"name": "ALSA"}, {"name": "JACK Audio Connection Kit"}]
    assert inputs_from(devices, hostapis, -1)[0].hostapi == "JACK Audio Connection Kit"


def test_no_devices_at_all():
    inputs = list_inputs(lambda: recorded("none"))
    assert inputs == []
    assert "none" in error("default", inputs)
    assert error("usb", inputs) == "no input device matches 'usb'; inputs: none"


def test_portaudio_missing_is_a_device_error_saying_what_to_install(monkeypatch):
    class NoPortAudio:  # what importing sounddevice does when libportaudio2 is not installed
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")
            return None

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoPortAudio, *sys.meta_path])
    with pytest.raises(DeviceError, match=r"PortAudio library not found\): install libportaudio2"):
        query_portaudio()


# Resolving --device


def test_integer_is_the_portaudio_index(desktop, pi):
    assert resolve("4", desktop).name == "USB Audio Device: - (hw:1,0)"
    assert resolve("0", desktop).name == "HDA Intel PCH: ALC892 Analog (hw:0,0)"
    assert resolve("4", pi).name == "USB PnP Sound Device: USB Audio (hw:10,0)"  # not the 5th input


def test_index_of_an_output_only_or_missing_device_is_refused(desktop):
    assert error("3", desktop).startswith("no input device has index 3; inputs: 0 'HDA Intel PCH")  # HDMI out
    assert error("42", desktop).startswith("no input device has index 42;")
    assert error("-1", desktop).startswith("no input device has index -1;")


def test_exact_name_case_sensitive_first():
    inputs = [InputDevice(0, "Mic", "ALSA", 1, 48000.0, False), InputDevice(1, "mic", "ALSA", 1, 48000.0, False),
              InputDevice(2, "Mic array", "ALSA", 4, 48000.0, False)]
    assert resolve("Mic", inputs).index == 0  # exact, although "mic" and "Mic array" also contain it
    assert resolve("mic", inputs).index == 1
    assert resolve("MIC ARRAY", inputs).index == 2  # case-insensitive exact
    assert "matches 2 input devices" in error("MIC", inputs)  # "Mic" and "mic" equally


def test_exact_name(desktop, pi):
    assert resolve("pulse", desktop).index == 7
    assert resolve("USB Audio Device: USB Audio (hw:1,0)", pi).index == 1  # also a prefix of hw:1,1's name


def test_same_exact_name_under_two_host_apis_is_ambiguous():
    inputs = [InputDevice(1, "Microphone (USB PnP Sound Device)", "MME", 1, 44100.0, True),
              InputDevice(7, "Microphone (USB PnP Sound Device)", "Windows WASAPI", 1, 48000.0, False)]
    message = error("Microphone (USB PnP Sound Device)", inputs)
    assert "1 'Microphone (USB PnP Sound Device)' (MME)" in message
    assert "7 'Microphone (USB PnP Sound Device)' (Windows WASAPI)" in message


def test_alsa_card_alone_is_device_0_of_exactly_that_card(pi):
    assert resolve("hw:1", pi).index == 1  # (hw:1,0): not hw:1,1 and not hw:10,0
    assert resolve("hw:10", pi).index == 4
    assert resolve("hw:1,0", pi).index == 1
    assert resolve("hw:1,1", pi).index == 2
    assert resolve("hw:10,0", pi).index == 4


def test_alsa_id_never_falls_back_to_a_substring(pi, desktop):
    # "hw:0" is a substring of "(hw:0,0)" and "hw:1" of "(hw:10,0)": neither may count.
    message = error("hw:0", pi)  # card 0 is the headphone output
    assert message.startswith("no input device matches 'hw:0' (ALSA card 0, device 0); inputs: 1 'USB Audio")
    assert error("hw:10,1", pi).startswith("no input device matches 'hw:10,1' (ALSA card 10, device 1);")
    assert error("hw:0,3", desktop).startswith("no input device matches 'hw:0,3'")  # HDMI: output only
    assert resolve("hw:0", desktop).index == 0


def test_unique_substring_case_insensitive(desktop, pi):
    assert resolve("usb", desktop).index == 4
    assert resolve("alc892", desktop).index == 0  # the digital ALC892 is output only, so this is unique
    assert resolve("PNP", pi).index == 4
    assert resolve("#1", pi).index == 2


def test_ambiguous_substring_lists_the_candidates(pi):
    message = error("usb audio", pi)
    assert message.startswith("'usb audio' matches 3 input devices: ")
    for index, name in [(1, "USB Audio Device: USB Audio (hw:1,0)"), (2, "USB Audio Device: USB Audio #1 (hw:1,1)"),
                        (4, "USB PnP Sound Device: USB Audio (hw:10,0)")]:
        assert f"{index} '{name}'" in message
    assert message.endswith("give the index or the full name")


def test_default_is_portaudios_default_input(pi, desktop):
    assert resolve("default", pi).index == 1  # no ALSA device is called "default" with inputs on the Pi
    assert resolve("default", desktop).index == 9


def test_default_when_there_is_none(desktop):
    no_default = [InputDevice(d.index, d.name, d.hostapi, d.channels, d.default_samplerate, False)
                  for d in desktop]
    assert error("default", no_default).startswith("there is no default input device; inputs: 0 'HDA")


def test_file_source(tmp_path, monkeypatch, desktop):
    recording = tmp_path / "bark.wav"
    recording.write_bytes(b"RIFF")
    assert resolve(f"file:{recording}", desktop) == FileSource(recording)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve("file:~/bark.wav", desktop) == FileSource(recording)


def test_file_source_must_exist(tmp_path, desktop):
    missing = tmp_path / "nothing.wav"
    assert error(f"file:{missing}", desktop) == f"file:{missing}: no such file"
    assert error(f"file:{tmp_path}", desktop) == f"file:{tmp_path}: is not a file"
    assert "needs a path" in error("file:", desktop)


def test_a_url_is_a_network_stream_read_through_ffmpeg(desktop):
    ffmpeg = lambda name: "/usr/bin/ffmpeg"  # noqa: E731
    for url in ("rtsp://admin:pw@192.168.1.20:554/stream1", "http://pi.local:8000/mic.ogg", "https://x/y",
                "srt://10.0.0.2:9000", "udp://@239.0.0.1:1234"):
        assert resolve(url, desktop, which=ffmpeg) == NetworkSource(url)
    assert resolve("default", desktop, which=ffmpeg).name == "default"  # names are never URLs
    with pytest.raises(DeviceError) as e:
        resolve("rtsp://cam/1", desktop, which=lambda name: None)
    assert str(e.value) == "rtsp:// streams are read through ffmpeg, which is not installed: sudo apt install ffmpeg"


def test_not_found_names_the_spec_and_lists_every_input_on_one_line(desktop):
    assert error("zoom h1", desktop) == (
        "no input device matches 'zoom h1'; inputs: 0 'HDA Intel PCH: ALC892 Analog (hw:0,0)', "
        "4 'USB Audio Device: - (hw:1,0)', 6 'pipewire', 7 'pulse', 9 'default'")
    assert error("", desktop).startswith("no input device matches ''; inputs: 0 ")


# The table and the command


def test_table_marks_the_default_and_aligns_columns(desktop):
    lines = format_table(desktop).splitlines()
    assert lines[0].split() == ["index", "name", "host", "API", "inputs", "rate"]
    assert len(lines) == 1 + len(desktop)
    assert [line[0] for line in lines[1:]] == [" ", " ", " ", " ", "*"]  # the default is index 9, last
    assert lines[5].split()[:2] == ["*", "9"] and lines[5].endswith("64  44100")
    assert "USB Audio Device: - (hw:1,0)" in lines[2] and lines[2].endswith("1  48000")
    starts = {line.index("ALSA") for line in lines[1:]}
    assert len(starts) == 1  # the host API column is aligned
    assert format_table([]).split() == ["index", "name", "host", "API", "inputs", "rate"]


def test_why_no_inputs(tmp_path):
    cards = tmp_path / "cards"
    cards.write_text("--- no soundcards ---\n")
    assert "no sound card and no sound server" in why_no_inputs(cards, {"XDG_RUNTIME_DIR": str(tmp_path)})
    assert "no sound card" in why_no_inputs(tmp_path / "absent", {"XDG_RUNTIME_DIR": str(tmp_path)})
    assert why_no_inputs(cards, {"XDG_RUNTIME_DIR": str(tmp_path), "PULSE_SERVER": "unix:/x"}) == ""
    (tmp_path / "pipewire-0").touch()
    assert why_no_inputs(cards, {"XDG_RUNTIME_DIR": str(tmp_path)}) == ""
    (tmp_path / "pipewire-0").unlink()
    cards.write_text(" 0 [PCH            ]: HDA-Intel - HDA Intel PCH\n")
    assert "'audio' group" in why_no_inputs(cards, {"XDG_RUNTIME_DIR": str(tmp_path)})


def test_devices_command_table_and_json(monkeypatch):
    monkeypatch.setattr(devices_module, "query_portaudio", lambda: recorded("desktop"))
    runner = CliRunner()
    result = runner.invoke(cli.app, ["devices"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("*") and "default" in result.stdout.splitlines()[-1]
    result = runner.invoke(cli.app, ["devices", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [d["index"] for d in listed] == [0, 4, 6, 7, 9]
    assert listed[4] == {"index": 9, "name": "default", "hostapi": "ALSA", "channels": 64,
                         "default_samplerate": 44100.0, "is_default": True}


def test_devices_command_with_no_inputs(monkeypatch):
    monkeypatch.setattr(devices_module, "query_portaudio", lambda: recorded("none"))
    result = CliRunner().invoke(cli.app, ["devices", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert result.stderr.startswith("barkwatch: no input devices found")
    result = CliRunner().invoke(cli.app, ["devices"])  # one line, not an empty table
    assert result.exit_code == 0 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("barkwatch: no input devices found")


def test_devices_command_error_is_one_line_exit_2(monkeypatch):
    def broken():
        raise DeviceError("PortAudio cannot be loaded (PortAudio library not found): install libportaudio2")

    monkeypatch.setattr(devices_module, "query_portaudio", broken)
    result = CliRunner().invoke(cli.app, ["devices"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == ("barkwatch: error: PortAudio cannot be loaded (PortAudio library not found): "
                             "install libportaudio2\n")


@pytest.mark.skipif(ctypes.util.find_library("portaudio") is None,
                    reason="libportaudio2 is not installed (scripts/setup installs it)")
def test_devices_json_in_a_fresh_process():
    result = subprocess.run([sys.executable, "-m", "barkwatch", "devices", "--json"], capture_output=True,
                            text=True, cwd=REPO, timeout=60, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert isinstance(listed, list)
    for device in listed:  # this machine may have none: [] is valid
        assert set(device) == {f.name for f in fields(InputDevice)}
        assert device["channels"] > 0
    if not listed:
        assert "no input devices found" in result.stderr
    assert sum(d["is_default"] for d in listed) <= 1
