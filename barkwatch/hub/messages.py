"""What the hub accepts from the broker and from a node's web API: each message is checked whole before
anything of it is stored, and a bad one is named in one line and skipped.

Topics, under the nodes' ``topic_prefix`` (``barkwatch``): ``<prefix>/<node>/event`` (a record, JSON),
``<prefix>/<node>/state`` (the node's retained state, JSON) and ``<prefix>/<node>/status`` (``online`` or
``offline``, the last will); and the same without ``<node>/`` for a single listener that has no name, whose
name then comes from the message (its host name).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

from ..config import valid_node_name
from ..service.web import EVENT_ID

MAX_BYTES = 64 * 1024  # a record is about 600 bytes; anything near this is not one
KINDS = ("event", "state", "status")


class Malformed(ValueError):
    """A message the hub skips; the text says why, in a few words."""


@dataclass(frozen=True)
class Row:
    """An event as the database stores it."""

    id: str
    node: str
    room: str | None  # None: the node's room as the hub knows it
    start: float  # Unix seconds
    start_iso: str  # as the node wrote it, with its UTC offset
    duration_s: float
    peak_score: float | None
    level_dbfs: float | None
    clip: bool
    record: str  # the JSON as received


def parse_topic(topic: str, prefix: str) -> tuple[str | None, str]:
    """``(node, kind)`` of a topic under ``prefix``; node None for a single unnamed listener's topics.
    Raises Malformed for a topic of no known kind or with a node name that is not allowed."""
    rest = topic[len(prefix) + 1:] if topic.startswith(prefix + "/") else None
    if rest is None:
        raise Malformed(f"not under {prefix}/")
    parts = rest.split("/")
    if len(parts) == 1 and parts[0] in KINDS:
        return None, parts[0]
    if len(parts) != 2 or parts[1] not in KINDS:
        raise Malformed("not a topic the hub reads")
    if not valid_node_name(parts[0]):
        raise Malformed(f"node name {parts[0][:80]!r} not allowed (no /, + or #, 1 to 64 printable characters)")
    return parts[0], parts[1]


def _json(payload: bytes) -> dict:
    if len(payload) > MAX_BYTES:
        raise Malformed(f"{len(payload):,} bytes, more than {MAX_BYTES:,}")
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("not JSON") from None
    if not isinstance(value, dict):
        raise Malformed("not a JSON object")
    return value


def _node_of(value: dict, topic_node: str | None) -> str:
    node = value.get("node", topic_node)
    if topic_node is not None and node != topic_node:
        raise Malformed(f"node {str(node)[:80]!r} in a message on {topic_node}'s topic")
    if not valid_node_name(node):
        raise Malformed(f"node name {str(node)[:80]!r} not allowed")
    return node


def _number(value: dict, key: str, optional: bool = False) -> float | None:
    x = value.get(key)
    if x is None and optional:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise Malformed(f"{key}: not a number")
    return float(x)


def event_row(value: dict, node: str | None) -> Row | None:
    """The row of a record (an MQTT event message's, or one of a node's API), or None for a ``bark_start``
    (the hub stores finished barks). ``node``: from the topic, or the node the API was asked; the record's
    own ``node``, when it has one, must agree."""
    node = _node_of(value, node)
    kind = value.get("event")
    if kind not in ("bark_start", "bark"):
        raise Malformed(f"event: {str(kind)[:40]!r}, not bark_start or bark")
    event_id = value.get("id")
    if not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id):
        raise Malformed("id: not an event id")
    if kind == "bark_start":
        return None
    start = value.get("start")
    try:
        when = datetime.fromisoformat(start) if isinstance(start, str) else None
    except ValueError:
        when = None
    if when is None or when.utcoffset() is None:
        raise Malformed("start: not a time with its UTC offset")
    duration = _number(value, "duration_s")
    if duration < 0:
        raise Malformed("duration_s: negative")
    room = value.get("room")
    if room is not None and not (isinstance(room, str) and 0 < len(room) <= 64):
        raise Malformed("room: not a name of 1 to 64 characters")
    return Row(event_id, node, room, when.timestamp(), start, duration, _number(value, "peak_score", True),
               _number(value, "level_dbfs", True), bool(value.get("clip")),
               json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def parse_event(payload: bytes, node: str | None) -> Row | None:
    return event_row(_json(payload), node)


def parse_state(payload: bytes, node: str | None) -> tuple[str, dict]:
    """``(node, state)`` of a state message: what the node says of itself (room, url, listening, level ...)."""
    value = _json(payload)
    node = _node_of(value, node)
    url = value.get("url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise Malformed("url: not an http:// or https:// address")
    room = value.get("room")
    if room is not None and not (isinstance(room, str) and 0 < len(room) <= 64):
        raise Malformed("room: not a name of 1 to 64 characters")
    return node, value


def parse_status(payload: bytes) -> bool:
    """Whether a status message says online."""
    if payload in (b"online", b"offline"):
        return payload == b"online"
    raise Malformed("status: not online or offline")
