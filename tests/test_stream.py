"""A network stream as listen's device: a real HTTP audio stream served by ffmpeg itself and read through
ffmpeg, with the stream going away and coming back, and a URL that cannot be reached."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from test_listen import BARKING, HOP_S, Listen, wall

from barkwatch.live.capture import ffmpeg_command, redact_url

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is missing: apt-get install ffmpeg "
                                  "(or run scripts/setup --tests)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Whether a socket listens on 127.0.0.1:``port``, read from /proc/net/tcp: connecting to find out would
    be the one client ffmpeg's server serves."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            return True
    return False


def serve(audio: Path, port: int) -> subprocess.Popen:
    """ffmpeg serving ``audio`` in real time as an Ogg Vorbis stream over HTTP, to one client, then ending;
    returned once it listens (on a busy machine ffmpeg takes a while to start)."""
    server = subprocess.Popen([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-i", str(audio),
                               "-c:a", "libvorbis", "-f", "ogg", "-listen", "1", f"http://127.0.0.1:{port}/live.ogg"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not listening(port):
        assert server.poll() is None, server.stderr.read()
        assert time.monotonic() < deadline, f"ffmpeg never listened on port {port}"
        time.sleep(0.02)
    return server


@pytest.mark.live
@needs_ffmpeg
def test_barks_in_a_network_stream_are_found_and_a_stream_that_ends_is_reopened_when_it_is_back(tmp_path):
    port = free_port()
    url = f"http://camera:s3cret@127.0.0.1:{port}/live.ogg"
    server = serve(BARKING[0], port)
    served = time.time()
    listen = Listen(tmp_path, "--device", url)
    try:
        listen.wait_for(lambda: any(r["event"] == "bark_start" for r in listen.records()), "the first bark", 30)
        seen = time.time()
        assert server.wait(timeout=30) == 0, server.stderr.read()
        listen.wait_stderr(": lost (", timeout=30)  # the served file ended: an outage, not the end
        server = serve(BARKING[1], port)
        listen.wait_stderr("listening again", timeout=60)
        listen.wait_for(lambda: sum(r["event"] == "bark" for r in listen.records()) >= 2, "the second bark", 30)
        code, _ = listen.stop()
    finally:
        listen.kill()
        server.kill()
    assert code == 0, listen.stderr()
    starts = [r for r in listen.records() if r["event"] == "bark_start"]
    assert len(starts) == 2, starts
    # Each clip barks from its first window: found from the start of its stream, at a real time.
    assert [r["offset_s"] <= 2 * HOP_S for r in starts] == [True, True], starts
    assert served <= wall(starts[0]) <= seen, (starts[0], served, seen)
    hidden = f"http://camera:***@127.0.0.1:{port}/live.ogg"
    assert {r["source"] for r in listen.records()} == {hidden}
    err = listen.stderr()
    assert f"listening to {hidden} through ffmpeg at 22,050 Hz" in err
    assert "s3cret" not in err + listen.stdout() + listen.events.read_text() and "Traceback" not in err
    # Both clips bark to their end, so each bark record is written as its stream ends: two outages.
    assert "2 outage(s)" in listen.stdout()


@needs_ffmpeg
def test_a_stream_that_cannot_be_reached_is_one_line_naming_it_without_its_password(tmp_path):
    url = f"http://camera:s3cret@127.0.0.1:{free_port()}/live.ogg"
    listen = Listen(tmp_path, "--device", url)
    assert listen.proc.wait(timeout=60) == 2
    err = listen.stderr().strip()
    assert err == (f"barkwatch: error: {redact_url(url)}: cannot open the stream (Connection refused); check the "
                   "URL, and that the camera or server is up and reachable from here"), err


def test_the_ffmpeg_command_mixes_to_mono_float32_and_asks_rtsp_for_tcp():
    command = ffmpeg_command("rtsp://cam.local/stream1", 22050)
    assert command[:1] == ["ffmpeg"] and "-nostdin" in command
    assert command[command.index("-rtsp_transport") + 1] == "tcp"
    assert command[command.index("-i") + 1] == "rtsp://cam.local/stream1"
    assert command[-8:] == ["-ac", "1", "-ar", "22050", "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1"][-8:]
    assert "-rtsp_transport" not in ffmpeg_command("http://host/live.ogg", 16000)


def test_passwords_in_stream_urls_are_hidden():
    assert redact_url("rtsp://admin:hunter2@192.168.1.20:554/h264") == "rtsp://admin:***@192.168.1.20:554/h264"
    assert redact_url("http://host/live.ogg") == "http://host/live.ogg"
    assert redact_url("rtsp://admin@cam/1") == "rtsp://admin@cam/1"
