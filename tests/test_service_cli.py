"""`barkwatch listen` as a service, end to end in a subprocess: configuration and its errors, the daily event
log and clips in the state folder, `barkwatch events` and `status` reading them, sd_notify READY and watchdog
pets on a real datagram socket, SIGHUP reloading, notifications to a real HTTP server and mosquitto broker, and
a full disk under the clips that does not stop detection."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import pytest

from helpers import REPO, SAMPLES, fill, run_cli
from servers import Broker, HttpRecorder, Subscriber

EXAMPLE = SAMPLES / "example.ogg"
TRUTH = json.loads((SAMPLES / "example.json").read_text())


def first_bark_excerpt(tmp_path: Path, seconds: float = 8.0) -> tuple[Path, dict]:
    """The example recording's first ``seconds``: one bark (its truth returned), little else, so a test plays
    it in real time quickly."""
    audio, rate = sf.read(str(EXAMPLE), dtype="float32")
    out = tmp_path / "excerpt.flac"
    sf.write(str(out), audio[: int(seconds * rate)], rate)
    barks = [b for b in TRUTH["barks"] if b["offset_s"] <= seconds]
    assert barks, "the example's first bark moved: pick a longer excerpt"
    return out, barks[0]


def start_listen(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    out, err = open(tmp_path / "listen.stdout", "w"), open(tmp_path / "listen.stderr", "w")
    return subprocess.Popen([sys.executable, "-m", "barkwatch", "listen", *args], cwd=REPO,
                            env=env or dict(os.environ), stdout=out, stderr=err, stdin=subprocess.DEVNULL)


def stderr(tmp_path: Path) -> str:
    return (tmp_path / "listen.stderr").read_text()


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_bad_config_key_exits_2_naming_the_key_and_the_closest_one(tmp_path):
    config = write_config(tmp_path / "c.yaml", "detector:\n  thresold: 0.9\n")
    for command in (["listen", "--device", f"file:{EXAMPLE}"], ["config"]):
        result = run_cli(*command, "--config", str(config), timeout=60)
        assert result.returncode == 2, result.stderr
        line = result.stderr.strip()
        assert "\n" not in line
        assert "detector.thresold" in line and "did you mean detector.threshold?" in line


def test_config_show_reports_each_value_and_where_it_came_from(tmp_path):
    config = write_config(tmp_path / "c.yaml", "detector:\n  threshold: 0.9\n")
    env = dict(os.environ, BARKWATCH_DETECTOR_PATIENCE="3")
    result = subprocess.run([sys.executable, "-m", "barkwatch", "config", "--config", str(config)], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(l.strip().startswith("threshold: 0.9") and str(config) in l for l in lines)
    assert any(l.strip().startswith("patience: 3") and "BARKWATCH_DETECTOR_PATIENCE" in l for l in lines)
    assert any(l.strip().startswith("release_s: 1.0") and "default" in l for l in lines)


@pytest.mark.live
def test_listen_keeps_a_daily_log_clips_and_a_status_that_events_and_status_read(tmp_path):
    excerpt, bark = first_bark_excerpt(tmp_path)
    state = tmp_path / "state"
    proc = start_listen(tmp_path, "--device", f"file:{excerpt}", "--state-dir", str(state))
    assert proc.wait(timeout=60) == 0, stderr(tmp_path)

    logs = sorted((state / "events").glob("barks-*.jsonl"))
    assert len(logs) == 1
    records = [json.loads(line) for line in logs[0].read_text().splitlines()]
    assert [r["event"] for r in records] == ["bark_start", "bark"]
    assert logs[0].name == f"barks-{records[0]['start'][:10]}.jsonl"
    clip = Path(records[1]["clip"])
    assert records[0]["clip"] == records[1]["clip"] and clip.is_relative_to(state / "clips")
    audio, rate = sf.read(str(clip))
    # The event with 2 s of pre-roll (less where the excerpt begins) and 2 s of post-roll (less at its end).
    expected = min(records[1]["end_offset_s"] + 2.0, 8.0) - max(records[1]["offset_s"] - 2.0, 0.0)
    assert abs(len(audio) / rate - expected) < 0.1
    assert records[1]["offset_s"] <= bark["onset_s"] + 0.5

    shown = run_cli("events", "--dir", str(state / "events"), timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert clip.name in shown.stdout and records[1]["start"][11:19] in shown.stdout

    status = run_cli("status", "--state-dir", str(state), timeout=60)
    assert status.returncode == 3  # it has stopped
    assert "not running" in status.stdout and "events today: 1" in status.stdout
    as_json = json.loads(run_cli("status", "--state-dir", str(state), "--json", timeout=60).stdout)
    assert as_json["clips_files"] == 1 and as_json["status"] == "stopped" and not as_json["running"]


@pytest.mark.live
def test_sd_notify_ready_watchdog_and_stopping_reach_a_real_socket(tmp_path):
    excerpt, _ = first_bark_excerpt(tmp_path, seconds=4.0)
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    env = dict(os.environ, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="1000000")  # pet every 0.5 s
    proc = start_listen(tmp_path, "--device", f"file:{excerpt}", "--state-dir", str(tmp_path / "s"), env=env)
    env["WATCHDOG_PID"] = str(proc.pid)
    messages: list[tuple[float, str]] = []
    while proc.poll() is None or len(messages) < 1:
        try:
            messages.append((time.monotonic(), sock.recv(4096).decode()))
        except socket.timeout:
            if proc.poll() is not None:
                break
    while True:  # what came after the exit
        try:
            messages.append((time.monotonic(), sock.recv(4096).decode()))
        except socket.timeout:
            break
    sock.close()
    assert proc.returncode == 0, stderr(tmp_path)
    texts = [m for _, m in messages]
    ready = next(i for i, m in enumerate(texts) if "READY=1" in m)
    pets = [t for t, m in messages[ready:] if m == "WATCHDOG=1"]
    assert len(pets) >= 4  # 4 s of audio, a pet every 0.5 s
    assert max(np.diff(pets)) < 1.0  # never as late as the watchdog's timeout
    assert any("STOPPING=1" in m for m in texts[ready:])


@pytest.mark.live
def test_sighup_reloads_the_event_rules_and_a_bad_reload_keeps_listening(tmp_path):
    config = write_config(tmp_path / "c.yaml", "detector:\n  threshold: 0.8\n")
    proc = start_listen(tmp_path, "--device", f"file:{EXAMPLE}", "--config", str(config), "--state-dir",
                        str(tmp_path / "s"))
    try:
        wait_for(lambda: "listening to" in stderr(tmp_path), 60, "listen to start")
        write_config(config, "detector:\n  threshold: 0.95\n  patience: 3\naudio:\n  channel: 0\n")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded the configuration" in stderr(tmp_path), 10, "the reload")
        # The worker takes the new rules up before its next window.
        wait_for(lambda: "threshold 0.950, patience 3" in stderr(tmp_path), 2, "the new event rules")
        err = stderr(tmp_path)
        assert "audio.channel changed; these take effect after a restart" in err
        write_config(config, "detector:\n  threshold: high\n")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "previous configuration" in stderr(tmp_path), 10, "the refused reload")
        assert "detector.threshold" in stderr(tmp_path)
        assert proc.poll() is None  # still listening
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0, stderr(tmp_path)


@pytest.mark.live
def test_notifications_reach_a_real_webhook_and_mosquitto(tmp_path):
    excerpt, _ = first_bark_excerpt(tmp_path)
    (tmp_path / "broker").mkdir()
    with HttpRecorder() as http, Broker(tmp_path / "broker") as broker, \
            Subscriber(broker.port, ("barkwatch/#", "homeassistant/#")) as sub:
        config = write_config(tmp_path / "c.yaml", f"""
