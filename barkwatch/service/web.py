"""``barkwatch web``: a small web interface for the home, served by barkwatch itself (aiohttp).

Pages (``webpages`` draws them): **today** (listening or not, the device and its level, today's barks and
barking time, a chart by hour, the latest barks with their clips playable, new ones arriving live),
**history** (days, the hour-by-date map, any day's barks) and **label** (the clips ``record`` kept, or any
folder of clips, one at a time, written to that folder's ``labels.jsonl`` exactly as ``barkwatch label``
writes it). Behind them a JSON API:

- ``GET /api/status``: the service's status file and today's counts;
- ``GET /api/events?since=&until=``: finished barks (``since``/``until`` as ``barkwatch events`` takes them);
- ``GET /api/clips/ID``: the clip of event ID, only from the clip folder;
- ``GET /api/stream``: new records as server-sent events;
- ``POST /api/label`` (form or JSON: ``index``, ``clip``, ``label``) and ``POST /api/label/undo``.

It only reads, apart from the labels file; clip requests name an event id or a clip's number, never a path,
and whatever they resolve to must lie inside the clip (or label) folder. It listens on 127.0.0.1 unless told
otherwise, and anywhere else only with a token (``web.token``): sent as ``Authorization: Bearer TOKEN``, or
once as ``?token=`` in a browser, which then keeps it in a cookie.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import ipaddress
import json
import logging
import re
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable
from html import escape
from urllib.parse import urlencode, urlsplit

from ..home.activity import summarise
from ..home.label import LABELS_NAME, LabelFile, find_clips, labels_in
from . import webpages
from .eventlog import follow, follow_file, parse_when, read_events, read_events_file
from .systemd import pid_alive, read_state

log = logging.getLogger("barkwatch")

COOKIE = "barkwatch_token"
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
AUDIO_TYPES = {".flac": "audio/flac", ".ogg": "audio/ogg", ".wav": "audio/wav", ".mp3": "audio/mpeg"}
LATEST = 30  # barks on the today page
HISTORY_DAYS = 28  # on the history page's map
OLDEST_DAY = 3660  # days back a history page may be asked for
FEED_LOOKBACK_S = 600.0  # the live feed starts with records of barks that began this long before (detector.max_duration_s)


class WebError(Exception):
    """A setting the server cannot start with: one line naming it and what to do."""


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    events: Path | None = None  # the service's event folder, or one event log file
    clips_dir: Path | None = None
    state_file: Path | None = None  # the service's status.json; None: a log without a service (no live status)
    label_dir: Path | None = None  # the clips to label (None: the clip folder)
    score: Callable[[Path], float | None] | None = None  # a clip's model score for the label page

    @classmethod
    def from_config(cls, web, events: Path, clips_dir: Path, state_file: Path | None,
                    score: Callable[[Path], float | None] | None = None) -> "WebSettings":
        """From the configuration's ``web`` section and the service's folders."""
        return cls(host=web.host, port=web.port, token=web.token, events=events, clips_dir=clips_dir,
                   state_file=state_file, label_dir=Path(web.labels_dir).expanduser() if web.labels_dir else None,
                   score=score)

    def check(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise WebError(f"web.host {self.host}: serving beyond this machine needs a token (web.token, or "
                           "--token); or keep web.host 127.0.0.1")
        if not 0 < self.port < 65536:
            raise WebError(f"web.port {self.port}: choose a port from 1 to 65535")
        if self.events is not None and not self.events.exists():
            raise WebError(f"{self.events}: no event log here yet (is barkwatch listening? see `barkwatch "
                           "status`), or give --events FILE")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time()).astimezone()


def history_day(text: str | None, today: date) -> date | None:
    """The day a history page's ``?day=`` asks for (None: none); ValueError for anything but a date of the
    last ``OLDEST_DAY`` days."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = date.min
    if not today - timedelta(days=OLDEST_DAY) <= day <= today:
        raise ValueError(f"day {text!r}: not a past date as YYYY-MM-DD")
    return day


