"""The hub's pages and API, served by aiohttp behind the ``web`` command's guard (``guard_middleware``): on
127.0.0.1 unless told otherwise, and anywhere else only with a token (``hub.token``).

- ``/``: today across the house: barks per room, each listener's state, today's barks each in its room with
  the other rooms that heard it (``?room=`` one room's);
- ``/history``: barks by room and day for four weeks, and any day's barks (``?day=``, ``?room=``);
- ``GET /api/status``: the listeners; ``GET /api/events?since=&until=&room=``: the barks, newest first;
- ``GET /api/clips/ID``: the clip of a stored event, fetched from its listener when asked (with that
  listener's token), never copied to the hub. Only ids, never paths; only events the hub has stored.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Callable

from ..service.web import (EVENT_ID, WebError, guard_middleware, history_day, is_loopback, local_midnight,
                           run_app)
from ..service.eventlog import parse_when
from . import pages
from .merge import Bark, merge
from .settings import HubError, HubSettings
from .store import NodeRow, Store

log = logging.getLogger("barkwatch")

HISTORY_DAYS = 28
SHOWN = 100  # barks on the today page
STALE_AFTER_S = 60.0  # a listener not heard from for 3 of its updates, and at least this, is not listening


def check(settings: HubSettings) -> None:
    if not is_loopback(settings.host) and not settings.token:
        raise HubError(f"hub.host {settings.host}: serving beyond this machine needs a token (hub.token, or "
                       "--token); or keep hub.host 127.0.0.1")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def bark_view(bark: Bark) -> dict:
    p = bark.placed
    return {"id": p.id, "start": _iso(bark.start), "room": p.room, "node": p.node, "also": bark.also,
            "duration_s": round(bark.duration_s, 3), "level_dbfs": p.level_dbfs, "peak_score": p.peak_score,
            "clip": p.clip, "heard": [{"id": h.id, "node": h.node, "room": h.room, "start": _iso(h.start),
                                       "level_dbfs": h.level_dbfs, "peak_score": h.peak_score, "clip": h.clip}
                                      for h in bark.heard]}


def node_view(node: NodeRow, now: float) -> dict:
    s = node.state
    every = s.get("update_every_s") if isinstance(s.get("update_every_s"), (int, float)) else 10.0
    fresh = node.seen is not None and now - node.seen <= max(3 * every, STALE_AFTER_S)
    listening = node.online is not False and fresh and s.get("status") == "listening"
    status = s.get("status") if node.online is not False else "offline"
    return {"name": node.name, "room": node.room, "listening": listening, "status": status,
            "device": s.get("device"), "level_dbfs": s.get("level_dbfs"),
            "last_seen": _iso(node.seen) if node.seen is not None else None, "url": node.url}


def barks_between(store: Store, since: float, until: float, merge_s: float, room: str | None = None) -> list[Bark]:
    """The house's barks that began in [since, until), newest first; in ``room`` only when given. Events just
    outside are read too, so a bark across the edge is merged the same way from either side."""
    barks = [b for b in merge(store.heard(since, until, margin_s=merge_s), merge_s) if since <= b.start < until]
    return [b for b in reversed(barks) if room is None or b.room == room]


def make_app(settings: HubSettings):
    from aiohttp import ClientError, ClientSession, ClientTimeout, web

    check(settings)
    store = Store(settings.db)
    routes = web.RouteTableDef()

    def html(text: str, code: int = 200) -> web.Response:
        return web.Response(text=text, content_type="text/html", status=code)

    async def off_loop(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def room_of(request: web.Request) -> str | None:
        return request.query.get("room") or None

    def today() -> tuple[list[dict], list[Bark], datetime]:
        now = datetime.now().astimezone()
        midnight = local_midnight(now.date())
        stamp = time.time()
        return ([node_view(n, stamp) for n in store.nodes()],
                barks_between(store, midnight.timestamp(), stamp + 1, settings.merge_s), now)

    @routes.get("/")
    async def today_page(request: web.Request) -> web.Response:
        nodes, barks, _ = await off_loop(today)
        counts = Counter(b.room for b in barks)
        seconds: dict[str, float] = defaultdict(float)
        for b in barks:
            seconds[b.room] += b.duration_s
        room = room_of(request)
        chosen = [b for b in barks if room is None or b.room == room]
        return html(pages.today_page(nodes, dict(counts), dict(seconds), [bark_view(b) for b in chosen[:SHOWN]],
                                     room, len(chosen)))

    counted: dict[date, tuple[tuple[int, int], Counter]] = {}  # a day's barks per room, and what they came from

    def day_counts(day: date) -> Counter:
        """Barks per room on ``day``, merged again only when an event of that day was stored since (a year's
        database must not be merged four weeks at a time for every page). A bark merged across midnight with
        an event stored later on the other side is the one case this can miss, until the day changes again."""
        since, until = local_midnight(day).timestamp(), local_midnight(day + timedelta(days=1)).timestamp()
        signature = store.signature(since, until)
        if day not in counted or counted[day][0] != signature:
            counted[day] = (signature, Counter(b.room for b in barks_between(store, since, until, settings.merge_s)))
        return counted[day][1]

    @routes.get("/history")
    async def history_page(request: web.Request) -> web.Response:
        now = datetime.now().astimezone()
        first = now.date() - timedelta(days=HISTORY_DAYS - 1)
        try:
            day = history_day(request.query.get("day"), now.date())
        except ValueError:
            return html(pages.page("barkwatch hub", "history", "<p>day: give a past date as YYYY-MM-DD</p>"),
                        code=400)
        room = room_of(request)

        def read():
            for old in [d for d in counted if d < first]:
                counted.pop(old, None)
            by_day = {first + timedelta(days=i): day_counts(first + timedelta(days=i))
                      for i in range(HISTORY_DAYS)}
            rooms = sorted({r for counts in by_day.values() for r in counts} | {n.room for n in store.nodes()})
            chosen = [] if day is None else [bark_view(b) for b in barks_between(
                store, local_midnight(day).timestamp(), local_midnight(day + timedelta(days=1)).timestamp(),
                settings.merge_s, room)]
            return by_day, rooms, chosen

        by_day, rooms, chosen = await off_loop(read)
        days = [first + timedelta(days=i) for i in range(HISTORY_DAYS)]
        return html(pages.history_page(days, by_day, rooms, day, chosen, room))

    @routes.get("/api/status")
    async def api_status(request: web.Request) -> web.Response:
        stamp = time.time()
        nodes = await off_loop(lambda: [node_view(n, stamp) for n in store.nodes()])
        return web.json_response({"nodes": nodes})

    @routes.get("/api/events")
    async def api_events(request: web.Request) -> web.Response:
        now = datetime.now().astimezone()
        try:
            since = parse_when(request.query["since"], now) if request.query.get("since") else local_midnight(now.date())
            until = parse_when(request.query["until"], now) if request.query.get("until") else None
        except (ValueError, OverflowError) as e:
            return web.json_response({"error": f"since/until: {e}"}, status=400)
        end = until.timestamp() if until else time.time() + 1
        barks = await off_loop(barks_between, store, since.timestamp(), end, settings.merge_s, room_of(request))
        return web.json_response({"barks": [bark_view(b) for b in barks]})

    async def client_session(app: web.Application):
        app["http"] = ClientSession(timeout=ClientTimeout(total=60, sock_connect=5))
        yield
        await app["http"].close()

    @routes.get("/api/clips/{event_id}")
    async def api_clip(request: web.Request) -> web.StreamResponse:
        event_id = request.match_info["event_id"]
        found = await off_loop(store.event, event_id) if EVENT_ID.fullmatch(event_id) else None
        if found is None or not found[1]:
            return web.json_response({"error": "no such clip"}, status=404)
        node = found[0]
        known = {n.name: n for n in await off_loop(store.nodes)}
        url = settings.node_url(node, known[node].url if node in known else None)
        if url is None:
            return web.json_response({"error": f"{node} announces no web address (node.url on it, or "
                                               "hub.node_urls here)"}, status=502)
        headers = {k: v for k, v in request.headers.items() if k in ("Range", "If-Range")}
        if token := settings.token_for(node):
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with request.app["http"].get(f"{url}/api/clips/{event_id}", headers=headers) as upstream:
                if upstream.status not in (200, 206):
                    return web.json_response({"error": f"{node} answered {upstream.status} for the clip"},
                                             status=404 if upstream.status == 404 else 502)
                passed = {k: upstream.headers[k] for k in ("Content-Type", "Content-Length", "Content-Range",
                                                            "Accept-Ranges") if k in upstream.headers}
                response = web.StreamResponse(status=upstream.status, headers=passed)
                await response.prepare(request)
                async for chunk in upstream.content.iter_chunked(64 * 1024):
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (ClientError, asyncio.TimeoutError, OSError) as e:
            return web.json_response({"error": f"{node} could not be reached at {url}: {e or type(e).__name__}"},
                                     status=502)

    app = web.Application(middlewares=[guard_middleware(settings.token, settings.port, pages.login_page)])
    app.add_routes(routes)
    app.cleanup_ctx.append(client_session)

    async def warm(app: web.Application) -> None:  # the four weeks' counts merged before the first page asks
        today = datetime.now().astimezone().date()
        asyncio.get_running_loop().run_in_executor(None, lambda: [day_counts(today - timedelta(days=i))
                                                                   for i in range(HISTORY_DAYS)])

    app.on_startup.append(warm)
    app.on_cleanup.append(lambda app: asyncio.get_running_loop().run_in_executor(None, store.close))
    return app


def serve(settings: HubSettings, ready: Callable[[str], None] | None = None,
          stop: threading.Event | None = None) -> None:
    """Serve the pages until ``stop`` is set (or forever); ``ready`` is called with the address once it listens."""
    try:
        run_app(make_app(settings), settings.host, settings.port, ready, stop, "hub")
    except WebError as e:
        raise HubError(str(e)) from e
