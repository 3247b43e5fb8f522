"""The hub's pages: the whole house on one page, plain server-side HTML as the ``web`` command's (its style
reused). Pure functions, data in and text out; ``hub.web`` serves them."""

from __future__ import annotations

from datetime import date, datetime
from html import escape
from typing import Sequence
from urllib.parse import urlencode

from ..service.webpages import STYLE


def page(title: str, active: str, body: str) -> str:
    links = " ".join(f'<a href="{href}" class="{"on" if name == active else ""}">{name}</a>'
                     for name, href in (("today", "/"), ("history", "/history")))
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f'<meta name=viewport content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<header><b>barkwatch hub</b>{links}</header><main>{body}</main></body></html>")


def login_page(message: str = "") -> str:
    body = ((f"<p class=bad>{escape(message)}</p>" if message else "")
            + "<form method=get action=\"/\"><p>This barkwatch hub asks for its token (hub.token in its "
            "configuration).</p><input name=token type=password autofocus> <button>open</button></form>")
    return page("barkwatch hub", "", body)


def _time(when: str, with_date: bool = False) -> str:
    return datetime.fromisoformat(when).astimezone().strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def _db(level) -> str:
    return "-" if level is None else f"{float(level):.0f} dBFS"


def _room_link(path: str, room: str, query: dict) -> str:
    return f'<a href="{path}?{escape(urlencode({**query, "room": room}))}">{escape(room)}</a>'


def nodes_table(nodes: Sequence[dict]) -> str:
    """Each listener: its room, listening or not, its device and level, when it was last heard from."""
    rows = []
    for n in nodes:
        state = (f'<span class=ok>{escape(n["status"] or "listening")}</span>' if n["listening"]
                 else f'<span class=bad>{escape(n["status"] or "not heard from")}</span>')
        rows.append(f'<tr data-node="{escape(n["name"])}"><td>{escape(n["name"])}</td><td>{escape(n["room"])}</td>'
                    f'<td>{state}</td><td>{escape(n["device"] or "")}</td><td>{_db(n["level_dbfs"])}</td>'
                    f'<td>{_time(n["last_seen"], True) if n["last_seen"] else "never"}</td></tr>')
    head = "<tr><th>listener</th><th>room</th><th>state</th><th>device</th><th>level</th><th>last seen</th></tr>"
    return f"<table id=nodes>{head}{''.join(rows)}</table>"


def barks_table(barks: Sequence[dict], with_date: bool = False) -> str:
    """Barks newest first: when, the room it is placed in, the other rooms that heard it, how long and loud,
    and the clip of the loudest hearing (fetched from its listener when played)."""
    rows = []
    for b in barks:
        clip = (f'<audio controls preload=none src="/api/clips/{escape(b["id"])}"></audio>' if b["clip"] else "")
        rows.append(f'<tr data-id="{escape(b["id"])}"><td>{_time(b["start"], with_date)}</td>'
                    f'<td class=room>{escape(b["room"])}</td><td class=also>{escape(", ".join(b["also"]))}</td>'
                    f'<td>{b["duration_s"]:.1f} s</td><td>{_db(b["level_dbfs"])}</td>'
                    f'<td>{"-" if b["peak_score"] is None else format(b["peak_score"], ".2f")}</td><td>{clip}</td></tr>')
    head = ("<tr><th>began</th><th>room</th><th>also heard in</th><th>lasted</th><th>level</th><th>score</th>"
            "<th>clip</th></tr>")
    return f"<table id=barks><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def room_cards(counts: dict[str, int], seconds: dict[str, float], room: str | None, path: str) -> str:
    total = sum(counts.values())
    cards = [f'<div class=card><div class=n id=count>{total}</div><div class=t><a href="{path}">every room</a>'
             f"</div></div>"]
    for name in sorted(counts):
        mark = " style=\"outline:2px solid #4c9a5a\"" if name == room else ""
        cards.append(f'<div class=card{mark} data-room="{escape(name)}"><div class=n>{counts[name]}</div>'
                     f'<div class=t>{_room_link(path, name, {})} &middot; {seconds.get(name, 0.0):.0f} s</div></div>')
    return f"<div class=cards>{''.join(cards)}</div>"


def today_page(nodes: Sequence[dict], counts: dict[str, int], seconds: dict[str, float], barks: Sequence[dict],
               room: str | None, total: int) -> str:
    """Barks per room today, the listeners, and the latest of today's barks (``total`` in all)."""
    where = f" in {escape(room)}" if room else ""
    more = f" (the latest {len(barks)} of {total})" if total > len(barks) else ""
    body = (room_cards(counts, seconds, room, "/") + "<h3>Listeners</h3>" + nodes_table(nodes)
            + f"<h3>Barks today{where}{more}</h3>" + barks_table(barks))
    return page("barkwatch hub: today", "today", body)


def history_page(days: Sequence[date], by_day: dict[date, dict[str, int]], rooms: Sequence[str],
                 day: date | None, day_barks: Sequence[dict], room: str | None) -> str:
    """Days newest first, barks per room each day; one day's barks (in one room, or all)."""
    head = "<tr><th>day</th><th>all</th>" + "".join(f"<th>{_room_link('/history', r, {})}</th>" for r in rooms)
    rows = []
    for d in sorted(days, reverse=True):
        counts = by_day.get(d, {})
        cells = "".join(f"<td>{counts.get(r, 0) or ''}</td>" for r in rooms)
        query = {"day": d.isoformat(), **({"room": room} if room else {})}
        rows.append(f'<tr><td><a href="/history?{escape(urlencode(query))}">{d.strftime("%a %Y-%m-%d")}</a></td>'
                    f"<td>{sum(counts.values())}</td>{cells}</tr>")
    body = f"<h3>Barks by room and day</h3><table id=days>{head}</tr>{''.join(rows)}</table>"
    if day is not None:
        body += f"<h3>{day}{' in ' + escape(room) if room else ''}</h3>" + barks_table(day_barks, with_date=True)
    return page("barkwatch hub: history", "history", body)