def inside(path: Path, folder: Path | None) -> bool:
    """Whether ``path``, links resolved, lies inside ``folder``."""
    if folder is None:
        return False
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


# -- reading what the service wrote ----------------------------------------------------------------------------


def read_records(settings: WebSettings, since: datetime | None = None, until: datetime | None = None) -> list[dict]:
    """The records of the event log between ``since`` and ``until`` (oldest first)."""
    if settings.events is None or not settings.events.exists():
        return []
    if settings.events.is_file():
        return list(read_events_file(settings.events, since, until))
    return list(read_events(settings.events, since, until))


def barks(records: list[dict]) -> list[dict]:
    """Finished barks, newest first; a record without a readable id, start, duration or score is left out
    (one bad line must not break a page)."""
    done = []
    for r in records:
        try:
            if r.get("event") != "bark" or not isinstance(r.get("id"), str):
                continue
            when = datetime.fromisoformat(r["start"]).timestamp()
            float(r.get("duration_s", 0.0)), float(r.get("peak_score", 0.0))
        except (KeyError, TypeError, ValueError):
            continue
        done.append((when, r))
    return [r for _, r in sorted(done, key=lambda pair: pair[0], reverse=True)]


def status(settings: WebSettings, now: datetime) -> dict:
    """The status file (running or not; ``live`` false where there is no service, only a log), with today's
    barks and barking time from the log."""
    state = read_state(settings.state_file) if settings.state_file is not None else None
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = barks(read_records(settings, midnight))
    # A log without a service beside it (what `detect --events` wrote) has no live status to show: the page says
    # where its barks came from instead of "not running".
    sources = [] if settings.state_file is not None else sorted(
        {str(r["source"]) for r in read_records(settings) if r.get("source")})
    return {"live": settings.state_file is not None, "sources": sources,
            "running": bool(state and pid_alive(state.pid) and state.status != "stopped"),
            "status": state.status if state else None, "device": state.device if state else None,
            "level_dbfs": state.level_dbfs if state else None,
            "updated": state.updated if state else None, "model": state.model if state else None,
            "barks_today": len(today), "barking_today_s": round(sum(float(r.get("duration_s", 0)) for r in today), 1),
            "last_bark": today[0]["start"] if today else None}


def find_clip(settings: WebSettings, event_id: str) -> Path | None:
    """The clip of an event, found by its id in the clip folder's names (``<HHMMSS>_<id>.<fmt>``, detect's
    ``<name>_<offset>_<id>.<fmt>``), only where it resolves inside that folder."""
    if not EVENT_ID.fullmatch(event_id) or settings.clips_dir is None or not settings.clips_dir.is_dir():
        return None
    for suffix in AUDIO_TYPES:
        for path in sorted(settings.clips_dir.rglob(f"*_{event_id}{suffix}")):
            if path.is_file() and inside(path, settings.clips_dir):
                return path
    return None


# -- the application ------------------------------------------------------------------------------------------


