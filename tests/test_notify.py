"""Notifications against real servers: a mosquitto broker, a local HTTP server and real commands."""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from servers import MOSQUITTO, Broker, HttpRecorder, Subscriber, free_port

from barkwatch import __version__
from barkwatch.config import CommandConfig, MqttConfig, NotifyConfig, WebhookConfig
from barkwatch.service.notify import Node, Notifier

REPO = Path(__file__).resolve().parents[1]
CET = timezone(timedelta(hours=1))
FAST = dict(retry_base_s=0.01, reconnect_delay_s=(0.05, 0.2))  # keeps retries and reconnects short


class Clock:
    """A settable local clock for ``Notifier(now=...)``."""

    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def record(kind: str, event_id: str = "e1") -> dict:
    return {"event": kind, "id": event_id, "source": "hw:1", "start": "2026-11-25T21:03:04.120+01:00",
            "end": "2026-11-25T21:03:07.320+01:00", "duration_s": 3.2, "peak_score": 0.97,
            "clip": None if kind == "bark_start" else f"/var/lib/barkwatch/clips/{event_id}.flac"}


def appender(path: Path) -> str:
    """A command line that appends its stdin, then a newline, to ``path``: one JSON line per notification."""
    return shlex.join(["sh", "-c", f"cat >> {shlex.quote(str(path))}; echo >> {shlex.quote(str(path))}"])


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def notifiers():
    """``make(config, **kwargs)``: a Notifier with short retry and reconnect delays, closed at teardown."""
    made: list[Notifier] = []

    def make(config: NotifyConfig, **kwargs) -> Notifier:
        made.append(Notifier(config, **{**FAST, **kwargs}))
        return made[-1]

    yield make
    for notifier in made:
        notifier.close(timeout=1.0)


@pytest.fixture
def http_server():
    """``make(responses=(), default=200)``: an ``HttpRecorder``, closed at teardown."""
    made: list[HttpRecorder] = []

    def make(responses=(), default=200) -> HttpRecorder:
        made.append(HttpRecorder(list(responses), default))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture
