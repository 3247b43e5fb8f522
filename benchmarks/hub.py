"""The hub under load, through a real mosquitto on this machine.

    python benchmarks/hub.py --nodes 50 --rate 10 --seconds 120      # 50 listeners, 10 barks a minute each
    python benchmarks/hub.py --nodes 10 --rate 6000 --seconds 10     # a burst: 1,000 barks a second
    python benchmarks/hub.py --page-events 500000                    # a year of a busy listener: the pages

A private mosquitto (``max_queued_messages 100000``, as docs/hub.md advises) and ``barkwatch hub`` in a
subprocess; ``--nodes`` MQTT clients, each publishing ``bark`` records to ``barkwatch/node-N/event`` (QoS 1,
its own persistent session) at ``--rate`` a minute, evenly spread, for ``--seconds``. A reader polls the
hub's database every 20 ms (a second connection, as the pages read it) and notes when each event became
queryable. Reports events stored per second, the end-to-end delay (publish to queryable: median, p95, max),
lost events (published, never stored within 30 s of the end), and the hub's CPU seconds (utime + stime from
``/proc/PID/stat``) and peak RSS (``VmHWM``).

``--page-events N`` instead fills a database with N events of one listener over a year (a second one hears
a third of them), serves the hub's pages from it and times over HTTP (median and max of 20 requests each) today's page (``/``,
as far as today has gone), a whole day's page (yesterday's, ``/history?day=``) and its API
(``/api/events?since=&until=``), and the four weeks of ``/history``.

``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from mqttbroker import Broker, free_port, wait_for_port  # beside this script, as the tests' broker

REPO = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def record(node: str, at: datetime) -> dict:
    return {"event": "bark", "id": uuid.uuid4().hex[:16], "source": "hw:1",
            "start": at.isoformat(timespec="milliseconds"), "end": (at + timedelta(seconds=1.5)).isoformat(
                timespec="milliseconds"), "duration_s": 1.5, "peak_score": round(random.uniform(0.6, 1.0), 4),
            "level_dbfs": round(random.uniform(-50, -15), 2), "windows": 6, "clip": None, "node": node,
            "room": node}


def load(args) -> dict:
    import paho.mqtt.client as mqtt

    folder = Path(tempfile.mkdtemp(prefix="barkwatch-hub-bench-"))
    # Held for an absent hub: more than a burst (the default, 1,000, would drop some of it).
    broker = Broker(folder, settings=["max_queued_messages 100000"]).start()
    port = broker.port
    db = folder / "hub.sqlite"
    (folder / "empty.yaml").write_text("")
    hub = subprocess.Popen([sys.executable, "-m", "barkwatch", "hub", "--mqtt", f"mqtt://127.0.0.1:{port}", "--db",
                            str(db), "--port", str(free_port()), "--config", str(folder / "empty.yaml")],
                           cwd=REPO, stderr=open(folder / "hub.log", "w"), stdout=subprocess.DEVNULL)
    published: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()
    try:
        deadline = time.monotonic() + 30
        while "hub: connected" not in (folder / "hub.log").read_text():
            if time.monotonic() > deadline or hub.poll() is not None:
                raise SystemExit(f"the hub did not connect: {(folder / 'hub.log').read_text()}")
            time.sleep(0.05)
        clients = []
        for i in range(args.nodes):
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-node-{i}", clean_session=False)
            c.max_queued_messages_set(0)
            c.max_inflight_messages_set(100)
            c.connect("127.0.0.1", port)
            c.loop_start()
            clients.append(c)

        def poll() -> None:
            reader, last = None, 0
            while not done.is_set():
                if reader is None and db.exists():
                    reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                if reader is not None:
                    try:
                        rows = reader.execute("SELECT rowid, id FROM events WHERE rowid > ?", (last,)).fetchall()
                    except sqlite3.OperationalError:
                        rows = []
                    now = time.time()
                    for rowid, event_id in rows:
                        seen.setdefault(event_id, now)
                        last = max(last, rowid)
                time.sleep(0.02)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        cpu0, t0 = cpu_seconds(hub.pid), time.monotonic()
        interval = 60.0 / args.rate  # seconds between one node's events
        schedule = sorted((random.uniform(0, interval) + k * interval, i) for i in range(args.nodes)
                          for k in range(int(args.seconds / interval + 1e-9)))
        for offset, i in schedule:
            delay = t0 + offset - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            r = record(f"node-{i}", datetime.now().astimezone())
            published[r["id"]] = time.time()
            clients[i].publish(f"barkwatch/node-{i}/event", json.dumps(r), qos=1)
        sent_s = time.monotonic() - t0
        end = time.monotonic() + 30
        while len(seen) < len(published) and time.monotonic() < end:
            time.sleep(0.1)
        drained_s = time.monotonic() - t0
        cpu = cpu_seconds(hub.pid) - cpu0
        rss = peak_rss_mb(hub.pid)
        done.set()
        for c in clients:
            c.loop_stop()
            c.disconnect()
    finally:
        hub.terminate()
        hub.wait(30)
        broker.stop()
    delays = sorted(seen[i] - published[i] for i in published if i in seen)
    stored_at = sorted(seen[i] for i in published if i in seen)
    span = (stored_at[-1] - min(published.values())) if stored_at else float("nan")
    result = {
        "nodes": args.nodes, "rate_per_min": args.rate, "seconds": args.seconds, "published": len(published),
        "published_per_s": round(len(published) / sent_s, 1), "stored": len(delays),
        "lost": len(published) - len(delays), "stored_per_s": round(len(delays) / span, 1) if delays else 0.0,
        "delay_median_s": round(statistics.median(delays), 3) if delays else None,
        "delay_p95_s": round(delays[int(0.95 * (len(delays) - 1))], 3) if delays else None,
        "delay_max_s": round(delays[-1], 3) if delays else None,
        "hub_cpu_s": round(cpu, 2), "hub_cpu_share": round(cpu / drained_s, 3), "hub_peak_rss_mb": round(rss, 1),
        "hub_log_tail": (folder / "hub.log").read_text().splitlines()[-3:],
    }
    shutil.rmtree(folder, ignore_errors=True)
    return result


def pages(args) -> dict:
    from barkwatch.hub.messages import event_row
    from barkwatch.hub.settings import Broker, HubSettings
    from barkwatch.hub.store import Store
    from barkwatch.hub.web import serve

    folder = Path(tempfile.mkdtemp(prefix="barkwatch-hub-pages-"))
    db = folder / "hub.sqlite"
    now = datetime.now().astimezone()
    random.seed(1)
    started = time.monotonic()
    with Store(db) as store:
        batch = []
        for k in range(args.page_events):  # evenly over the year up to now, the latest today
            at = now - timedelta(days=365) + timedelta(days=365) * (k + 0.5) / args.page_events
            batch.append(event_row(record("busy", at), "busy"))
            if random.random() < 1 / 3:  # the next room hears a third of them, quieter, a little later
                other = record("next-door", at + timedelta(seconds=0.3))
                other["level_dbfs"] = -55.0
                batch.append(event_row(other, "next-door"))
            if len(batch) >= 20_000:
                store.add(batch, "mqtt")
                batch = []
        store.add(batch, "mqtt")
        total = store.count()
        today = len(store.heard(datetime.combine(now.date(), datetime.min.time()).astimezone().timestamp(),
                                now.timestamp() + 1))
    fill_s = time.monotonic() - started
    settings = HubSettings(Broker("127.0.0.1", 1, False), db, port=free_port())
    stop = threading.Event()
    threading.Thread(target=serve, args=(settings, None, stop), daemon=True).start()
    wait_for_port(settings.port, timeout=30.0)
    timings = {}
    yesterday = (now.date() - timedelta(days=1)).isoformat()
    for path in ("/", f"/history?day={yesterday}", f"/api/events?since={yesterday}&until={now.date()}", "/history"):
        times = []
        for _ in range(20):
            t = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{settings.port}{path}", timeout=60) as r:
                r.read()
            times.append(time.perf_counter() - t)
        timings[path] = {"median_ms": round(1000 * statistics.median(times), 1), "max_ms": round(1000 * max(times), 1)}
    stop.set()
    size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    shutil.rmtree(folder, ignore_errors=True)
    return {"events": total, "events_today": today, "db_mb": round(size_mb, 1), "fill_s": round(fill_s, 1),
            "pages": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0, help="events a minute per node")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--page-events", type=int, default=0, help="time the pages on a database of this many "
                        "events instead")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    result = pages(args) if args.page_events else load(args)
    result = {"when": started, "load_avg_1m": os.getloadavg()[0], **result}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
