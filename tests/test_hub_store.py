"""The hub's pure parts and its database: merging hearings into barks, checking messages, storing each event
once, and the pages served from a prepared database (no broker)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta

import pytest
from servers import free_port, wait_for_port

from barkwatch.hub.merge import Heard, merge
from barkwatch.hub.messages import MAX_BYTES, Malformed, event_row, parse_event, parse_state, parse_topic
from barkwatch.hub.settings import Broker, HubError, HubSettings
from barkwatch.hub.store import Store


def heard(event_id: str, node: str, start: float, level: float | None, score: float = 0.9) -> Heard:
    return Heard(event_id, node, node.title(), start, 1.0, level, score, clip=True)


# -- merge


def test_one_bark_heard_by_three_rooms_is_placed_in_the_loudest():
    barks = merge([heard("a", "kitchen", 100.3, -40.0), heard("b", "garden", 100.0, -25.0),
                   heard("c", "hall", 100.9, -31.0)], window_s=1.0)
    assert len(barks) == 1
    bark = barks[0]
    assert bark.room == "Garden" and bark.id == "b" and bark.also == ["Hall", "Kitchen"]
    assert bark.start == 100.0 and bark.duration_s == pytest.approx(1.9)


def test_barks_further_apart_than_the_window_stay_apart():
    barks = merge([heard("a", "kitchen", 100.0, -40.0), heard("b", "garden", 101.2, -25.0)], window_s=1.0)
    assert [b.id for b in barks] == ["a", "b"] and all(b.also == [] for b in barks)


def test_one_nodes_two_events_are_two_barks_each_joined_by_the_other_room():
    barks = merge([heard("a1", "kitchen", 100.0, -30.0), heard("a2", "kitchen", 100.5, -30.0),
                   heard("b1", "garden", 100.2, -35.0), heard("b2", "garden", 100.7, -20.0)], window_s=1.0)
    assert [(b.id, b.room, b.also) for b in barks] == [("a1", "Kitchen", ["Garden"]), ("b2", "Garden", ["Kitchen"])]


def test_placing_falls_back_to_the_score_then_the_name_and_an_unknown_level_is_quietest():
    same = merge([heard("x", "b-node", 5.0, -30.0, 0.8), heard("y", "a-node", 5.0, -30.0, 0.8)])
    assert same[0].id == "y"
    by_score = merge([heard("x", "b-node", 5.0, -30.0, 0.95), heard("y", "a-node", 5.0, -30.0, 0.8)])
    assert by_score[0].id == "x"
    unknown = merge([heard("x", "b-node", 5.0, None, 0.99), heard("y", "a-node", 5.0, -80.0, 0.5)])
    assert unknown[0].id == "y"


def test_merge_is_independent_of_the_input_order():
    events = [heard(f"e{i}", f"n{i % 3}", 10.0 * (i // 3) + 0.1 * (i % 3), -30.0 - i) for i in range(30)]
    assert [b.heard for b in merge(events)] == [b.heard for b in merge(reversed(events))]
    assert len(merge(events)) == 10


# -- messages


def record(**changes) -> dict:
    base = {"event": "bark", "id": "3f2a9c0d1e2b4a5c", "source": "hw:1", "start": "2026-12-07T10:00:01.250+01:00",
            "end": "2026-12-07T10:00:02.750+01:00", "duration_s": 1.5, "peak_score": 0.97, "level_dbfs": -31.5,
            "clip": "/var/lib/barkwatch/clips/100001_3f2a9c0d1e2b4a5c.flac", "node": "garden", "room": "Garden"}
    return {k: v for k, v in {**base, **changes}.items() if v is not ...}


def test_a_good_event_becomes_a_row_and_a_bark_start_is_not_stored():
    row = parse_event(json.dumps(record()).encode(), "garden")
    assert (row.id, row.node, row.room, row.duration_s, row.level_dbfs, row.clip) == (
        "3f2a9c0d1e2b4a5c", "garden", "Garden", 1.5, -31.5, True)
    assert row.start == datetime.fromisoformat("2026-12-07T10:00:01.250+01:00").timestamp()
    assert parse_event(json.dumps(record(event="bark_start")).encode(), "garden") is None
    assert event_row(record(node=..., room=..., level_dbfs=None), "garden").level_dbfs is None  # from a node's API


@pytest.mark.parametrize("payload, reason", [
    (b"woof", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b"x" * (MAX_BYTES + 1), "more than"),
    (json.dumps(record(event="meow")).encode(), "event:"),
    (json.dumps(record(id="../../etc/passwd")).encode(), "id:"),
    (json.dumps(record(start="yesterday")).encode(), "start:"),
    (json.dumps(record(start="2026-12-07T10:00:01")).encode(), "start:"),  # no UTC offset
    (json.dumps(record(duration_s="long")).encode(), "duration_s:"),
    (json.dumps(record(duration_s=-1)).encode(), "duration_s:"),
    (json.dumps(record(peak_score=True)).encode(), "peak_score:"),
    (json.dumps(record(node="kitchen")).encode(), "node 'kitchen' in a message on garden's topic"),
    (json.dumps(record(room="x" * 65)).encode(), "room:"),
])
def test_a_bad_event_is_refused_with_its_reason(payload, reason):
    with pytest.raises(Malformed, match=reason):
        parse_event(payload, "garden")


def test_topics_and_node_names():
    assert parse_topic("barkwatch/garden/event", "barkwatch") == ("garden", "event")
    assert parse_topic("barkwatch/state", "barkwatch") == (None, "state")
    for topic, reason in [("barkwatch//event", "not allowed"), ("barkwatch/" + "n" * 65 + "/event", "not allowed"),
                          ("barkwatch/ garden/event", "not allowed"), ("barkwatch/garden/barking", "not a topic"),
                          ("barkwatch/a/b/event", "not a topic"), ("other/garden/event", "not under")]:
        with pytest.raises(Malformed, match=reason):
            parse_topic(topic, "barkwatch")
    with pytest.raises(Malformed, match="not allowed"):  # an unnamed listener naming itself badly
        parse_event(json.dumps(record(node="a/b")).encode(), None)
    assert parse_state(b'{"node": "garden", "room": "Garden", "url": "http://10.0.0.5:8080"}', "garden")[0] == "garden"
    with pytest.raises(Malformed, match="url"):
        parse_state(b'{"url": "file:///etc/passwd"}', "garden")


def test_broker_urls():
    assert Broker.parse("mqtt://broker.lan") == Broker("broker.lan", 1883, False)
    assert Broker.parse("mqtts://broker.lan") == Broker("broker.lan", 8883, True)
    assert str(Broker.parse("mqtt://10.0.0.2:1884")) == "mqtt://10.0.0.2:1884"
    with pytest.raises(HubError, match="mqtt://HOST"):
        Broker.parse("http://broker")


# -- the store


def row(event_id: str, node: str, start: datetime, level: float, room: str | None = None):
    return event_row(record(id=event_id, node=..., room=room or ..., start=start.isoformat(timespec="milliseconds"),
                            level_dbfs=level), node)


def test_each_event_is_stored_once_in_wal_mode(tmp_path):
    now = datetime.now().astimezone()
    with Store(tmp_path / "hub.sqlite") as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rows = [row(f"e{i}", "garden", now + timedelta(seconds=i), -30.0) for i in range(5)]
        assert store.add(rows, "mqtt", {"garden": "Garden"}) == 5
        assert store.add(rows[3:] + [row("e9", "hall", now, -20.0)], "backfill") == 1  # a duplicate is one row
        assert store.count() == 6
        found = store.heard(now.timestamp() - 1, now.timestamp() + 10)
        assert [h.id for h in found] == ["e0", "e9", "e1", "e2", "e3", "e4"]
        assert {h.room for h in found} == {"Garden", "hall"}  # the node's room, else its name
        assert store.event("e9") == ("hall", True) and store.event("nope") is None
        store.set_node("garden", room="Garden", url="http://g:8080", state={"status": "listening"}, seen=1.0)
        store.set_node("garden", online=0)
        (node,) = store.nodes()
        assert (node.room, node.url, node.online, node.state, node.seen) == (
            "Garden", "http://g:8080", False, {"status": "listening"}, 1.0)


# -- the pages, from a prepared database


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_pages_show_each_bark_in_its_room_and_need_the_token(tmp_path):
    from barkwatch.hub.web import serve

    now = datetime.now().astimezone().replace(microsecond=0)
    start = max(now - timedelta(minutes=5), now.replace(hour=0, minute=0, second=1))
    with Store(tmp_path / "hub.sqlite") as store:
        store.add([row("g1", "garden", start, -25.0, "Garden"), row("k1", "kitchen", start + timedelta(seconds=0.4),
                                                                    -37.0, "Kitchen"),
                   row("k2", "kitchen", start + timedelta(seconds=30), -37.0, "Kitchen")], "mqtt")
        store.set_node("garden", room="Garden", online=1, seen=time.time(),
                       state={"status": "listening", "device": "hw:1", "level_dbfs": -50.0})
        store.set_node("kitchen", room="Kitchen", online=0, seen=time.time() - 3600, state={"status": "listening"})
    settings = HubSettings(Broker("127.0.0.1", 1, False), tmp_path / "hub.sqlite", port=free_port(),
                           token="a-long-secret")
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(settings, None, stop), daemon=True)
    thread.start()
    try:
        wait_for_port(settings.port, timeout=20)
        base = f"http://127.0.0.1:{settings.port}"
        assert get(base + "/")[0] == 401 and get(base + "/api/events")[0] == 401
        code, body = get(base + "/api/events", "a-long-secret")
        barks = json.loads(body)["barks"]
        assert code == 200 and [(b["id"], b["room"], b["also"]) for b in barks] == [
            ("k2", "Kitchen", []), ("g1", "Garden", ["Kitchen"])]
        code, body = get(base + "/api/events?room=Garden", "a-long-secret")
        assert [b["id"] for b in json.loads(body)["barks"]] == ["g1"]
        nodes = json.loads(get(base + "/api/status", "a-long-secret")[1])["nodes"]
        assert [(n["name"], n["listening"], n["status"]) for n in nodes] == [
            ("garden", True, "listening"), ("kitchen", False, "offline")]
        code, page = get(base + "/", "a-long-secret")
        assert code == 200 and b'data-id="g1"' in page and b"<td class=also>Kitchen</td>" in page
        assert b'data-id="k1"' not in page  # heard in the kitchen, placed in the garden
        code, page = get(base + f"/history?day={start.date()}&room=Kitchen", "a-long-secret")
        assert code == 200 and b'data-id="k2"' in page and b'data-id="g1"' not in page
        assert get(base + "/api/clips/..%2Fsecret", "a-long-secret")[0] == 404
        assert get(base + "/api/clips/unknown1", "a-long-secret")[0] == 404
        code, body = get(base + "/api/clips/g1", "a-long-secret")  # no address for the garden listener
        assert code == 502 and b"announces no web address" in body
    finally:
        stop.set()
        thread.join(10)


def test_a_public_address_needs_a_token(tmp_path):
    from barkwatch.hub.web import check

    with pytest.raises(HubError, match="needs a token"):
        check(HubSettings(Broker("h", 1883, False), tmp_path / "db", host="0.0.0.0"))


def test_a_node_that_announces_a_new_address_keeps_its_first_until_the_admin_pins_one(tmp_path, caplog):
    """Anyone who may publish to the broker can announce an address, and the hub sends the node's token there:
    the first address a node gave is kept (across restarts, from the database), a different one is named in
    the log once and not used; a node pinned in hub.node_urls takes what it says, the pin winning anyway."""
    pytest.importorskip("paho.mqtt.client")
    from barkwatch.hub.subscriber import Hub

    settings = HubSettings(Broker("127.0.0.1", 1, False), tmp_path / "hub.sqlite", node_urls={"hall": "http://h:1"})
    hub = Hub(settings)
    assert hub._announced_url("garden", "http://garden:8080") == "http://garden:8080"
    hub.store.set_node("garden", url="http://garden:8080")
    for _ in range(2):
        assert hub._announced_url("garden", "http://evil:8080") == "http://garden:8080"
    assert caplog.text.count("garden announces a new web address, http://evil:8080") == 1
    assert hub._announced_url("garden", None) == "http://garden:8080"
    assert hub._announced_url("hall", "http://hall-new:8080") == "http://hall-new:8080"
    assert settings.node_url("hall", "http://hall-new:8080") == "http://h:1"
    hub.store.close()
    again = Hub(settings)  # after a restart: the first address comes from the database
    assert again._announced_url("garden", "http://evil:8080") == "http://garden:8080"
    again.store.close()