def broker(tmp_path):
    """A running mosquitto broker (anonymous, no persistence) on a free port."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    with Broker(tmp_path) as b:
        yield b


def mqtt_config(port: int, **changes) -> NotifyConfig:
    return NotifyConfig(mqtt=MqttConfig(host="127.0.0.1", port=port, client_id="bw-test", topic_prefix="bw",
                                        **changes))


# --- set-up


def test_no_channels_configured_is_a_quiet_no_op():
    notifier = Notifier(NotifyConfig())
    assert notifier.channels == [] and notifier.stats == {} and notifier.barks_today is None
    notifier.notify(record("bark"))
    notifier.close()


@pytest.mark.parametrize("quiet", ["22:00", "22-07", "25:00-07:00", "22:00-07:00-08:00", "22:00-22:00"])
def test_unusable_quiet_hours_are_refused(quiet):
    with pytest.raises(ValueError, match="quiet hours"):
        Notifier(NotifyConfig(quiet_hours=quiet))


def test_unusable_command_and_url_are_refused():
    with pytest.raises(ValueError, match="command"):
        Notifier(NotifyConfig(command=CommandConfig(run="  ")))
    with pytest.raises(ValueError, match="webhook"):
        Notifier(NotifyConfig(webhook=WebhookConfig(url="ftp://example.org/x")))


# --- command


def test_command_gets_the_record_on_stdin_and_its_kind_in_the_environment(notifiers, tmp_path):
    out = tmp_path / "out.jsonl"
    code = ("import json, os, sys; rec = json.load(sys.stdin); "
            "open(sys.argv[1], 'a').write(json.dumps([os.environ['BARKWATCH_EVENT'], sys.argv[2], rec]) + '\\n')")
    # A shell would expand $HOME and split at ';': the argument must arrive as written.
    run = shlex.join([sys.executable, "-c", code, str(out), "a; b $HOME"])
    notifier = notifiers(NotifyConfig(command=CommandConfig(run=run, on=["bark_start", "bark"])))
    assert notifier.channels == ["command"]
    notifier.notify(record("bark_start"))
    notifier.notify(record("bark"))
    notifier.close(timeout=10)
    arg = "a; b $HOME"
    assert lines(out) == [["bark_start", arg, record("bark_start")], ["bark", arg, record("bark")]]
    assert notifier.stats["command"].sent == 2


def test_command_failure_warns_with_exit_code_and_first_stderr_line(notifiers, caplog):
    run = "sh -c 'echo disk full >&2; echo more >&2; exit 3'"
    notifier = notifiers(NotifyConfig(command=CommandConfig(run=run)))
    notifier.notify(record("bark"))
    notifier.close(timeout=5)
    assert "notify command: sh exited with 3: disk full" in caplog.text
    assert notifier.stats["command"].failed == 1


def test_command_that_cannot_start_warns(notifiers, caplog, tmp_path):
    notifier = notifiers(NotifyConfig(command=CommandConfig(run=str(tmp_path / "missing"))))
    notifier.notify(record("bark"))
    notifier.close(timeout=5)
    assert "notify command: cannot run" in caplog.text and notifier.stats["command"].failed == 1


def test_command_timeout_kills_it_and_what_it_started(notifiers, caplog, tmp_path):
    pid_file = tmp_path / "pid"
    # `; :` keeps sh from exec-ing sleep, so sleep is a grandchild that must die with the group.
    run = shlex.join(["sh", "-c", f"sleep 30 & echo $! > {pid_file}; wait; :"])
    notifier = notifiers(NotifyConfig(command=CommandConfig(run=run, timeout_s=0.3)))
    began = time.monotonic()
    notifier.notify(record("bark"))
    notifier.close(timeout=5)
    assert time.monotonic() - began < 2
    assert "notify command: sh timed out after 0.3 s, killed" in caplog.text
    assert notifier.stats["command"].failed == 1
    sleeper = int(pid_file.read_text())
    wait_until(lambda: not Path(f"/proc/{sleeper}").exists() or
               Path(f"/proc/{sleeper}/stat").read_text().split()[2] == "Z", timeout=2)


def test_command_may_leave_a_child_running_in_the_background(notifiers, tmp_path):
    pid_file = tmp_path / "pid"
    run = shlex.join(["sh", "-c", f"sleep 30 & echo $! > {pid_file}"])  # the sleep inherits stderr
    notifier = notifiers(NotifyConfig(command=CommandConfig(run=run, timeout_s=5)))
    began = time.monotonic()
    notifier.notify(record("bark"))
    notifier.close(timeout=5)
    try:
        assert time.monotonic() - began < 2 and notifier.stats["command"].sent == 1
    finally:
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_close_kills_a_command_still_running(notifiers, caplog):
    notifier = notifiers(NotifyConfig(command=CommandConfig(run="sleep 30", timeout_s=60)))
    notifier.notify(record("bark"))
    time.sleep(0.1)
    began = time.monotonic()
    notifier.close(timeout=0.3)
    assert time.monotonic() - began < 1
    wait_until(lambda: "notify command: sleep was killed at close" in caplog.text)


# --- webhook


def test_webhook_posts_the_record_as_json_with_headers(notifiers, http_server):
    server = http_server()
    config = WebhookConfig(url=server.url, headers={"Authorization": "Bearer t0ken"})
    notifier = notifiers(NotifyConfig(webhook=config))
    notifier.notify(record("bark_start"))
    notifier.notify(record("bark"))  # not in the default `on`
    notifier.close(timeout=5)
    [request] = server.requests
    assert request.path == "/hook" and request.json() == record("bark_start")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Bearer t0ken"
    assert notifier.stats["webhook"].sent == 1


def test_webhook_retries_server_errors(notifiers, http_server):
    server = http_server([500, 503])
    notifier = notifiers(NotifyConfig(webhook=WebhookConfig(url=server.url, retries=3)))
    notifier.notify(record("bark_start"))
    notifier.close(timeout=5)
    assert len(server.requests) == 3
    assert [r.json() for r in server.requests] == [record("bark_start")] * 3
    stats = notifier.stats["webhook"]
    assert (stats.sent, stats.failed) == (1, 0)


def test_webhook_client_errors_are_not_retried_and_the_url_path_stays_secret(notifiers, http_server, caplog):
    server = http_server([404])
    notifier = notifiers(NotifyConfig(webhook=WebhookConfig(url=server.url + "/s3cret", retries=3)))
    notifier.notify(record("bark_start"))
    notifier.close(timeout=5)
    assert len(server.requests) == 1
    assert "rejected (HTTP 404 Not Found), not retried" in caplog.text
    assert "s3cret" not in caplog.text
    assert notifier.stats["webhook"].failed == 1


def test_webhook_gives_up_after_its_retries(notifiers, caplog):
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    notifier = notifiers(NotifyConfig(webhook=WebhookConfig(url=url, retries=2)))
    notifier.notify(record("bark_start"))
    notifier.close(timeout=5)
    assert "failed after 3 attempt(s) (Connection refused)" in caplog.text
    assert notifier.stats["webhook"].failed == 1


def test_a_webhook_down_and_back_drops_what_failed_by_name_delivers_the_rest_and_says_so(notifiers, caplog):
    """The rule for a long outage, with its hour compressed: each record is tried ``retries`` + 1 times and then
    dropped, named in the log; once the webhook is back, records go through and one line counts the loss."""
    caplog.set_level(logging.INFO, "barkwatch")
    port = free_port()
    notifier = notifiers(NotifyConfig(webhook=WebhookConfig(url=f"http://127.0.0.1:{port}/hook", retries=1,
                                                            on=["bark_start", "bark"])))
    began = time.monotonic()
    for event_id in ("a", "b"):  # down: nothing listens there
        notifier.notify(record("bark_start", event_id))
        notifier.notify(record("bark", event_id))
    assert time.monotonic() - began < 0.5  # detection never waits for a webhook, up or down
    wait_until(lambda: notifier.stats["webhook"].failed == 4)
    for event_id, kind in (("a", "bark_start"), ("a", "bark"), ("b", "bark_start"), ("b", "bark")):
        assert (f"POST of {kind} {event_id} to http://127.0.0.1:{port} failed after 2 attempt(s) (Connection "
                "refused); dropped") in caplog.text
    with HttpRecorder(port=port) as server:  # back
        notifier.notify(record("bark_start", "c"))
        notifier.notify(record("bark", "c"))
        assert [r.json()["id"] for r in server.wait_for_requests(2)] == ["c", "c"]
        wait_until(lambda: notifier.stats["webhook"].sent == 2)
    assert f"http://127.0.0.1:{port} accepts records again after" in caplog.text
    assert "; 4 record(s) were dropped meanwhile" in caplog.text
    assert caplog.text.count("accepts records again") == 1


def test_webhook_timeout_is_retried(notifiers, http_server):
    server = http_server(["hang"])
    notifier = notifiers(NotifyConfig(webhook=WebhookConfig(url=server.url, timeout_s=0.2, retries=1)))
    notifier.notify(record("bark_start"))
    notifier.close(timeout=5)
    assert len(server.requests) == 2 and notifier.stats["webhook"].sent == 1


def test_webhook_backoff_doubles():
    notifier = Notifier(NotifyConfig(webhook=WebhookConfig(url=f"http://127.0.0.1:{free_port()}/", retries=3)),
                        retry_base_s=0.05)
    began = time.monotonic()
    notifier.notify(record("bark_start"))
    notifier.close(timeout=5)
    assert 0.05 + 0.1 + 0.2 <= time.monotonic() - began < 2
    assert notifier.stats["webhook"].failed == 1


# --- never blocking


def test_hanging_webhook_blocks_neither_notify_nor_other_channels_and_close_keeps_its_timeout(
        notifiers, http_server, broker, tmp_path, caplog):
    server = http_server(default="hang")
    out = tmp_path / "out.jsonl"
    config = mqtt_config(broker.port)
    config.webhook = WebhookConfig(url=server.url, on=["bark_start", "bark"], timeout_s=30, retries=0)
    config.command = CommandConfig(run=appender(out), on=["bark_start", "bark"])
    with Subscriber(broker.port, ("bw/#",)) as sub:
        notifier = notifiers(config)
        sub.wait_for("bw/status", "online")
        for event_id in ("a", "b", "c"):
            for kind in ("bark_start", "bark"):
                began = time.perf_counter()
                notifier.notify(record(kind, event_id))
                assert time.perf_counter() - began < 0.05
        server.wait_for_requests(1)
        sub.wait_for("bw/event", count=6)
        wait_until(lambda: len(lines(out)) == 6)
        assert sub.on("bw/barking")[-1].payload == "OFF" and sub.on("bw/barks_today")[-1].payload == "3"

        began = time.monotonic()
        notifier.close(timeout=0.5)
        assert time.monotonic() - began < 1.0
        sub.wait_for("bw/status", "offline")
    assert len(server.requests) == 1
    stats = notifier.stats
    assert stats["webhook"].dropped == 5 and stats["command"].sent == 6 and stats["mqtt"].sent == 6
    assert "notify webhook: still busy at close; 5 queued notification(s) not sent" in caplog.text


def test_full_queue_drops_the_oldest_record(notifiers, http_server, caplog):
    server = http_server(["hang"])
    config = NotifyConfig(webhook=WebhookConfig(url=server.url, on=["bark_start"], cooldown_s=0, timeout_s=30))
    notifier = notifiers(config, queue_size=2)
    notifier.notify(record("bark_start", "1"))
    server.wait_for_requests(1)  # the worker holds record 1; the queue is empty
    for event_id in "2345":
        notifier.notify(record("bark_start", event_id))
    assert notifier.stats["webhook"].dropped == 2
    assert "notify webhook: queue full (2 records), dropped the oldest (2 dropped so far)" in caplog.text
    server.release()
    notifier.close(timeout=5)
    assert [r.json()["id"] for r in server.requests] == ["1", "4", "5"]
    assert notifier.stats["webhook"].sent == 3


# --- cooldown and quiet hours


def test_cooldown_suppresses_whole_events(notifiers, tmp_path):
    out = tmp_path / "out.jsonl"
    clock = Clock(datetime(2026, 11, 25, 12, 0, tzinfo=CET))
    config = NotifyConfig(command=CommandConfig(run=appender(out), on=["bark_start", "bark"], cooldown_s=60))
    notifier = notifiers(config, now=clock)
    for seconds, kind, event_id in [
        (0, "bark_start", "A"), (5, "bark", "A"),  # bark A follows its start, cooldown or not
        (30, "bark_start", "B"), (40, "bark", "B"),  # within 60 s of the last sent: suppressed
        (50, "bark_start", "C"), (70, "bark", "C"),  # C's bark follows its suppressed start
        (80, "bark_start", "D"), (200, "bark", "D"),
    ]:
        clock.t = datetime(2026, 11, 25, 12, 0, tzinfo=CET) + timedelta(seconds=seconds)
        notifier.notify(record(kind, event_id))
    notifier.close(timeout=10)
    assert [(r["event"], r["id"]) for r in lines(out)] == [
        ("bark_start", "A"), ("bark", "A"), ("bark_start", "D"), ("bark", "D")]
    stats = notifier.stats["command"]
    assert (stats.sent, stats.suppressed) == (4, 4)


def test_quiet_hours_wrap_midnight_and_keep_events_whole(notifiers, tmp_path):
    out = tmp_path / "out.jsonl"
    clock = Clock(datetime(2026, 11, 25, 12, 0, tzinfo=CET))
    config = NotifyConfig(command=CommandConfig(run=appender(out), on=["bark_start", "bark"]),
                          quiet_hours="22:00-07:00")
    notifier = notifiers(config, now=clock)
    for day, hhmmss, kind, event_id in [
        (25, "21:59:58", "bark_start", "A"), (25, "22:00:03", "bark", "A"),  # begun before: sent whole
        (25, "23:30:00", "bark_start", "B"), (25, "23:30:05", "bark", "B"),
        (26, "03:00:00", "bark_start", "C"), (26, "03:00:05", "bark", "C"),
        (26, "06:59:59", "bark_start", "D"), (26, "07:00:05", "bark", "D"),  # begun in quiet hours
        (26, "07:00:00", "bark_start", "E"), (26, "07:00:09", "bark", "E"),
    ]:
        clock.t = datetime.fromisoformat(f"2026-11-{day}T{hhmmss}+01:00")
        notifier.notify(record(kind, event_id))
    notifier.close(timeout=10)
    assert [(r["event"], r["id"]) for r in lines(out)] == [
        ("bark_start", "A"), ("bark", "A"), ("bark_start", "E"), ("bark", "E")]
    assert notifier.stats["command"].suppressed == 6


# --- MQTT


def test_mqtt_discovery_state_counter_events_and_availability(notifiers, broker):
    with Subscriber(broker.port) as sub:
        notifier = notifiers(mqtt_config(broker.port))
        assert notifier.channels == ["mqtt"]
        sub.wait_for("bw/status", "online")
        sensor = sub.wait_for("homeassistant/binary_sensor/bw-test/barking/config").json()
        counter = sub.wait_for("homeassistant/sensor/bw-test/barks_today/config").json()
        device = {"identifiers": ["bw-test"], "name": "barkwatch", "model": "barkwatch bark detector",
                  "manufacturer": "barkwatch", "sw_version": __version__}
        availability = {"availability_topic": "bw/status", "payload_available": "online",
                        "payload_not_available": "offline"}
        assert sensor == {"name": "Dog barking", "device_class": "sound", "state_topic": "bw/barking",
                          "payload_on": "ON", "payload_off": "OFF", "json_attributes_topic": "bw/event",
                          "unique_id": "bw-test_barking", "device": device, **availability}
        assert counter == {"name": "Barks today", "state_topic": "bw/barks_today",
                           "state_class": "total_increasing", "unit_of_measurement": "barks", "icon": "mdi:dog",
                           "unique_id": "bw-test_barks_today", "device": device, **availability}
        assert sub.wait_for("bw/barking").payload == "OFF" and sub.wait_for("bw/barks_today").payload == "0"

        notifier.notify(record("bark_start", "e1"))
        sub.wait_for("bw/barking", "ON")
        here = {"node": socket.gethostname(), "room": socket.gethostname()}  # unnamed: the host name
        assert sub.wait_for("bw/event").json() == {**record("bark_start", "e1"), **here}
        notifier.notify(record("bark", "e1"))
        sub.wait_for("bw/barking", "OFF", count=2)
        sub.wait_for("bw/barks_today", "1")
        assert sub.wait_for("bw/event", count=2).json() == {**record("bark", "e1"), **here}
        notifier.close(timeout=5)
        sub.wait_for("bw/status", "offline")
    assert notifier.stats["mqtt"].sent == 2

    with Subscriber(broker.port) as late:  # what a newcomer (Home Assistant after a restart) finds
        retained = {m.topic: m for m in (late.wait_for(topic) for topic in (
            "bw/barking", "bw/barks_today", "bw/status", "homeassistant/binary_sensor/bw-test/barking/config",
            "homeassistant/sensor/bw-test/barks_today/config"))}
        assert all(m.retain for m in retained.values())
        payloads = [retained[t].payload for t in ("bw/barking", "bw/barks_today", "bw/status")]
        assert payloads == ["OFF", "1", "offline"]
        time.sleep(0.1)
        assert late.on("bw/event") == []  # events are not retained


def test_named_nodes_share_a_broker_without_colliding(broker, notifiers):
    """Two listeners named garden and kitchen: topics, client ids and discovery of their own; each event carries
    its node and room; the retained state says what a hub shows, and the last will says offline."""
    config = NotifyConfig(mqtt=MqttConfig(host="127.0.0.1", port=broker.port))  # the default client id and prefix
    with Subscriber(broker.port) as sub:
        garden = notifiers(config, node=Node("garden", "Garden", "http://10.0.0.5:8080", named=True))
        kitchen = notifiers(config, node=Node("kitchen", "Kitchen", None, named=True))
        for name in ("garden", "kitchen"):
            sub.wait_for(f"barkwatch/{name}/status", "online")
            sensor = sub.wait_for(f"homeassistant/binary_sensor/barkwatch-{name}/barking/config").json()
            assert sensor["state_topic"] == f"barkwatch/{name}/barking"
            assert sensor["unique_id"] == f"barkwatch-{name}_barking"
            assert sensor["device"]["name"] == f"barkwatch {name}"
        garden.status({"status": "listening", "device": "hw:1", "level_dbfs": -42.5,
                       "updated": "2026-12-07T10:00:00+01:00", "pid": 12})
        state = sub.wait_for("barkwatch/garden/state", count=2).json()  # the first on connect, without a status
        assert state == {"node": "garden", "room": "Garden", "url": "http://10.0.0.5:8080", "status": "listening",
                         "device": "hw:1", "device_since": None, "level_dbfs": -42.5,
                         "updated": "2026-12-07T10:00:00+01:00", "events_today": None, "last_event": None,
                         "update_every_s": None, "version": None, "model": None, "barks_today": 0}
        kitchen.notify(record("bark", "k1"))
        event = sub.wait_for("barkwatch/kitchen/event").json()
        assert event["node"] == "kitchen" and event["room"] == "Kitchen" and event["id"] == "k1"
        sub.wait_for("barkwatch/kitchen/barks_today", "1")
        assert sub.on("barkwatch/garden/event") == [] and sub.on("barkwatch/event") == []
    with Subscriber(broker.port) as late:
        assert late.wait_for("barkwatch/garden/state").retain
        assert late.wait_for("barkwatch/garden/state").json()["level_dbfs"] == -42.5


def test_node_identity_from_the_config():
    from barkwatch.config import NodeConfig, WebConfig

    assert Node.from_config(NodeConfig()) == Node(socket.gethostname(), socket.gethostname(), None, False)
    assert Node.from_config(NodeConfig(name="garden")) == Node("garden", "garden", None, True)
    web = WebConfig(enabled=True, host="127.0.0.1", port=8081)
    assert Node.from_config(NodeConfig(name="g", room="Garden"), web).url == "http://127.0.0.1:8081"
    assert Node.from_config(NodeConfig(url="http://pi:9000"), web).url == "http://pi:9000"
    assert Node.from_config(NodeConfig(), WebConfig(enabled=False)).url is None
    assert Node.from_config(NodeConfig(), WebConfig(enabled=True, host="0.0.0.0")).url == (
        f"http://{socket.getfqdn()}:8080")


def test_mqtt_without_discovery_with_credentials(notifiers, tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    with Broker(tmp_path, users={"bw": "pw1", "ha": "pw2"}) as broker, \
            Subscriber(broker.port, username="ha", password="pw2") as sub:
        notifier = notifiers(mqtt_config(broker.port, username="bw", password="pw1", discovery=False))
        notifier.notify(record("bark_start"))
        sub.wait_for("bw/barking", "ON")
        notifier.close(timeout=5)
        sub.wait_for("bw/status", "offline")
        assert not [m for m in sub.messages if m.topic.startswith("homeassistant/")]


def test_mqtt_wrong_password_warns_once(notifiers, tmp_path, caplog):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    with Broker(tmp_path, users={"bw": "pw1"}) as broker:
        notifiers(mqtt_config(broker.port, username="bw", password="wrong"))
        wait_until(lambda: "refused the connection" in caplog.text)
        time.sleep(0.5)  # several reconnect attempts
    assert caplog.text.count("refused the connection") == 1


def test_mqtt_last_will_says_offline_when_the_process_dies(broker):
    code = ("import time; from barkwatch.config import MqttConfig, NotifyConfig; "
            "from barkwatch.service.notify import Notifier; "
            f"mqtt = MqttConfig(host='127.0.0.1', port={broker.port}, topic_prefix='bw'); "
            "n = Notifier(NotifyConfig(mqtt=mqtt)); "
            "time.sleep(60)")
    with Subscriber(broker.port, ("bw/status",)) as sub:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
        try:
            sub.wait_for("bw/status", "online", timeout=10)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        sub.wait_for("bw/status", "offline")


def test_mqtt_broker_down_at_start_gets_the_messages_once_up(notifiers, tmp_path, caplog):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = Broker(tmp_path, persistence=True)
    # A persistent session, so the broker keeps what the notifier sends in case it comes before us.
    with broker:
        Subscriber(broker.port, ("bw/#",), client_id="watcher", persistent=True).close()
    notifier = notifiers(mqtt_config(broker.port))
    notifier.notify(record("bark_start", "e1"))
    notifier.notify(record("bark", "e1"))
    wait_until(lambda: notifier.stats["mqtt"].sent == 2)  # held by the client
    wait_until(lambda: "notify mqtt: cannot connect to 127.0.0.1" in caplog.text)
    time.sleep(0.3)  # a few reconnect attempts
    assert caplog.text.count("cannot connect") == 1
    with broker, Subscriber(broker.port, ("bw/#",), client_id="watcher", persistent=True) as sub:
        assert [sub.wait_for("bw/event", count=n).json()["event"] for n in (1, 2)] == ["bark_start", "bark"]
        sub.wait_for("bw/status", "online")
        sub.wait_for("bw/barks_today", "1")
        sub.wait_for("bw/barking", "OFF")
        assert "ON" not in [m.payload for m in sub.on("bw/barking")]  # state, not history: never replayed
        notifier.close(timeout=5)


def test_mqtt_broker_down_mid_run_and_back_gets_what_was_held_and_the_log_names_what_was_not(notifiers, tmp_path,
                                                                                            caplog):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    caplog.set_level(logging.INFO, "barkwatch")
    broker = Broker(tmp_path, persistence=True)
    with broker, Subscriber(broker.port, ("bw/event",), client_id="watcher", persistent=True) as sub:
        notifier = notifiers(mqtt_config(broker.port), queue_size=2)
        notifier.notify(record("bark_start", "e1"))
        sub.wait_for("bw/event")
    wait_until(lambda: "lost the connection to 127.0.0.1" in caplog.text)
    for n, event_id in enumerate(("e2", "e3", "e4"), 2):  # down: two are held, the third is one too many
        began = time.monotonic()
        notifier.notify(record("bark_start", event_id))
        assert time.monotonic() - began < 0.1  # detection never waits for the broker
        wait_until(lambda n=n: sum(vars(notifier.stats["mqtt"]).values()) == n)
    assert "event e4 dropped" in caplog.text
    with broker, Subscriber(broker.port, ("bw/event",), client_id="watcher", persistent=True) as sub:
        def ids() -> list[str]:
            return [m.json()["id"] for m in sub.on("bw/event")]

        wait_until(lambda: {"e2", "e3"} <= set(ids()))
        wait_until(lambda: "sending the 2 event message(s) held while it was down" in caplog.text)
        time.sleep(0.3)
        # QoS 1 is at least once: e1, in flight when the broker stopped (its acknowledgement lost with it), may
        # come again; a hub stores it once, by its id. The held ones come in order, the dropped one never.
        assert [i for i in ids() if i != "e1"] == ["e2", "e3"] and ids().count("e1") <= 1, ids()
        notifier.close(timeout=5)
    stats = notifier.stats["mqtt"]
    assert (stats.sent, stats.failed) == (3, 1)


def test_mqtt_holds_a_bounded_number_of_events_while_the_broker_is_down(notifiers, caplog):
    notifier = notifiers(mqtt_config(free_port()), queue_size=2)
    for n, event_id in enumerate("abc", 1):
        notifier.notify(record("bark_start", event_id))
        wait_until(lambda n=n: sum(vars(notifier.stats["mqtt"]).values()) == n)
    stats = notifier.stats["mqtt"]
    assert (stats.sent, stats.failed) == (2, 1)
    assert "notify mqtt: 2 event messages wait for 127.0.0.1" in caplog.text
    notifier.close(timeout=1)
    assert "not connected to 127.0.0.1" in caplog.text and "2 event message(s) held for it are lost" in caplog.text


def test_mqtt_quiet_hours_and_cooldown_hold_back_events_not_state(notifiers, broker):
    clock = Clock(datetime(2026, 11, 25, 23, 0, tzinfo=CET))
    config = mqtt_config(broker.port, cooldown_s=600)
    config.quiet_hours = "22:00-07:00"
    with Subscriber(broker.port, ("bw/#",)) as sub:
        notifier = notifiers(config, now=clock)
        sub.wait_for("bw/status", "online")
        notifier.notify(record("bark_start", "night"))
        sub.wait_for("bw/barking", "ON")
        notifier.notify(record("bark", "night"))
        sub.wait_for("bw/barks_today", "1")
        clock.t = datetime(2026, 11, 26, 8, 0, tzinfo=CET)
        for event_id in ("a", "b"):  # b comes within a's cooldown
            notifier.notify(record("bark_start", event_id))
            notifier.notify(record("bark", event_id))
        sub.wait_for("bw/barking", "ON", count=3)
        notifier.close(timeout=5)
        sub.wait_for("bw/status", "offline")
        assert sub.on("bw/barking")[-1].payload == "OFF"
        assert sub.on("bw/barks_today")[-1].payload == "2"  # a new day: the night's bark was yesterday's
        events = [(m.json()["event"], m.json()["id"]) for m in sub.on("bw/event")]
        assert events == [("bark_start", "a"), ("bark", "a")]
    assert notifier.stats["mqtt"].suppressed == 4


def test_mqtt_counter_starts_again_at_local_midnight(notifiers, broker):
    clock = Clock(datetime(2026, 11, 25, 23, 59, 50, tzinfo=CET))
    with Subscriber(broker.port, ("bw/barks_today",)) as sub:
        notifier = notifiers(mqtt_config(broker.port), now=clock, barks_today=41, tick_s=0.02)
        sub.wait_for("bw/barks_today", "41")
        notifier.notify(record("bark"))
        sub.wait_for("bw/barks_today", "42")
        clock.advance(20)  # nothing barks after midnight: the counter must still go back to 0
        sub.wait_for("bw/barks_today", "0")
        notifier.notify(record("bark"))
        sub.wait_for("bw/barks_today", "1")
        assert notifier.barks_today == 1