def make_app(settings: WebSettings):
    from aiohttp import web

    settings.check()
    routes = web.RouteTableDef()

    def html(text: str, code: int = 200) -> web.Response:
        return web.Response(text=text, content_type="text/html", status=code)

    guard = guard_middleware(settings.token, settings.port)

    @routes.get("/")
    async def today_page(request: web.Request) -> web.Response:
        now = datetime.now().astimezone()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        records = read_records(settings, midnight)
        activity = summarise(records, now.date(), now.date())
        return html(webpages.today_page(status(settings, now), activity, barks(records)[:LATEST]))

    @routes.get("/history")
    async def history_page(request: web.Request) -> web.Response:
        now = datetime.now().astimezone()
        first = now.date() - timedelta(days=HISTORY_DAYS - 1)
        try:
            day = history_day(request.query.get("day"), now.date())
        except ValueError:
            return html(webpages.page("barkwatch", "history", "<p>day: give a past date as YYYY-MM-DD</p>"),
                        code=400)

        def read() -> tuple:
            records = read_records(settings, local_midnight(first))
            chosen = [] if day is None else [r for r in barks(read_records(settings, local_midnight(day),
                                                                           local_midnight(day + timedelta(days=1))))]
            return summarise(records, first, now.date()), chosen

        activity, day_records = await asyncio.get_running_loop().run_in_executor(None, read)
        return html(webpages.history_page(activity, day, day_records))

    @routes.get("/api/status")
    async def api_status(request: web.Request) -> web.Response:
        return web.json_response(status(settings, datetime.now().astimezone()))

    @routes.get("/api/events")
    async def api_events(request: web.Request) -> web.Response:
        now = datetime.now().astimezone()
        try:
            since = parse_when(request.query["since"], now) if request.query.get("since") else None
            until = parse_when(request.query["until"], now) if request.query.get("until") else None
        except (ValueError, OverflowError) as e:
            return web.json_response({"error": f"since/until: {e}"}, status=400)
        return web.json_response({"events": barks(read_records(settings, since, until))})

    @routes.get("/api/clips/{event_id}")
    async def api_clip(request: web.Request) -> web.StreamResponse:
        path = await asyncio.get_running_loop().run_in_executor(None, find_clip, settings,
                                                                request.match_info["event_id"])
        if path is None:
            return web.json_response({"error": "no such clip"}, status=404)
        return web.FileResponse(path, headers={"Content-Type": AUDIO_TYPES[path.suffix]})

    @routes.get("/api/stream")
    async def api_stream(request: web.Request) -> web.StreamResponse:
        if settings.events is None or not settings.events.exists():
            return web.Response(status=204)  # an EventSource stops asking on 204
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        loop, queue, stop = asyncio.get_running_loop(), asyncio.Queue(), threading.Event()
        source = settings.events
        # A bark is logged when it ends: one that began before the page connected must still come through.
        since = datetime.now().astimezone() - timedelta(seconds=FEED_LOOKBACK_S)

        def pump() -> None:  # follow() blocks: it runs on a thread of its own, one per client
            try:
                records = (follow_file if source.is_file() else follow)(source, since, stop=stop)
                for record in records:
                    loop.call_soon_threadsafe(queue.put_nowait, record)
            except Exception as e:  # the feed ends; the page's EventSource reconnects
                log.warning("web: live feed stopped: %s", e)
            loop.call_soon_threadsafe(queue.put_nowait, None)

        threading.Thread(target=pump, name="barkwatch-web-stream", daemon=True).start()
        try:
            await response.write(b": barkwatch\n\n")
            while True:
                try:
                    record = await asyncio.wait_for(queue.get(), timeout=15.0)
                    if record is None:
                        break
                    await response.write(f"data: {json.dumps(record)}\n\n".encode())
                except asyncio.TimeoutError:
                    await response.write(b": still here\n\n")  # keeps proxies and phones from closing it
        except ConnectionResetError:  # the page was closed; a server stopping cancels this instead
            pass
        finally:
            stop.set()
        return response

    # -- labelling ----------------------------------------------------------------------------------------------

    label_dir = settings.label_dir or settings.clips_dir
    scores: dict[str, float | None] = {}

    def label_clips():
        if label_dir is None or not label_dir.is_dir():
            return []
        return [c for c in find_clips(label_dir) if inside(c.path, label_dir)]

    def next_unlabelled(clips, labelled: dict, at: int) -> int | None:
        order = list(range(at, len(clips))) + list(range(0, min(at, len(clips))))
        return next((i for i in order if clips[i].name not in labelled), None)

    def score_of(clip) -> float | None:
        if settings.score is None:
            return None
        if clip.name not in scores:
            try:
                scores[clip.name] = settings.score(clip.path)
            except Exception as e:  # a clip that cannot be scored is still labelled
                log.warning("%s: cannot score (%s)", clip.path, e)
                scores[clip.name] = None
        return scores[clip.name]

    @routes.get("/label")
    async def label_page(request: web.Request) -> web.Response:
        clips = label_clips()
        if label_dir is None or not clips:
            where = escape(str(label_dir or "the clip folder"))
            return html(webpages.page("barkwatch: label", "label", f"<p>No clips to label in {where}: record "
                                      "some with <code>barkwatch record --out DIR</code> and serve with "
                                      "<code>--labels DIR</code>.</p>"))
        labelled = labels_in(label_dir / LABELS_NAME)
        try:
            at = int(request.query.get("at", "0")) % len(clips)
        except ValueError:
            at = 0
        i = next_unlabelled(clips, labelled, at)
        counts = Counter(labelled.values())
        if i is None:
            return html(webpages.label_page(str(label_dir), None, len(clips), None, None, counts))
        score = await asyncio.get_running_loop().run_in_executor(None, score_of, clips[i])
        return html(webpages.label_page(str(label_dir), i, len(clips), clips[i].name, score, counts,
                                        request.query.get("said", "")))

    def clip_at(request: web.Request):
        clips = label_clips()
        try:
            index = int(request.match_info["index"])
        except ValueError:
            return None
        return clips[index] if 0 <= index < len(clips) else None

    @routes.get("/api/label/{index}/audio")
    async def label_audio(request: web.Request) -> web.StreamResponse:
        clip = clip_at(request)
        if clip is None or clip.path.suffix not in AUDIO_TYPES:
            return web.json_response({"error": "no such clip"}, status=404)
        return web.FileResponse(clip.path, headers={"Content-Type": AUDIO_TYPES[clip.path.suffix]})

    @routes.get("/api/label/{index}/spectrogram.png")
    async def label_picture(request: web.Request) -> web.Response:
        clip = clip_at(request)
        if clip is None:
            return web.json_response({"error": "no such clip"}, status=404)
        png = await asyncio.get_running_loop().run_in_executor(None, spectrogram_png, clip.path)
        return web.Response(body=png, content_type="image/png")

    @routes.post("/api/label")
    async def label_write(request: web.Request) -> web.Response:
        wants_json = request.content_type == "application/json"
        try:
            form = await (request.json() if wants_json else request.post())
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not hasattr(form, "get"):
            return web.json_response({"error": "give an object: index, clip, label"}, status=400)
        clips = label_clips()
        try:
            index = int(form.get("index"))
            clip = clips[index]
        except (TypeError, ValueError, IndexError):
            return web.json_response({"error": "index: not a clip's number"}, status=400)
        label = form.get("label")
        if clip.name != form.get("clip"):  # the folder changed under the page: say so rather than mislabel
            return web.json_response({"error": f"clip {index} is now {clip.name}, not {form.get('clip')}"},
                                     status=409)
        if label not in (*webpages.label_names(), "skip"):
            return web.json_response({"error": "label: my_dog, other_dog, not_bark or skip"}, status=400)
        if label != "skip":
            out = LabelFile(label_dir / LABELS_NAME)
            try:
                out.write(clip, label, scores.get(clip.name))
            finally:
                out.close()
        if wants_json:
            return web.json_response({"ok": True, "clip": clip.name, "label": label})
        said = "skipped" if label == "skip" else f"{clip.name}: {label.replace('_', ' ')}"
        raise web.HTTPSeeOther("/label?" + urlencode({"at": index + 1, "said": said}))

    @routes.post("/api/label/undo")
    async def label_undo(request: web.Request) -> web.Response:
        clips = label_clips()
        path = label_dir / LABELS_NAME if label_dir is not None else None
        last = last_labelled(path) if path is not None else None
        names = [c.name for c in clips]
        if last is None or last not in names:
            raise web.HTTPSeeOther("/label?" + urlencode({"said": "nothing to undo"}))
        out = LabelFile(path)
        try:
            out.write(clips[names.index(last)], None, None)
        finally:
            out.close()
        raise web.HTTPSeeOther("/label?" + urlencode({"at": names.index(last), "said": f"undone: {last}"}))

    app = web.Application(middlewares=[guard])
    app.add_routes(routes)
    return app


