"""Real servers for tests that talk to the network: a mosquitto broker, an MQTT subscriber that records what it
receives, and an HTTP server that records POSTs and answers as a test scripts it. All on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The broker is benchmarks/mqttbroker.py's, which benchmarks/hub.py starts too; the tests import it from here.
from mqttbroker import MOSQUITTO, Broker, free_port, wait_for_port  # noqa: F401


@dataclass(frozen=True)
class Message:
    topic: str
    payload: str
    retain: bool

    def json(self):
        return json.loads(self.payload)


class Subscriber:
    """An MQTT client subscribed to ``topics`` (QoS 1) that records every message; connected and subscribed
    when the constructor returns, so retained messages are among the first recorded. With a ``client_id`` and
    ``persistent``, the broker keeps its subscription, and queues messages for it, while it is away."""

    def __init__(self, port: int, topics: tuple[str, ...] = ("#",), *, client_id: str | None = None,
                 persistent: bool = False, username: str | None = None, password: str | None = None,
                 timeout: float = 5.0):
        import paho.mqtt.client as mqtt

        self.messages: list[Message] = []
        self._cond = threading.Condition()
        subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                   clean_session=not persistent)
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *args: subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        self._client.subscribe([(topic, 1) for topic in topics])
        if not subscribed.wait(timeout):
            raise TimeoutError("no SUBACK from the broker")

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, msg.payload.decode(), bool(msg.retain)))
            self._cond.notify_all()

    def on(self, topic: str) -> list[Message]:
        """The messages received on ``topic`` so far, oldest first."""
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, topic: str, payload: str | None = None, timeout: float = 5.0, count: int = 1) -> Message:
        """The ``count``-th message on ``topic`` (with ``payload``, when given), waiting for it if need be."""
        def matches() -> list[Message]:
            return [m for m in self.messages if m.topic == topic and payload in (None, m.payload)]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matches()) >= count, timeout):
                seen = [(m.topic, m.payload) for m in self.messages]
                raise TimeoutError(f"no {count} message(s) {payload!r} on {topic} within {timeout} s; got {seen}")
            return matches()[count - 1]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class HttpRecorder:
    """A ``ThreadingHTTPServer`` on ``port`` (a free one by default) that records each POST and answers it with the next of
    ``responses`` (then ``default``): a status code, or ``"hang"`` to wait until ``release()`` (or teardown)
    before answering 200. ``url`` is where it listens."""

    def __init__(self, responses: list[int | str] = (), default: int | str = 200, port: int = 0):
        self.requests: list[Request] = []
        self._responses = list(responses)
        self._default = default
        self._cond = threading.Condition()
        self._released = threading.Event()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = recorder._record(Request(self.path, dict(self.headers), body))
                if answer == "hang":
                    recorder._released.wait(30)
                    answer = 200
                try:
                    self.send_response(answer)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the client gave up waiting
                    pass

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _record(self, request: Request) -> int | str:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
            return self._responses.pop(0) if self._responses else self._default

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[Request]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} requests within {timeout} s")
            return list(self.requests)

    def release(self) -> None:
        """Let hanging requests answer (and any later ones not hang)."""
        self._released.set()

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
