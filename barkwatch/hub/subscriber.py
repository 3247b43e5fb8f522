"""The hub's intake: an MQTT client on a persistent session, a writer, and the backfill.

- MQTT (paho's thread): a fixed client id with clean_session off and QoS 1 subscriptions, so the broker
  holds the nodes' event messages while the hub is away and hands them over when it is back. Each message is
  checked (``messages``) and queued; a bad one is one warning line and skipped.
- The writer (a thread): stores what is queued, many events to a transaction, each event once by its id.
- The backfill (a thread): on every (re)connect, when a node is first heard of, and every
  ``backfill_every_s``, each node's web API is asked for the barks since the last backfill (``GET
  /api/events?since=``, with the node's token): what the broker dropped or never had (the hub away longer
  than the broker keeps messages, a node's gate holding an event back) comes from there. The log says how
  many came from where.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from urllib.parse import quote

from .messages import Malformed, event_row, parse_event, parse_state, parse_status, parse_topic
from .settings import HubError, HubSettings
from .store import Store

log = logging.getLogger("barkwatch")

# A bark is logged when it ends, up to detector.max_duration_s (600 s) after it began; a minute more for clocks.
BACKFILL_MARGIN_S = 660.0
BATCH = 1000  # events to a transaction at most
QUEUE_MAX = 200_000  # messages waiting for the writer; past this the MQTT thread waits (and the broker holds them)


class Hub:
    """The intake of ``settings``: ``start`` connects and starts the threads, ``stop`` ends them."""

    def __init__(self, settings: HubSettings, *, reconnect_delay_s: tuple[float, float] = (1.0, 30.0),
                 http_timeout_s: float = 30.0):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise HubError("hub: paho-mqtt is not installed; pip install 'barkwatch[mqtt]'") from None
        self.settings = settings
        self.http_timeout_s = http_timeout_s
        self.store = Store(settings.db)  # the writer's connection
        self.stats = {"mqtt": 0, "backfill": 0, "skipped": 0}
        self._rooms = {n.name: n.room for n in self.store.nodes()}
        # Each node's web address as first announced: its token goes there only (see _announced_url).
        self._urls = {n.name: n.url for n in self.store.nodes() if n.url}
        self._moved: set[tuple[str, str]] = set()  # (node, address) already warned of
        self._queue: queue.Queue = queue.Queue(QUEUE_MAX)
        self._stop = threading.Event()
        self._wake = threading.Event()  # the backfill: go now
        self._due: set[str] = set()  # nodes to backfill at the next wake; "*": all
        self._due_lock = threading.Lock()
        self._known: set[str] = set()  # nodes heard of since start
        self._unnamed: str | None = None  # the name a single unnamed listener gave itself
        self._connected = threading.Event()
        self._warned_down = False
        self._threads = [threading.Thread(target=self._write_loop, name="hub-writer", daemon=True),
                         threading.Thread(target=self._backfill_loop, name="hub-backfill", daemon=True)]

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id, clean_session=False)
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.broker.tls:
            client.tls_set_context(ssl.create_default_context(cafile=settings.ca_file))
        client.reconnect_delay_set(*reconnect_delay_s)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    # -- life

    def start(self) -> None:
        b = self.settings.broker
        self._client.connect_async(b.host, b.port, keepalive=30)
        self._client.loop_start()
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect, store what is queued, end the threads."""
        self._stop.set()
        self._wake.set()
        self._client.disconnect()
        stopper = threading.Thread(target=self._client.loop_stop, daemon=True)  # joins paho without a timeout
        stopper.start()
        stopper.join(timeout)
        self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self.store.close()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # -- MQTT (paho's thread)

    def _topics(self) -> list[str]:
        p = self.settings.topic_prefix
        return [f"{p}/+/{kind}" for kind in ("event", "state", "status")] + [f"{p}/{kind}" for kind in
                                                                            ("event", "state", "status")]

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            if not self._warned_down:
                self._warned_down = True
                log.warning("hub: %s refused the connection (%s); retrying", self.settings.broker, reason_code)
            return
        self._warned_down = False
        client.subscribe([(topic, 1) for topic in self._topics()])
        log.info("hub: connected to %s as %s (%s)", self.settings.broker, self.settings.client_id,
                 "its session and held messages resumed" if flags.session_present else "a new session")
        self._connected.set()
        self._backfill_soon("*")

    def _on_connect_fail(self, client, userdata) -> None:
        if not self._warned_down:
            self._warned_down = True
            log.warning("hub: cannot connect to %s; retrying in the background", self.settings.broker)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            self._warned_down = True
            log.warning("hub: lost the connection to %s (%s); reconnecting", self.settings.broker, reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        received = time.time()
        try:
            node, kind = parse_topic(msg.topic, self.settings.topic_prefix)
            if kind == "event":
                row = parse_event(msg.payload, node)
                if row is not None:
                    self._queue.put(("event", row, received))
                    self._heard_of(row.node)
            elif kind == "state":
                name, state = parse_state(msg.payload, node)
                if node is None:
                    self._unnamed = name
                self._queue.put(("state", name, state, received))
                self._heard_of(name)
            else:
                online = parse_status(msg.payload)
                name = node or self._unnamed
                if name is not None:
                    self._queue.put(("status", name, online, received))
        except Malformed as e:
            self.stats["skipped"] += 1
            log.warning("hub: skipped a message on %s (%s)", msg.topic[:120], e)
        except Exception as e:  # a bug must not end the intake
            self.stats["skipped"] += 1
            log.warning("hub: skipped a message on %s (unexpected %s: %s)", msg.topic[:120], type(e).__name__, e)

    def _heard_of(self, node: str) -> None:
        if node not in self._known:
            self._known.add(node)
            self._backfill_soon(node)

    # -- the writer

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception as e:  # the database locked for too long, a full disk: warn, keep going
                log.warning("hub: could not store %d message(s): %s (backfill brings the events later)",
                            len(batch), e)
            if None in batch:
                return

    def _write(self, batch: list) -> None:
        rows, seen = [], {}
        for item in batch:
            if item is None:
                continue
            kind, node = item[0], (item[1].node if item[0] == "event" else item[1])
            seen[node] = item[-1]
            if kind == "event":
                rows.append(item[1])
            elif kind == "state":
                state = item[2]
                room = state.get("room") if isinstance(state.get("room"), str) else None
                self._rooms[node] = room or self._rooms.get(node) or node
                self.store.set_node(node, room=self._rooms[node], url=self._announced_url(node, state.get("url")),
                                    state=state)
            else:
                self.store.set_node(node, online=int(item[2]))
        if rows:
            self.stats["mqtt"] += self.store.add(rows, "mqtt", self._rooms)
        for node, when in seen.items():
            self.store.set_node(node, seen=when)

    def _announced_url(self, node: str, url: str | None) -> str | None:
        """The address the hub keeps for ``node``: the first it announced. Anyone who may publish to the broker
        can announce an address, and the hub sends the node's token there (backfill, clips), so a later,
        different one is not taken on its word: pinned in ``hub.node_urls`` it is the admin's choice."""
        first = self._urls.get(node)
        if not isinstance(url, str) or not url or url == first:
            return first
        if node in self.settings.node_urls:  # the pinned address is used whatever the node says
            return url
        if first is None:
            self._urls[node] = url
            return url
        if (node, url) not in self._moved:
            self._moved.add((node, url))
            log.warning("hub: %s announces a new web address, %s (was %s); its token still goes only to %s: if the "
                        "listener really moved, set hub.node_urls: {%s: \"%s\"}", node, url, first, first, node, url)
        return first

    # -- the backfill

    def _backfill_soon(self, node: str) -> None:
        with self._due_lock:
            self._due.add(node)
        self._wake.set()

    def _backfill_loop(self) -> None:
        store = Store(self.settings.db)  # its own connection
        try:
            while not self._stop.is_set():
                woken = self._wake.wait(self.settings.backfill_every_s)
                self._wake.clear()
                if self._stop.is_set():
                    break
                if woken:
                    time.sleep(0.5)  # let the retained states of a fresh connection arrive first
                with self._due_lock:
                    due, self._due = self._due, set()
                for node in store.nodes():
                    url = self.settings.node_url(node.name, node.url)
                    if not woken or "*" in due or node.name in due:
                        self.backfill(store, node.name, url, node.synced, loud=woken)
                for name in set(self.settings.node_urls) - {n.name for n in store.nodes()}:
                    store.set_node(name)  # a node in the config the broker has not told of yet
                    self.backfill(store, name, self.settings.node_url(name, None), None, loud=woken)
        finally:
            store.close()

    def backfill(self, store: Store, name: str, url: str | None, synced: float | None, loud: bool = True) -> int:
        """Ask one node's web API for the barks since ``synced`` (else ``backfill_days`` back) and store the
        ones the hub lacks; the number that were new (-1 when the node could not be asked)."""
        if url is None:
            if loud:
                log.info("hub: backfill: %s announces no web address (node.url, or hub.node_urls); only MQTT", name)
            return -1
        asked = time.time()
        since = synced if synced is not None else asked - self.settings.backfill_days * 86400
        since_iso = datetime.fromtimestamp(since, timezone.utc).isoformat(timespec="seconds")
        request = urllib.request.Request(f"{url}/api/events?since={quote(since_iso)}")
        token = self.settings.token_for(name)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.http_timeout_s) as response:
                body = json.loads(response.read())
            records = body["events"] if isinstance(body, dict) else None
            if not isinstance(records, list):
                raise ValueError("no events list in the answer")
        except urllib.error.HTTPError as e:
            log.warning("hub: backfill from %s (%s): HTTP %d %s%s", name, url, e.code, e.reason,
                        "; is its token in hub.node_tokens or hub.node_token?" if e.code == 401 else "")
            return -1
        except (OSError, ValueError) as e:
            log.warning("hub: backfill from %s (%s) failed: %s; tried again in %.0f s", name, url,
                        getattr(e, "reason", e), self.settings.backfill_every_s)
            return -1
        rows, bad = [], 0
        for record in records:
            try:
                row = event_row(record, name) if isinstance(record, dict) else None
            except Malformed:
                row = None
            if row is None:
                bad += 1
            else:
                rows.append(row)
        new = store.add(rows, "backfill", self._rooms)
        store.set_node(name, synced=asked - BACKFILL_MARGIN_S)
        self.stats["backfill"] += new
        (log.info if loud or new else log.debug)(
            "hub: backfill from %s (%s): %d new of %d event(s) since %s%s", name, url, new, len(rows),
            datetime.fromtimestamp(since).astimezone().isoformat(timespec="seconds"),
            f"; {bad} record(s) unreadable, skipped" if bad else "")
        return new
