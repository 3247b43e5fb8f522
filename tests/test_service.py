"""barkwatch.service.systemd: sd_notify over real AF_UNIX sockets, the watchdog's cadence, the status file, the status
text, and the installer's dry run."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from barkwatch.service import systemd as service
from barkwatch.service.systemd import ServiceState, StateWriter, Watchdog

REPO = Path(__file__).resolve().parents[1]


# --- sd_notify

@pytest.fixture(params=["path", "abstract"])
def notify(request, tmp_path):
    """A datagram socket standing in for systemd's, and the environment that points at it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(2)
    if request.param == "path":
        address = str(tmp_path / "notify")
        sock.bind(address)
    else:
        name = f"barkwatch-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        address = "@" + name
    yield sock, {"NOTIFY_SOCKET": address}
    sock.close()


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_messages_arrive(notify):
    sock, env = notify
    assert service.notify_ready("listening on hw:1", env)
    assert received(sock) == "READY=1\nSTATUS=listening on hw:1"
    assert service.notify_status("reconnecting", env)
    assert received(sock) == "STATUS=reconnecting"
    assert service.notify_watchdog(env)
    assert received(sock) == "WATCHDOG=1"
    assert service.notify_stopping(env)
    assert received(sock) == "STOPPING=1"


def test_reloading_carries_the_monotonic_clock(notify):
    sock, env = notify
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert service.notify_reloading(env)
    first, second = received(sock).split("\n")
    assert first == "RELOADING=1"
    key, _, usec = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(usec) <= before + 5_000_000


def test_status_stays_one_line(notify):
    sock, env = notify
    service.notify_status("device gone\nREADY=1", env)
    assert received(sock) == "STATUS=device gone READY=1"  # no second field smuggled in


def test_without_notify_socket_nothing_is_sent():
    assert service.sd_notify("READY=1", {}) is False
    assert service.notify_ready(env={}) is False


def test_failed_send_returns_false(tmp_path):
    assert service.sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}) is False
    assert service.sd_notify("READY=1", {"NOTIFY_SOCKET": "@" + uuid.uuid4().hex}) is False
    assert service.sd_notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"}) is False  # a kind it does not speak


# --- watchdog

@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
])
def test_watchdog_interval(env, expected):
    assert service.watchdog_interval(env) == expected


def test_watchdog_pets_at_its_cadence(notify):
    sock, env = notify
    dog = Watchdog.from_env({**env, "WATCHDOG_USEC": "30000000"})
    assert dog.pet_every == 15.0
    # The worker loop calls it every 0.5 s for a minute: a pet at 0, 15, 30, 45 and 60 s.
    pets = [t / 2 for t in range(121) if dog.maybe_pet(t / 2)]
    assert pets == [0.0, 15.0, 30.0, 45.0, 60.0]
    assert [received(sock) for _ in pets] == ["WATCHDOG=1"] * 5
    # A stalled worker calls nothing, so nothing is sent until it comes back.
    assert dog.maybe_pet(200.0) and received(sock) == "WATCHDOG=1"
    assert not dog.maybe_pet(210.0)


def test_no_watchdog_without_watchdog_usec():
    assert Watchdog.from_env({"NOTIFY_SOCKET": "@x"}) is None


# --- the status file

NOW = datetime(2024, 5, 3, 14, 25, 0, tzinfo=timezone(timedelta(hours=2)))


def a_state(**changes) -> ServiceState:
    state = ServiceState(pid=4242, started=service.local_iso(NOW - timedelta(days=2, hours=3)),
                         device="USB Audio Device: - (hw:1,0)",
                         device_since=service.local_iso(NOW - timedelta(hours=5)),
                         events_today=7, last_event=service.local_iso(NOW - timedelta(minutes=12)),
                         last_event_duration_s=3.4, overruns=2, outages=1, windows=123456, clips_files=12,
                         clips_bytes=34_500_000, updated=service.local_iso(NOW - timedelta(seconds=4)),
                         update_every_s=10.0, version="0.1.0", model="default.pt (1a2b3c4d)")
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def test_state_round_trip(tmp_path):
    path = service.state_path(tmp_path / "state")
    assert path == tmp_path / "state" / "status.json"
    state = a_state()
    assert service.write_state(path, state)
    assert service.read_state(path) == state
    assert json.loads(path.read_text())["events_today"] == 7  # plain JSON, for other tools too
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # `barkwatch status` works for any user
    state.events_today = 8
    assert service.write_state(path, state)
    assert service.read_state(path).events_today == 8
    assert sorted(p.name for p in path.parent.iterdir()) == ["status.json"]  # no temporary file left


