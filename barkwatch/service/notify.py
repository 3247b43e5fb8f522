"""Notifications of bark events: a command hook, a webhook and MQTT (with Home Assistant discovery).

They run off the audio path. ``Notifier.notify`` copies the record onto each enabled channel's bounded queue
and returns at once; every channel has its own worker thread, so a webhook that hangs delays neither MQTT nor
the command, and no channel can delay the detector. A full queue drops its oldest record (counted, warned).

Each channel sends only the kinds in its ``on`` list, and holds back (counts as suppressed) a record that
comes within ``cooldown_s`` of the last one it sent, or during ``quiet_hours``. An event is one message pair:
a ``bark`` follows its ``bark_start`` on the channel, sent if that was sent and suppressed if that was
suppressed, whatever the cooldown or the clock say by then. MQTT's ``barking`` state and ``barks_today``
counter are state, not alerts: they follow every record, whatever ``on``, the cooldown and quiet hours say, so
Home Assistant never shows a stale "barking" or a short count; only the ``event`` topic is filtered.

Several listeners on one broker (``barkwatch hub``, docs/hub.md) are told apart by ``node.name``: with a name,
the topics are ``<topic_prefix>/<name>/...``, the client id ``barkwatch-<name>`` (unless set), and each event
message carries ``node`` and ``room``; a retained ``state`` topic says what the hub shows (listening, device,
level, last update, the web interface's address). Without a name the topics stay those of one listener.

Times come from the ``now`` clock, read when ``notify`` is called (not when a worker gets to the record): the
local wall clock by default, for quiet hours, the cooldown and the day of the counter.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from datetime import time as clock_time
from urllib.parse import urlsplit

from barkwatch import __version__
from barkwatch.config import (CommandConfig, MqttConfig, NodeConfig, NotifyConfig, WebConfig, WebhookConfig,
                              parse_quiet_hours)

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 100  # records waiting per channel; a bark every few seconds for minutes on end
_PAIRS_KEPT = 1000  # bark_start verdicts remembered for their bark; bounded in case a bark never comes


def _local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True)
class Node:
    """This listener as the hub knows it: ``named`` when node.name was set (the topics then carry the name)."""

    name: str
    room: str
    url: str | None = None  # its web interface, for the hub's clips and backfill (never its token)
    named: bool = False

    @classmethod
    def from_config(cls, node: NodeConfig, web: WebConfig | None = None) -> Node:
        """From the ``node`` section; the url, when not set, from a ``web`` section that serves beside listening."""
        name = node.name or socket.gethostname()
        url = node.url
        if url is None and web is not None and web.enabled:
            host = socket.getfqdn() if web.host in ("0.0.0.0", "::", "") else web.host
            url = f"http://{f'[{host}]' if ':' in host else host}:{web.port}"
        return cls(name, node.room or name, url, node.name is not None)


DEFAULT_CLIENT_ID = MqttConfig.client_id
STATE_KEYS = ("status", "device", "device_since", "level_dbfs", "updated", "events_today", "last_event",
              "update_every_s", "version", "model")  # of the status file, what the MQTT state carries


@dataclass
class ChannelStats:
    """What one channel did with the records it was given (kinds outside its ``on`` are not counted)."""

    sent: int = 0  # delivered (MQTT: accepted by the client, which delivers it once the broker is reachable)
    failed: int = 0  # not delivered: errors, retries used up, a timeout
    suppressed: int = 0  # held back by the cooldown or quiet hours
    dropped: int = 0  # never handled: the queue was full, or close() ran out of time


@dataclass(frozen=True)
class _QuietHours:
    """A daily span of local time, ``start`` included, ``end`` not; wraps midnight when ``end <= start``."""

    start: clock_time
    end: clock_time

    def __contains__(self, t: clock_time) -> bool:
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


def _quiet_hours(text: str | None) -> _QuietHours | None:
    """``"22:00-07:00"`` as a ``_QuietHours`` (parsed as the config loader checks it); ``None`` or ``""``: none."""
    return _QuietHours(*parse_quiet_hours(text)) if text and text.strip() else None


class _Gate:
    """Decides, per record, whether a channel sends it: the ``on`` kinds, the pairing of an event's two
    records, quiet hours, then the cooldown (see the module's docstring). Used by one worker thread only."""

    SEND, QUIET, COOLDOWN = "send", "quiet hours", "cooldown"

    def __init__(self, on: list[str], cooldown_s: float, quiet: _QuietHours | None):
        self.on = frozenset(on)
        self.cooldown_s = float(cooldown_s)
        self.quiet = quiet
        self._last_sent: datetime | None = None
        self._starts: OrderedDict[str, str] = OrderedDict()  # bark_start id -> its verdict

    def verdict(self, record: dict, at: datetime) -> str | None:
        """``SEND``, or why the record is suppressed; ``None`` for a kind the channel does not send."""
        kind, event_id = record.get("event"), record.get("id")
        if kind not in self.on:
            return None
        if kind == "bark" and event_id in self._starts:
            return self._starts.pop(event_id)
        if self.quiet is not None and at.time() in self.quiet:
            verdict = self.QUIET
        elif self._last_sent is not None and (at - self._last_sent).total_seconds() < self.cooldown_s:
            verdict = self.COOLDOWN
        else:
            verdict = self.SEND
        if kind == "bark_start" and event_id is not None:
            self._starts[event_id] = verdict
            while len(self._starts) > _PAIRS_KEPT:
                self._starts.popitem(last=False)
        return verdict

    def sent(self, at: datetime) -> None:
        """A record received at ``at`` was delivered: the cooldown runs from here."""
        self._last_sent = at


def _record_json(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, default=str)  # default: a stray Path must not lose the event


def _reason(e: BaseException) -> str:
    """A short reason for a network error; urllib wraps the socket's error in ``URLError.reason``."""
    reason = getattr(e, "reason", e)
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


class _Channel:
    """A bounded queue of ``(record, received_at)`` and the worker thread that empties it.

    Subclasses deliver a record (``deliver``) or handle it themselves (``handle``); ``tick`` runs whenever
    the worker has waited ``tick_s`` without a record, and ``abandon`` when ``close`` runs out of time.
    """

    name = "channel"
    tick_s: float | None = None

    def __init__(self, gate: _Gate, queue_size: int):
        self.gate = gate
        self.stats = ChannelStats()
        self._queue_size = queue_size
        self._queue: deque[tuple[dict, datetime]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._abandoned = threading.Event()  # close() gave up waiting: stop retrying, stop waiting
        self._thread = threading.Thread(target=self._run, name=f"notify-{self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, record: dict, at: datetime) -> None:
        with self._cond:
            if self._closing:
                return
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.stats.dropped += 1
                log.warning("notify %s: queue full (%d records), dropped the oldest (%d dropped so far)",
                            self.name, self._queue_size, self.stats.dropped)
            self._queue.append((record, at))
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closing:
                    self._cond.wait(self.tick_s)
                if not self._queue:
                    if self._closing:
                        return
                    item = None
                else:
                    item = self._queue.popleft()
            try:
                if item is None:
                    self.tick()
                else:
                    self.handle(*item)
            except Exception as e:  # a bug or an odd record must not end the channel for the months to come
                if item is not None:
                    self.stats.failed += 1
                log.warning("notify %s: unexpected error (%s: %s)", self.name, type(e).__name__, e)
                log.debug("notify %s: traceback", self.name, exc_info=True)

    def handle(self, record: dict, at: datetime) -> None:
        verdict = self.gate.verdict(record, at)
        if verdict is None:
            return
        if verdict != _Gate.SEND:
            self.stats.suppressed += 1
            log.debug("notify %s: %s %s suppressed (%s)", self.name, record.get("event"), record.get("id"), verdict)
            return
        if self.deliver(record):
            self.stats.sent += 1
            self.gate.sent(at)
        else:
            self.stats.failed += 1

    def deliver(self, record: dict) -> bool:
        """Send the record; ``False`` (after warning) when it could not be."""
        raise NotImplementedError

    def tick(self) -> None:
        pass

    def abandon(self) -> None:
        self._abandoned.set()

    def close(self, deadline: float) -> None:
        """Stop taking records, deliver those queued until ``deadline`` (``time.monotonic``), then give up."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self.abandon()
            with self._cond:
                left, self._queue = len(self._queue), deque()
                self.stats.dropped += left
            log.warning("notify %s: still busy at close; %d queued notification(s) not sent", self.name, left)


class _Command(_Channel):
    """Runs ``config.run`` (split like a shell line, run without a shell) per record: the record's JSON on
    stdin, ``BARKWATCH_EVENT`` set to its kind, its output discarded. It runs in its own process group, so a
    timeout kills whatever it started too; a child it leaves running in the background, on purpose, is not
    waited for."""

    name = "command"

    def __init__(self, config: CommandConfig, gate: _Gate, queue_size: int):
        super().__init__(gate, queue_size)
        self.argv = shlex.split(config.run or "")
        if not self.argv:
            raise ValueError(f"notify command: run {config.run!r} names no program")
        self.timeout_s = float(config.timeout_s)
        self._proc: subprocess.Popen | None = None

    def deliver(self, record: dict) -> bool:
        program = self.argv[0]
        env = dict(os.environ, BARKWATCH_EVENT=str(record.get("event")))
        # stderr goes to a file, not a pipe: a child the command leaves running in the background keeps the
        # file open, and with a pipe we would wait for it (until the timeout) instead of for the command.
        with tempfile.TemporaryFile() as stderr:
            try:
                proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr,
                                        env=env, start_new_session=True)
            except OSError as e:
                log.warning("notify command: cannot run %s (%s)", program, e.strerror or e)
                return False
            self._proc = proc
            try:
                proc.communicate(_record_json(record).encode(), timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                log.warning("notify command: %s timed out after %g s, killed", program, self.timeout_s)
                return False
            finally:
                self._proc = None
            if proc.returncode == 0:
                return True
            if proc.returncode < 0:
                why = "at close" if self._abandoned.is_set() else f"by signal {-proc.returncode}"
                log.warning("notify command: %s was killed %s", program, why)
                return False
            stderr.seek(0)
            lines = stderr.read(4096).decode(errors="replace").strip().splitlines()
        log.warning("notify command: %s exited with %d%s", program, proc.returncode,
                    f": {lines[0].strip()[:200]}" if lines else "")
        return False

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        """Kill the command and everything it started (its process group), and reap it."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def abandon(self) -> None:
        super().abandon()
        proc = self._proc
        if proc is not None:  # the worker reaps it and warns
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class _Webhook(_Channel):
    """POSTs the record as JSON. Connection errors, timeouts and 5xx are retried ``retries`` times, waiting
    ``retry_base_s``, then twice that, and so on; any other HTTP error is final. ``timeout_s`` bounds each
    connect and each read, not a whole request.

    While the webhook is down (for an hour, say), each record is tried that way and then dropped with a
    warning naming it, the records behind it wait in the queue (the oldest dropped past ``queue_size``), and
    detection never waits for any of it; the first record it accepts again is logged with how long it was
    down and how many records were dropped meanwhile."""

    name = "webhook"

    def __init__(self, config: WebhookConfig, gate: _Gate, queue_size: int, retry_base_s: float):
        super().__init__(gate, queue_size)
        self.url = config.url
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"notify webhook: url must be http(s)://host/..., got {self.url!r}")
        # Logs name the host only: webhook URLs (Slack, Discord, ...) carry their secret in the path.
        self.where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self.timeout_s = float(config.timeout_s)
        self.retries = max(0, int(config.retries))
        self.retry_base_s = retry_base_s
        self.headers = {"Content-Type": "application/json", "User-Agent": f"barkwatch/{__version__}",
                        **config.headers}
        self._down_since: float | None = None  # monotonic time of the first record it failed, while down
        self._lost_while_down = 0

    def deliver(self, record: dict) -> bool:
        delivered = self._post(record)
        if not delivered:
            self._down_since = self._down_since if self._down_since is not None else time.monotonic()
            self._lost_while_down += 1
        elif self._down_since is not None:
            log.info("notify webhook: %s accepts records again after %.0f s; %d record(s) were dropped meanwhile",
                     self.where, time.monotonic() - self._down_since, self._lost_while_down)
            self._down_since, self._lost_while_down = None, 0
        return delivered

    def _post(self, record: dict) -> bool:
        what = f"{record.get('event')} {record.get('id')}"
        body = _record_json(record).encode()
        attempts, why = self.retries + 1, ""
        for attempt in range(1, attempts + 1):
            if attempt > 1 and self._abandoned.wait(self.retry_base_s * 2 ** (attempt - 2)):
                log.warning("notify webhook: POST of %s to %s abandoned at close after %d attempt(s) (%s)",
                            what, self.where, attempt - 1, why)
                return False
            request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                return True
            except urllib.error.HTTPError as e:
                e.close()
                why = f"HTTP {e.code} {e.reason}"
                if e.code < 500:
                    log.warning("notify webhook: POST of %s to %s rejected (%s), not retried", what, self.where,
                                why)
                    return False
            except (OSError, http.client.HTTPException) as e:  # URLError and timeouts are OSErrors
                why = _reason(e)
            log.debug("notify webhook: POST to %s, attempt %d of %d failed (%s)", self.where, attempt, attempts,
                      why)
        log.warning("notify webhook: POST of %s to %s failed after %d attempt(s) (%s); dropped", what, self.where,
                    attempts, why)
        return False


class _Mqtt(_Channel):
    """Publishes to an MQTT broker through paho-mqtt, whose own thread connects, and reconnects with backoff
    between ``reconnect_delay_s``, in the background: a broker that is down blocks nothing.

    Topics under ``topic_prefix``: ``barking`` ON/OFF and ``barks_today`` (retained state, QoS 0, published
    only while connected and republished on every connect, so a reconnect can never replay a stale ON);
    ``event``, each record's JSON (QoS 1, not retained: held by the client while the broker is unreachable, up
    to ``queue_size`` messages, newer ones then failing); ``status`` online/offline (retained; offline is also
    the last will). With ``discovery``, Home Assistant configs for a "Dog barking" binary sensor and a "Barks
    today" sensor are published (retained) on every connect. The counter counts ``bark`` records and starts
    again at local midnight, within ``tick_s``.

    As a node of a house (``node``): the topics go under ``<prefix>/<node>/`` when it is named; every event
    message carries ``node`` and ``room``; ``state`` (retained JSON) says what the hub shows, published on
    connect and on each ``status`` call. The session is persistent (a fixed client id, clean_session off), so
    QoS 1 event messages in flight when the link drops are sent again on reconnecting.
    """

    name = "mqtt"

    def __init__(self, config: MqttConfig, gate: _Gate, queue_size: int, *, now: Callable[[], datetime],
                 barks_today: int, device_name: str, reconnect_delay_s: tuple[float, float], tick_s: float,
                 node: Node | None = None):
        super().__init__(gate, queue_size)
        try:
            import paho.mqtt.client as mqtt  # here, so that a service without MQTT never imports it
        except ImportError:
            raise ValueError("mqtt: paho-mqtt is not installed; pip install 'barkwatch[mqtt]'") from None

        self.node = node or Node(socket.gethostname(), socket.gethostname())
        if self.node.named and config.client_id == DEFAULT_CLIENT_ID:  # two nodes with one id knock each other off
            config = replace(config, client_id=f"{DEFAULT_CLIENT_ID}-{self.node.name}")
        self.config = config
        self.tick_s = tick_s
        self.where = f"{config.host}:{config.port}"
        prefix = config.topic_prefix.rstrip("/") + (f"/{self.node.name}" if self.node.named else "")
        self.topic_barking, self.topic_event = f"{prefix}/barking", f"{prefix}/event"
        self.topic_count, self.topic_status = f"{prefix}/barks_today", f"{prefix}/status"
        self.topic_state = f"{prefix}/state"
        self._state: dict = {}  # the latest status() given
        self._device_name = f"{device_name} {self.node.name}" if self.node.named else device_name
        self._now = now
        # _lock orders state changes and their publishes against on_connect's republish.
        self._lock = threading.Lock()
        self._connected = False
        self._barking = False
        self._count = int(barks_today)
        self._day: date = now().date()
        self._warned_down = False  # one warning per outage, not one per reconnect attempt
        self._held = 0  # event messages published while disconnected since the last connect

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=config.client_id, clean_session=False)
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        client.will_set(self.topic_status, "offline", qos=1, retain=True)
        client.reconnect_delay_set(*reconnect_delay_s)
        # Room beyond our own limit (see deliver) for what on_connect publishes before paho resends held events.
        client.max_queued_messages_set(queue_size + 8)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        self._client = client
        self._queue_full, self._no_conn = mqtt.MQTT_ERR_QUEUE_SIZE, mqtt.MQTT_ERR_NO_CONN

    def start(self) -> None:
        self._client.connect_async(self.config.host, self.config.port, keepalive=30)
        self._client.loop_start()
        super().start()

    # --- the worker thread

    def handle(self, record: dict, at: datetime) -> None:
        self._roll_day(at)
        kind = record.get("event")
        if kind in ("bark_start", "bark"):
            with self._lock:
                self._barking = kind == "bark_start"
                self._count += kind == "bark"
                self._publish_state()
        super().handle(record, at)

    def deliver(self, record: dict) -> bool:
        if not self._connected and self._held >= self._queue_size:
            info = None
        else:
            info = self._client.publish(self.topic_event, self._event_json(record), qos=1)
        if info is None or info.rc == self._queue_full:
            log.warning("notify mqtt: %d event messages wait for %s already, event %s dropped", self._queue_size,
                        self.where, record.get("id"))
            return False
        if info.rc == self._no_conn:  # held by paho, sent once connected
            self._held += 1
        elif info.rc != 0:
            log.warning("notify mqtt: cannot publish event %s (error %d)", record.get("id"), info.rc)
            return False
        return True

    def _event_json(self, record: dict) -> str:
        return _record_json({**record, "node": self.node.name, "room": self.node.room})

    def status(self, state: dict) -> None:
        """The listener's status (its status file's fields): kept, and published as ``state`` when connected."""
        with self._lock:
            self._state = {k: state.get(k) for k in STATE_KEYS}
            self._publish_node_state()

    def _publish_node_state(self) -> None:
        """The retained ``state`` message (``_lock`` held); nothing while disconnected."""
        if self._connected:
            payload = {"node": self.node.name, "room": self.node.room, "url": self.node.url, **self._state,
                       "barks_today": self._count}
            self._client.publish(self.topic_state, json.dumps(payload, default=str), qos=1, retain=True)

    @property
    def barks_today(self) -> int:
        self._roll_day(self._now())  # read just after midnight, before a tick: today's count is 0
        with self._lock:
            return self._count

    def tick(self) -> None:
        self._roll_day(self._now())

    def _roll_day(self, at: datetime) -> None:
        """Start the counter again on a new local day (only forwards: a queued record may be older)."""
        with self._lock:
            if at.date() > self._day:
                self._day = at.date()
                self._count = 0
                self._publish_state()

    def _publish_state(self) -> None:
        """Publish the barking state and the counter (``_lock`` held); nothing while disconnected."""
        if self._connected:
            self._client.publish(self.topic_barking, "ON" if self._barking else "OFF", qos=0, retain=True)
            self._client.publish(self.topic_count, str(self._count), qos=0, retain=True)

    # --- paho's network thread

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            if not self._warned_down:
                self._warned_down = True
                log.warning("notify mqtt: %s refused the connection (%s); retrying", self.where, reason_code)
            return
        self._warned_down = False
        held, self._held = self._held, 0  # paho sends them now
        log.info("notify mqtt: connected to %s%s", self.where,
                 f"; sending the {held} event message(s) held while it was down" if held else "")
        if self.config.discovery:
            for topic, payload in self._discovery().items():
                client.publish(topic, json.dumps(payload), qos=1, retain=True)
        with self._lock:
            self._connected = True
            self._publish_state()
            self._publish_node_state()
        client.publish(self.topic_status, "online", qos=1, retain=True)

    def _on_connect_fail(self, client, userdata) -> None:
        if not self._warned_down:
            self._warned_down = True
            log.warning("notify mqtt: cannot connect to %s; retrying in the background", self.where)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            was_connected, self._connected = self._connected, False
        if was_connected and not self._closing:
            self._warned_down = True
            log.warning("notify mqtt: lost the connection to %s (%s); reconnecting", self.where, reason_code)

    def _discovery(self) -> dict[str, dict]:
        """Home Assistant MQTT discovery configs, by topic."""
        c = self.config
        device = {"identifiers": [c.client_id], "name": self._device_name, "model": "barkwatch bark detector",
                  "manufacturer": "barkwatch", "sw_version": __version__}
        common = {"availability_topic": self.topic_status, "payload_available": "online",
                  "payload_not_available": "offline", "device": device}
        base = f"{c.discovery_prefix.rstrip('/')}/%s/{c.client_id}/%s/config"
        return {
            base % ("binary_sensor", "barking"): {
                "name": "Dog barking", "device_class": "sound", "state_topic": self.topic_barking,
                "payload_on": "ON", "payload_off": "OFF", "json_attributes_topic": self.topic_event,
                "unique_id": f"{c.client_id}_barking", **common},
            base % ("sensor", "barks_today"): {
                "name": "Barks today", "state_topic": self.topic_count, "state_class": "total_increasing",
                "unit_of_measurement": "barks", "icon": "mdi:dog", "unique_id": f"{c.client_id}_barks_today",
                **common},
        }

    # --- close

    def close(self, deadline: float) -> None:
        super().close(deadline)
        with self._lock:
            connected = self._connected
        if connected:  # a clean disconnect does not fire the will: say offline ourselves
            info = self._client.publish(self.topic_status, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (ValueError, RuntimeError):
                pass
        elif self._held:
            log.warning("notify mqtt: not connected to %s at close; %d event message(s) held for it are lost",
                        self.where, self._held)
        self._client.disconnect()
        # loop_stop joins paho's thread without a timeout, and a connect attempt can take seconds.
        stopper = threading.Thread(target=self._client.loop_stop, name="notify-mqtt-stop", daemon=True)
        stopper.start()
        stopper.join(max(0.0, deadline - time.monotonic()))


class Notifier:
    """Sends bark event records to the channels ``config`` enables: ``command`` (``run`` set), ``webhook``
    (``url`` set) and ``mqtt`` (``host`` set). See the module's docstring for what is sent when.

    ``notify`` never blocks: it queues the record for each channel, whose own thread delivers it. Call
    ``close`` on shutdown: it delivers what it can within its timeout, says MQTT offline and stops the threads
    (daemon threads, so a forgotten ``close`` cannot keep the process alive, but records would be lost).

    ``now`` is the clock (local, timezone-aware by default); ``barks_today`` starts MQTT's counter (a service
    that restarts mid-day can pass the day's count from its event log); ``device_name`` names the Home
    Assistant device (the node's name after it when named); ``node`` is this listener among several;
    ``queue_size`` bounds each channel's queue and the MQTT messages held while the broker is unreachable;
    ``retry_base_s`` is the webhook's first retry delay; ``reconnect_delay_s`` the MQTT reconnect backoff
    (first, longest); ``tick_s`` how often MQTT checks for midnight when idle.
    Raises ``ValueError`` for settings that cannot work (quiet hours, an empty command, a bad URL).
    """

    def __init__(self, config: NotifyConfig, *, now: Callable[[], datetime] = _local_now, barks_today: int = 0,
                 device_name: str = "barkwatch", queue_size: int = DEFAULT_QUEUE_SIZE, retry_base_s: float = 0.5,
                 reconnect_delay_s: tuple[float, float] = (1.0, 60.0), tick_s: float = 30.0,
                 node: Node | None = None):
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self._now = now
        quiet = _quiet_hours(config.quiet_hours)
        channels: list[_Channel] = []
        if config.command.run is not None:
            c = config.command
            channels.append(_Command(c, _Gate(c.on, c.cooldown_s, quiet), queue_size))
        if config.webhook.url is not None:
            w = config.webhook
            channels.append(_Webhook(w, _Gate(w.on, w.cooldown_s, quiet), queue_size, retry_base_s))
        if config.mqtt.host is not None:
            m = config.mqtt
            channels.append(_Mqtt(m, _Gate(m.on, m.cooldown_s, quiet), queue_size, now=now,
                                  barks_today=barks_today, device_name=device_name,
                                  reconnect_delay_s=reconnect_delay_s, tick_s=tick_s, node=node))
        self._channels = channels
        self._closed = False
        for channel in channels:
            channel.start()
        if channels:
            log.info("notify: sending to %s", ", ".join(self.channels))

    @property
    def channels(self) -> list[str]:
        """The enabled channels' names, of ``command``, ``webhook`` and ``mqtt``."""
        return [channel.name for channel in self._channels]

    @property
    def stats(self) -> dict[str, ChannelStats]:
        """A snapshot of each enabled channel's counts, by name."""
        return {channel.name: replace(channel.stats) for channel in self._channels}

    @property
    def barks_today(self) -> int | None:
        """MQTT's ``barks_today`` counter as it stands (``None`` without MQTT): pass it to the Notifier that
        replaces this one on a reload, so the count carries on."""
        mqtt = next((channel for channel in self._channels if isinstance(channel, _Mqtt)), None)
        return None if mqtt is None else mqtt.barks_today

    def status(self, state: dict) -> None:
        """The listener's status file fields (``ServiceState``), for MQTT's retained ``state``; returns at once."""
        for channel in self._channels:
            if isinstance(channel, _Mqtt):
                channel.status(state)

    def notify(self, record: dict) -> None:
        """Queue ``record`` (an ``event_record``) for every channel and return at once; ignored after close."""
        if self._closed or not self._channels:
            return
        at = self._now()
        record = dict(record)  # the caller may reuse its dict; the workers read theirs later
        for channel in self._channels:
            channel.put(record, at)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued within ``timeout`` seconds, then stop every channel; returns within about
        ``timeout``, leaving behind only daemon threads stuck in a request. Records still queued then are
        dropped (counted, warned). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        # In parallel: a webhook that hangs must not use up the time MQTT needs to say offline.
        closers = [threading.Thread(target=self._close_channel, args=(channel, deadline),
                                    name=f"notify-{channel.name}-close", daemon=True) for channel in self._channels]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(max(0.0, deadline - time.monotonic()) + 0.1)

    @staticmethod
    def _close_channel(channel: _Channel, deadline: float) -> None:
        try:
            channel.close(deadline)
        except Exception as e:  # on its own thread: nobody else would hear of it
            log.warning("notify %s: error at close (%s: %s)", channel.name, type(e).__name__, e)

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