notify:
  webhook:
    url: {http.url}
    on: [bark_start, bark]
    cooldown_s: 0
  mqtt:
    host: 127.0.0.1
    port: {broker.port}
""")
        proc = start_listen(tmp_path, "--device", f"file:{excerpt}", "--config", str(config), "--state-dir",
                            str(tmp_path / "s"))
        assert proc.wait(timeout=60) == 0, stderr(tmp_path)
        kinds = [r.json()["event"] for r in http.wait_for_requests(2)]
        assert kinds == ["bark_start", "bark"]
        sub.wait_for("homeassistant/binary_sensor/barkwatch/barking/config")
        sub.wait_for("barkwatch/barking", "ON")
        sub.wait_for("barkwatch/barking", "OFF")
        assert sub.wait_for("barkwatch/barks_today", "1").payload == "1"


@pytest.fixture
def tiny_disk(tmpfs):
    return tmpfs("256k")


@pytest.mark.live
def test_a_full_disk_under_the_clips_skips_them_with_one_warning_and_detection_goes_on(tmp_path, tiny_disk):
    fill(tiny_disk / "filler")
    config = write_config(tmp_path / "c.yaml", f"paths:\n  clips_dir: {tiny_disk / 'clips'}\n")
    state = tmp_path / "state"
    # 23 s of the example holding its second and third barks (both loud): two events, each clip too big for
    # what is left.
    audio, rate = sf.read(str(EXAMPLE), dtype="float32")
    recording = tmp_path / "two-barks.flac"
    sf.write(str(recording), audio[12 * rate: 35 * rate], rate)
    proc = start_listen(tmp_path, "--device", f"file:{recording}", "--config", str(config), "--state-dir",
                        str(state))
    assert proc.wait(timeout=120) == 0, stderr(tmp_path)
    records = [json.loads(line) for f in (state / "events").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert sum(r["event"] == "bark" for r in records) == 2
    warnings = [line for line in stderr(tmp_path).splitlines() if "WARNING" in line and "clip" in line]
    assert len(warnings) == 1, stderr(tmp_path)
    assert not list((tiny_disk / "clips").rglob("*.flac"))


def test_events_reads_a_log_file_that_detect_wrote(tmp_path):
    """`events FILE` reads one log file, as web and report do: all of it unless --since says otherwise."""
    log = tmp_path / "example.jsonl"
    assert run_cli("detect", str(SAMPLES / "example.ogg"), "--events", str(log), "-q").returncode == 0
    table = run_cli("events", str(log))
    assert table.returncode == 0, table.stderr
    rows = [line for line in table.stdout.splitlines()[1:] if line.strip()]
    assert len(rows) == 5 and all(" s " in row for row in rows)
    records = [json.loads(line) for line in run_cli("events", str(log), "--json").stdout.splitlines()]
    assert [r["event"] for r in records].count("bark") == 5
    gone = run_cli("events", str(tmp_path / "absent.jsonl"))
    assert gone.returncode == 1 and "absent.jsonl: no such file or folder" in gone.stderr