def test_read_state_tolerates_missing_torn_and_newer_files(tmp_path):
    path = tmp_path / "status.json"
    assert service.read_state(path) is None
    path.write_text('{"pid": 42, "star')
    assert service.read_state(path) is None
    path.write_text("[1, 2]")
    assert service.read_state(path) is None
    path.write_text(json.dumps({"pid": 42, "started": "2024-05-01T10:00:00+02:00", "device": "hw:1",
                                "from_a_later_version": True}))
    state = service.read_state(path)
    assert (state.pid, state.device, state.status, state.events_today) == (42, "hw:1", "listening", 0)


def test_unwritable_location_logs_once_and_carries_on(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    writer = StateWriter(service.state_path(blocker))
    with caplog.at_level(logging.DEBUG, logger="barkwatch.service.systemd"):
        assert [writer.write(a_state()) for _ in range(3)] == [False] * 3
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "status file" in warnings[0].getMessage()


def test_full_disk_keeps_the_old_file_and_recovers(tmp_path, caplog, monkeypatch):
    path = tmp_path / "status.json"
    writer = StateWriter(path)
    assert writer.write(a_state(events_today=1))

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(service.os, "write", full)
        with caplog.at_level(logging.INFO, logger="barkwatch.service.systemd"):
            assert not writer.write(a_state(events_today=2))
            assert not writer.write(a_state(events_today=3))
    assert service.read_state(path).events_today == 1  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="barkwatch.service.systemd"):
        assert writer.write(a_state(events_today=4))
    assert service.read_state(path).events_today == 4
    assert [r.levelname for r in caplog.records] == ["INFO"]  # "being written again"


def test_pid_alive():
    assert service.pid_alive(os.getpid())
    assert not service.pid_alive(0)  # would address the process group
    assert not service.pid_alive(-1)
    child = subprocess.Popen(["true"])
    child.wait()
    assert not service.pid_alive(child.pid)


# --- barkwatch status

def test_status_running():
    text = service.format_status(a_state(), NOW, pid_alive=True)
    head, *rest = text.splitlines()
    assert head.startswith("barkwatch: running, pid 4242")
    assert "up 2 d 3 h" in head
    assert "USB Audio Device: - (hw:1,0), since" in text
    assert "events today: 7, last " in text and "(3.4 s)" in text
    assert "2 overruns, 1 outages" in text
    assert "12 files, 34.5 MB" in text
    assert "default.pt (1a2b3c4d)" in text


def test_status_stale_file_means_stalled():
    state = a_state(updated=service.local_iso(NOW - timedelta(minutes=3)))
    head = service.format_status(state, NOW, pid_alive=True).splitlines()[0]
    assert head.startswith("barkwatch: not updating since ")
    assert "3 min ago" in head and "stalled?" in head


def test_status_without_times():
    state = a_state(updated="", started="garbage")
    assert "not updating since never" in service.format_status(state, NOW, pid_alive=True)
    assert service.format_status(state, NOW, pid_alive=False).startswith("barkwatch: not running (last seen never)")


def test_status_not_running():
    state = a_state(updated=service.local_iso(NOW - timedelta(days=1, hours=2)))
    text = service.format_status(state, NOW, pid_alive=False)
    assert text.splitlines()[0].startswith("barkwatch: not running (last seen ")
    assert "1 d 2 h ago" in text
    assert "events on 2024-05-02: 7" in text  # yesterday's count is not today's
    assert "since" not in text.splitlines()[1]  # nor is its device still open
    stopped = service.format_status(a_state(status="stopped"), NOW, pid_alive=True)
    assert stopped.startswith("barkwatch: not running")


def test_status_reconnecting_and_quiet():
    text = service.format_status(a_state(status="reconnecting", last_event=None, last_event_duration_s=None),
                                 NOW, pid_alive=True)
    assert text.startswith("barkwatch: running")
    assert "gone, reconnecting" in text
    assert "last none" in text


def test_status_with_naive_local_now():
    state = a_state(updated=service.local_iso(), started=service.local_iso())
    assert service.format_status(state, datetime.now(), pid_alive=True).startswith("barkwatch: running")