def guard_middleware(token: str | None, port: int, login_page: Callable[[str], str] = webpages.login_page):
    """The aiohttp middleware that holds the interface's security (see the module's docstring): without a
    token only this machine's own host names on ``port`` are answered, with one every request must give it;
    forms posted from another site are refused. ``barkwatch hub`` serves its pages behind it too."""
    from aiohttp import web

    loopback_hosts = {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}

    @web.middleware
    async def guard(request: web.Request, handler):
        # Another site open in the same browser must not read the home's recordings or change its labels:
        # without a token, only this machine's own names are answered (no DNS rebinding), and a form posted
        # from another site is refused whatever the token.
        if request.method == "POST" and request.headers.get("Sec-Fetch-Site") == "cross-site":
            return web.json_response({"error": "a request from another site"}, status=403)
        origin = request.headers.get("Origin")
        if request.method == "POST" and origin and urlsplit(origin).netloc != request.host:
            return web.json_response({"error": "a request from another site"}, status=403)
        if not token:
            if request.host not in loopback_hosts:
                return web.json_response({"error": f"unknown host {request.host}"}, status=421)
            return await handler(request)
        header = request.headers.get("Authorization", "")
        given = (header[7:].strip() if header.startswith("Bearer ") else "") or request.query.get("token") or \
            request.cookies.get(COOKIE, "")
        if given and hmac.compare_digest(given.encode(), token.encode()):
            if request.method == "GET" and request.query.get("token"):  # into a cookie, out of the address bar
                rest = {k: v for k, v in request.query.items() if k != "token"}
                response = web.HTTPSeeOther(request.path + ("?" + urlencode(rest) if rest else ""))
                response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
                return response
            return await handler(request)
        if request.path.startswith("/api/"):
            return web.json_response({"error": "a token is needed: Authorization: Bearer TOKEN"}, status=401)
        return web.Response(text=login_page("wrong token" if given else ""), content_type="text/html", status=401)

    return guard


