"""The web interface's pages: plain server-side HTML with a little JavaScript, no build step, readable on a
phone. Pure functions (data in, text out), so the pages are tested without a server; ``web`` serves them."""

from __future__ import annotations

import json
from datetime import date, datetime
from html import escape
from typing import Sequence

from ..home.activity import Activity, _duration

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f6f6f3;color:#222}
header{background:#2d3a2e;color:#fff;padding:.6em 1em;display:flex;gap:1.2em;align-items:baseline;flex-wrap:wrap}
header b{font-size:1.2em}header a{color:#dfe8d8;text-decoration:none}header a.on{color:#fff;font-weight:bold}
main{padding:1em;max-width:60em;margin:auto}
.cards{display:flex;flex-wrap:wrap;gap:.8em}.card{background:#fff;border-radius:8px;padding:.7em 1em;
box-shadow:0 1px 3px #0002;min-width:9em}.card .n{font-size:1.6em;font-weight:bold}.card .t{color:#666;font-size:.85em}
table{border-collapse:collapse;width:100%;background:#fff;margin:.6em 0}td,th{padding:.35em .5em;
border-bottom:1px solid #eee;text-align:left;font-size:.95em}audio{height:2em;max-width:14em}
.ok{color:#17803d}.bad{color:#b3261e}.meter{height:.6em;background:#ddd;border-radius:4px;width:10em;display:inline-block}
.meter i{display:block;height:100%;background:#4c9a5a;border-radius:4px}
.map{table-layout:fixed}.map td{padding:0;height:1.4em;border:1px solid #fff}
.map th{padding:0 .2em;font-size:.65em;font-weight:normal;white-space:nowrap;overflow:visible}.map th.d{width:4.2em}
.buttons button{font-size:1.1em;padding:.6em .9em;margin:.2em;border-radius:8px;border:1px solid #999;background:#fff}
.buttons button.mine{background:#2d7a3e;color:#fff}img.spec{width:100%;max-width:40em;image-rendering:pixelated}
@media (max-width:36em){.card{min-width:0;flex:1 1 40%;box-sizing:border-box}#events tr{display:grid;grid-template-columns:2fr 1fr 1fr}
#events td:nth-child(4){grid-column:1/-1;padding-top:0}#events th:nth-child(4){display:none}
#events audio{width:100%;max-width:none}#events td:empty{display:none}}
"""


def page(title: str, active: str, body: str, script: str = "") -> str:
    """A whole HTML page with the navigation bar; ``active`` is the page's name (today, history, label)."""
    links = " ".join(f'<a href="{href}" class="{"on" if name == active else ""}">{name}</a>'
                     for name, href in (("today", "/"), ("history", "/history"), ("label", "/label")))
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f'<meta name=viewport content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<header><b>barkwatch</b>{links}</header><main>{body}</main>"
            + (f"<script>{script}</script>" if script else "") + "</body></html>")


def _time(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return escape(iso)


def event_rows(records: Sequence[dict], with_date: bool = False) -> str:
    """Table rows for bark records, newest first, each with its clip playable when it has one."""
    rows = []
    for r in records:
        start = datetime.fromisoformat(r["start"]).astimezone()
        when = start.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
        clip = (f'<audio controls preload=none src="/api/clips/{escape(str(r["id"]))}"></audio>'
                if r.get("clip") else "")
        rows.append(f'<tr data-id="{escape(str(r["id"]))}"><td>{when}</td><td>{float(r.get("duration_s", 0)):.1f} s</td>'
                    f'<td>{float(r.get("peak_score", 0)):.2f}</td><td>{clip}</td></tr>')
    return "".join(rows)


def events_table(records: Sequence[dict], with_date: bool = False) -> str:
    head = "<tr><th>began</th><th>lasted</th><th>score</th><th>clip</th></tr>"
    return f'<table id=events><thead>{head}</thead><tbody>{event_rows(records, with_date)}</tbody></table>'


def hour_chart(seconds_by_hour: Sequence[float], counts_by_hour: Sequence[int]) -> str:
    """An inline SVG bar chart: seconds of barking in each local hour of one day, the bark count above."""
    width, height, top = 480, 120, max(max(seconds_by_hour, default=0.0), 1.0)
    bars = []
    for hour, (s, n) in enumerate(zip(seconds_by_hour, counts_by_hour)):
        h = 90 * s / top
        x = 10 + hour * 19
        bars.append(f'<rect x="{x}" y="{100 - h:.1f}" width="15" height="{h:.1f}" fill="#4c9a5a">'
                    f"<title>{hour:02d}:00: {n} bark(s), {_duration(s)}</title></rect>")
        if n:
            bars.append(f'<text x="{x + 7.5}" y="{96 - h:.1f}" font-size="9" text-anchor="middle">{n}</text>')
        if hour % 3 == 0:
            bars.append(f'<text x="{x}" y="114" font-size="10">{hour:02d}</text>')
    return (f'<svg id=hours viewBox="0 0 {width} {height}" role=img aria-label="barking by hour" '
            f'style="width:100%;max-width:40em;background:#fff;border-radius:8px">{"".join(bars)}</svg>')


def status_cards(status: dict, barks_today: int, barking_s: float, last: dict | None) -> str:
    listening = status.get("running")
    if not status.get("live", True):
        state, device = "from a recording", ", ".join(status.get("sources") or [])
    else:
        state = (f'<span class="ok">{escape(status.get("status") or "listening")}</span>' if listening
                 else '<span class="bad">not running</span>')
        device = status.get("device") or ""
    level = status.get("level_dbfs")
    meter = ""
    if level is not None:
        width = min(max((float(level) + 90.0) / 90.0, 0.0), 1.0) * 100
        meter = f'<div class=meter title="{float(level):.0f} dBFS"><i style="width:{width:.0f}%"></i></div>'
    last_text = _time(last["start"]) if last else "none today"
    return ("<div class=cards>"
            f'<div class=card><div class=n id=state>{state}</div><div class=t>{escape(device)}'
            f"</div>{meter}</div>"
            f'<div class=card><div class=n id=count>{barks_today}</div><div class=t>barks today</div></div>'
            f'<div class=card><div class=n id=barking>{escape(_duration(barking_s))}</div>'
            f"<div class=t>barking today</div></div>"
            f'<div class=card><div class=n id=last>{last_text}</div><div class=t>last bark</div></div></div>')


# New barks arrive over server-sent events: each finished bark goes to the top of the table and the counts.
LIVE_SCRIPT = """
const feed = new EventSource('/api/stream');
feed.onmessage = (m) => {
  const r = JSON.parse(m.data);
  if (r.event !== 'bark' || document.querySelector(`tr[data-id="${CSS.escape(String(r.id))}"]`)) return;
  const t = new Date(r.start), row = document.createElement('tr');
  row.dataset.id = r.id;
  const cells = [t.toLocaleTimeString([], {hour12: false}), `${r.duration_s.toFixed(1)} s`, r.peak_score.toFixed(2)];
  for (const c of cells) { const td = document.createElement('td'); td.textContent = c; row.appendChild(td); }
  const td = document.createElement('td');
  if (r.clip) { const a = document.createElement('audio'); a.controls = true; a.preload = 'none';
    a.src = `/api/clips/${encodeURIComponent(r.id)}`; td.appendChild(a); }
  row.appendChild(td);
  document.querySelector('#events tbody').prepend(row);
  const n = document.getElementById('count'); n.textContent = String(Number(n.textContent) + 1);
  document.getElementById('last').textContent = cells[0];
};
"""


def today_page(status: dict, today: Activity, latest: Sequence[dict]) -> str:
    last = latest[0] if latest else None
    body = (status_cards(status, len(today.barks), today.total_s, last)
            + "<h3>Barking by hour</h3>" + hour_chart(today.seconds[0].tolist(), today.counts[0].tolist())
            + f"<h3>Latest barks</h3>{events_table(latest)}")
    return page("barkwatch: today", "today", body, LIVE_SCRIPT)


def heat_colour(seconds: float, top: float) -> str:
    if seconds <= 0:
        return "#f0f0ec"
    share = min(seconds / max(top, 1.0), 1.0)
    light = int(88 - 55 * share)
    return f"hsl(130,40%,{light}%)"


def history_page(activity: Activity, day: date | None, day_records: Sequence[dict]) -> str:
    """Days newest first with their barks and barking time, the hour-by-date map, and one day's events."""
    top = float(activity.seconds.max()) if activity.seconds.size else 0.0
    head = "<tr><th class=d></th>" + "".join(f"<th>{h:02d}</th>" if h % 6 == 0 else "<th></th>"
                                            for h in range(24)) + "</tr>"
    rows = []
    for i, d in reversed(list(enumerate(activity.days))):
        cells = "".join(f'<td style="background:{heat_colour(s, top)}" title="{d} {h:02d}:00: '
                        f'{int(activity.counts[i, h])} bark(s), {_duration(s)}"></td>'
                        for h, s in enumerate(activity.seconds[i].tolist()))
        rows.append(f'<tr><th class=d><a href="/history?day={d}">{d.strftime("%a %d")}</a></th>{cells}</tr>')
    days = "".join(f'<tr><td><a href="/history?day={d}">{d}</a></td><td>{int(activity.counts[i].sum())}</td>'
                   f"<td>{escape(_duration(float(activity.seconds[i].sum())))}</td></tr>"
                   for i, d in reversed(list(enumerate(activity.days))))
    body = (f"<h3>Hour by date</h3><table class=map>{head}{''.join(rows)}</table>"
            f"<h3>Days</h3><table id=days><tr><th>day</th><th>barks</th><th>barking</th></tr>{days}</table>")
    if day is not None:
        body += f"<h3>{day}</h3>" + events_table(day_records)
    return page("barkwatch: history", "history", body)


LABEL_KEYS = (("my_dog", "my dog", "mine"), ("other_dog", "other dog", ""), ("not_bark", "not a bark", ""))


def label_names() -> tuple[str, ...]:
    return tuple(k for k, _, _ in LABEL_KEYS)


def label_page(folder: str, index: int | None, total: int, clip_name: str | None, score: float | None,
               counts: dict[str, int], message: str = "") -> str:
    """One clip to label (play, spectrogram, score, the buttons), or a line saying all are labelled."""
    tally = ", ".join(f"{counts.get(k, 0)} {name}" for k, name, _ in LABEL_KEYS)
    if index is None:
        body = (f"<p id=done>Every clip in {escape(folder)} is labelled ({tally}). Train with "
                f"<code>barkwatch train --labels {escape(folder)}/labels.jsonl</code>.</p>"
                '<form method=post action="/api/label/undo"><div class=buttons><button>undo</button></div></form>')
        return page("barkwatch: label", "label", body)
    score_text = f"score {score:.2f}" if score is not None else "no score"
    buttons = "".join(f'<button name=label value="{k}" class="{cls}">{name}</button>' for k, name, cls in LABEL_KEYS)
    body = (f"<p>clip {index + 1} of {total} &middot; {tally}</p>"
            + (f"<p class=ok>{escape(message)}</p>" if message else "")
            + f"<p><code id=clip>{escape(clip_name or '')}</code> &middot; <span id=score>{score_text}</span></p>"
            f'<img class=spec alt="spectrogram" src="/api/label/{index}/spectrogram.png">'
            f'<p><audio id=player controls autoplay src="/api/label/{index}/audio"></audio></p>'
            f'<form method=post action="/api/label"><input type=hidden name=index value="{index}">'
            f'<input type=hidden name=clip value="{escape(clip_name or "")}">'
            f'<div class=buttons>{buttons}<button name=label value="skip">skip</button></div></form>'
            '<form method=post action="/api/label/undo"><div class=buttons><button>undo</button></div></form>')
    return page("barkwatch: label", "label", body)


def login_page(message: str = "") -> str:
    body = ((f"<p class=bad>{escape(message)}</p>" if message else "")
            + "<form method=get action=\"/\"><p>This barkwatch asks for its token (web.token in its "
            "configuration).</p><input name=token type=password autofocus> <button>open</button></form>")
    return page("barkwatch", "", body)


def json_text(value) -> str:
    return json.dumps(value, ensure_ascii=False)