def test_status_needs_neither_torch_nor_numpy():
    code = "import sys, barkwatch.service.systemd; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_status_of_a_service_that_never_ran_is_one_line_or_a_json_object(tmp_path):
    def status(*args):
        return subprocess.run([sys.executable, "-m", "barkwatch", "status", "--state-dir", str(tmp_path), *args],
                              capture_output=True, text=True, timeout=60)

    plain, as_json = status(), status("--json")
    assert plain.returncode == as_json.returncode == 3
    assert plain.stdout == "" and plain.stderr.startswith("barkwatch: error:") and len(plain.stderr.splitlines()) == 1
    answer = json.loads(as_json.stdout)
    assert answer["running"] is False and answer["state_file"] == str(tmp_path / "status.json")


# --- scripts/install-service

def test_install_service_dry_run(tmp_path):
    prefix = tmp_path / "opt" / "barkwatch"
    if not Path("/usr/bin/python3").is_file():
        pytest.skip("no system python3 in /usr/bin for the dry run to find")
    system_first = dict(os.environ, PATH="/usr/bin:" + os.environ.get("PATH", ""))  # as the README tells
    result = subprocess.run(["bash", str(REPO / "scripts" / "install-service"), "--dry-run", "--prefix", str(prefix),
                             "--device", "hw:1"], capture_output=True, text=True, timeout=60, env=system_first)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # The device is set and checked as the service's user before the unit is enabled.
    assert "+ set audio.device to 'hw:1' in /etc/barkwatch/config.yaml" in out
    check = out.index(f"+ as user barkwatch: {prefix}/.venv/bin/barkwatch devices --check config --config "
                      "/etc/barkwatch/config.yaml")
    assert check < out.index("systemctl daemon-reload")
    assert "/etc/systemd/system/barkwatch.service" in out
    assert f"ExecStart={prefix}/.venv/bin/barkwatch listen --config /etc/barkwatch/config.yaml" in out
    assert f"{prefix}/scripts/setup" in out
    assert f"ln -sfn {prefix}/.venv/bin/barkwatch /usr/local/bin/barkwatch" in out  # on the PATH
    assert "dry run, nothing was changed" in out
    assert not prefix.exists()


def test_install_service_hub_installs_the_hub_unit_without_an_audio_check(tmp_path):
    prefix = tmp_path / "opt" / "barkwatch"
    if not Path("/usr/bin/python3").is_file():
        pytest.skip("no system python3 in /usr/bin for the dry run to find")
    system_first = dict(os.environ, PATH="/usr/bin:" + os.environ.get("PATH", ""))
    script = ["bash", str(REPO / "scripts" / "install-service"), "--dry-run", "--prefix", str(prefix), "--hub"]
    result = subprocess.run(script, capture_output=True, text=True, timeout=60, env=system_first)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "devices --check" not in out and "audio.device" not in out
    assert out.index("+ check that hub.mqtt is set in /etc/barkwatch/config.yaml") < out.index("daemon-reload")
    assert "/etc/systemd/system/barkwatch-hub.service" in out
    assert f"ExecStart={prefix}/.venv/bin/barkwatch hub --config /etc/barkwatch/config.yaml" in out
    assert "systemctl enable barkwatch-hub.service" in out and "dry run, nothing was changed" in out
    refused = subprocess.run(script + ["--device", "hw:1"], capture_output=True, text=True, timeout=60,
                             env=system_first)
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "install-service: --device is for a listener; the hub has no audio (see --help)")
    assert not prefix.exists()


def test_install_service_dry_run_refuses_what_the_real_run_would_a_python_under_a_home_directory(tmp_path):
    """The interpreter check runs in a dry run too: a python3 under a home directory (pyenv's, say) first on
    the PATH is refused as the real run would refuse it, before anything would be done."""
    import tempfile

    home = Path.home()
    if not str(home).startswith(("/home/", "/root")) or not os.access(home, os.W_OK):
        pytest.skip(f"the home directory {home} is not one the service cannot see, or not writable")
    with tempfile.TemporaryDirectory(dir=home) as bin_dir:
        python = Path(bin_dir) / "python3"
        python.write_text("#!/bin/sh\nexit 0\n")  # never run: the dry run only looks at where it lives
        python.chmod(0o755)
        env = dict(os.environ, PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
        prefix = tmp_path / "opt" / "barkwatch"
        result = subprocess.run(["bash", str(REPO / "scripts" / "install-service"), "--dry-run", "--prefix",
                                 str(prefix)], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert f"would run {python}, under a home directory the service cannot see" in result.stderr
    assert "dry run, nothing was changed" not in result.stdout and not prefix.exists()