def last_labelled(path: Path) -> str | None:
    """The clip of the latest decision still standing in a labels.jsonl (for undo)."""
    standing = labels_in(path)
    if not path.is_file():
        return None
    for line in reversed(path.read_text(encoding="utf-8").splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("label") and standing.get(entry.get("clip")) == entry["label"]:
            return entry["clip"]
    return None


def spectrogram_png(path: Path) -> bytes:
    """A log-mel picture of a clip as PNG (the terminal labeller's picture, larger)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..detection.audio import load_audio
    from ..home.label import mel_image

    rate = 22050
    image = mel_image(load_audio(path, rate), rate, bands=64, columns=400)
    out = io.BytesIO()
    plt.imsave(out, image[::-1], cmap="magma", format="png", vmin=0.0, vmax=1.0)
    return out.getvalue()


def serve(settings: WebSettings, ready: Callable[[str], None] | None = None,
          stop: threading.Event | None = None) -> None:
    """Serve until ``stop`` is set (or forever); ``ready`` is called with the address once it listens."""
    run_app(make_app(settings), settings.host, settings.port, ready, stop, "web")


def run_app(app, host: str, port: int, ready: Callable[[str], None] | None, stop: threading.Event | None,
            what: str) -> None:
    """Serve an aiohttp ``app`` on host:port until ``stop`` is set (or forever): the ``web`` command's pages
    and the hub's. A port that cannot be had is a WebError naming ``what``."""
    from aiohttp import web

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)  # open feeds: do not wait a minute
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise WebError(f"{what}: cannot listen on {host}:{port} ({e.strerror or e}); choose another --port") \
                from e
        if ready is not None:
            ready(f"http://{host}:{port}/")
        try:
            while not (stop is not None and stop.is_set()):
                await asyncio.sleep(0.2)
        finally:
            await runner.cleanup()

    asyncio.run(main())


def start_in_thread(settings: WebSettings) -> tuple[threading.Thread, threading.Event]:
    """Serve from a daemon thread beside the service's listening (``web.enabled`` in the config); set the
    returned event to stop it. A server that cannot start logs why and leaves listening alone."""
    stop = threading.Event()

    def run() -> None:
        try:
            serve(settings, lambda url: log.info("web interface on %s", url), stop)
        except WebError as e:
            log.error("%s", e)

    thread = threading.Thread(target=run, name="barkwatch-web", daemon=True)
    thread.start()
    return thread, stop
