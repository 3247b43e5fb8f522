"""``barkwatch config``, ``events`` and ``status``: the service as an owner sees it."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from .options import ConfigFile, EventsDir, Since, Until, fail, load_config


def config_command(
    show: bool = typer.Option(True, "--show/--check", help="Print the effective configuration with where each "
                              "value came from (default), or only check it."),
    config_file: ConfigFile = None,
) -> None:
    """Show the effective configuration: flags > BARKWATCH_* environment > config file > defaults.

    A bad key or value is one line naming it, exit code 2. The output is itself a valid config file.
    """
    from ..config import format_config

    loaded = load_config(config_file, {})
    if show:
        typer.echo(format_config(loaded), nl=False)
    else:
        typer.echo(f"{loaded.file or 'defaults'}: OK")


def events(
    log: Optional[Path] = typer.Argument(None, help="An event log file (what detect --events or listen --events "
                                         "FILE writes), or a folder of them; default: the service's event log."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new events as they are written, "
                                "like tail -f."),
    since: Since = None,
    until: Until = None,
    as_json: bool = typer.Option(False, "--json", help="Print the JSON Lines records as they are stored."),
    every: bool = typer.Option(False, "--all", help="Show bark_start records too, not only finished barks."),
    events_dir: EventsDir = None,
    config_file: ConfigFile = None,
) -> None:
    """Show the barks in the event log: a table, or the records as JSON Lines; -f follows new ones."""
    from ..config import dirs_to_read
    from ..service.eventlog import (follow as follow_events, follow_file, format_line, format_table, parse_when,
                                    read_events, read_events_file)

    one_file = log is not None and not log.is_dir()
    if log is not None and not log.exists():
        fail(f"{log}: no such file or folder; give an event log (detect --events FILE writes one)", code=1)
    if log is not None:
        events_dir = log
    elif events_dir is None:
        events_dir = dirs_to_read(load_config(config_file, {}).config)[1]
    now = datetime.now().astimezone()
    try:
        # A log file is a recording's or a run's: all of it unless told; the service's log: today's.
        start = parse_when(since, now) if since else (None if follow or one_file else parse_when("today", now))
        end = parse_when(until, now) if until else None
    except ValueError as e:
        fail(f"--since/--until: {e}")
    if events_dir.is_dir() and not os.access(events_dir, os.R_OK | os.X_OK):
        fail(f"{events_dir}: permission denied; the service's event log is for group barkwatch: run `sudo "
             "barkwatch events`, or `sudo usermod -aG barkwatch $USER` and log in again", code=1)
    if not follow:
        if not one_file and not events_dir.is_dir():
            fail(f"{events_dir}: no event log here yet (is barkwatch listening? see `barkwatch status`)", code=1)
        records = list(read_events_file(events_dir, start, end) if one_file else read_events(events_dir, start, end))
        if as_json:
            for r in records:
                typer.echo(json.dumps(r, ensure_ascii=False))
        else:
            typer.echo(format_table(records, every=every))
        return
    try:
        for record in (follow_file if one_file else follow_events)(events_dir, since=start):
            if end is not None and record.get("start", "") >= end.isoformat():
                continue
            if as_json:
                print(json.dumps(record, ensure_ascii=False), flush=True)
            elif every or record.get("event") == "bark":
                print(format_line(record), flush=True)
    except KeyboardInterrupt:
        pass


def status(
    as_json: bool = typer.Option(False, "--json", help="Print the status file as it is."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="The service's state folder "
                                             "(default: from the config; the service's is /var/lib/barkwatch)."),
    config_file: ConfigFile = None,
) -> None:
    """Is barkwatch listening? Device, since when, events today, last event, overruns, outages, clips on disk.

    Exit code 0 when it is running, 3 when it is not (as `systemctl status`)."""
    from dataclasses import asdict

    from ..config import dirs_to_read
    from ..service.systemd import format_status, pid_alive, read_state, state_path

    if state_dir is None:
        state_dir = dirs_to_read(load_config(config_file, {}).config)[0]
    path = state_path(state_dir)
    if path.exists() and not os.access(path, os.R_OK):
        fail(f"{path}: permission denied; the service's files are for group barkwatch: run `sudo barkwatch "
             "status`, or `sudo usermod -aG barkwatch $USER` and log in again", code=3)
    state = read_state(path)
    if state is None:
        if as_json:  # scripts get JSON either way
            typer.echo(json.dumps({"running": False, "status": "unknown", "state_file": str(path),
                                   "reason": "no status file: barkwatch has not run with this state folder"},
                                  indent=1))
            raise typer.Exit(3)
        fail(f"{path}: no status file: barkwatch has not run with this state folder (try --state-dir "
             "/var/lib/barkwatch for the service)", code=3)
    alive = pid_alive(state.pid) and state.status != "stopped"
    if as_json:
        typer.echo(json.dumps({**asdict(state), "running": alive}, indent=1))
    else:
        typer.echo(format_status(state, datetime.now().astimezone(), alive))
    if not alive:
        raise typer.Exit(3)


def web(
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default: the config's web.host, "
                                       "127.0.0.1; anything else needs a token)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default: the config's web.port, 8080)."),
    token: Optional[str] = typer.Option(None, "--token", help="Secret every request must give (default: the "
                                        "config's web.token; better there or in BARKWATCH_WEB_TOKEN than on a "
                                        "command line others can see)."),
    events_path: Optional[Path] = typer.Option(None, "--events", help="One event log file (e.g. what `barkwatch "
                                               "detect --events` wrote) or folder instead of the service's."),
    clips_dir: Optional[Path] = typer.Option(None, "--clips", help="Folder of the events' clips (default: the "
                                             "service's)."),
    labels_dir: Optional[Path] = typer.Option(None, "--labels", help="Folder of clips to label (what `barkwatch "
                                              "record --out` wrote; default: web.labels_dir, else the clip folder)."),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="The service's state folder, for its "
                                             "status (default: from the config)."),
    no_score: bool = typer.Option(False, "--no-score", help="Do not load the model to score clips on the label "
                                  "page."),
    config_file: ConfigFile = None,
) -> None:
    """Serve the web interface: today's barks, history, and labelling, from a phone on the home network."""
    from ..config import dirs_to_read, resolve_dirs
    from ..service.systemd import state_path
    from ..service.web import WebError, WebSettings, serve
    from .options import needs, setup_logging

    needs("web", "aiohttp")
    setup_logging(False)
    config = load_config(config_file, {"web.host": host, "web.port": port, "web.token": token,
                                       "web.labels_dir": str(labels_dir) if labels_dir else None}).config
    state, events = dirs_to_read(config)
    if state_dir is not None:
        state = state_dir
        events = resolve_dirs(config)[1] if config.paths.events_dir else state / "events"
    clips = resolve_dirs(config)[2] if config.paths.clips_dir else state / "clips"
    # One log file named without --state-dir is a recording's (what `detect --events` wrote): no live status.
    live = events_path is None or events_path.is_dir() or state_dir is not None
    settings = WebSettings.from_config(config.web, events_path or events, clips_dir or clips,
                                       state_path(state) if live else None,
                                       score=None if no_score else _lazy_scorer(config))
    try:
        serve(settings, lambda url: typer.echo(f"barkwatch web: serving on {url} (Ctrl-C stops)", err=True))
    except WebError as e:
        fail(str(e), code=1)
    except KeyboardInterrupt:
        pass


def _lazy_scorer(config):
    """``clip -> score`` with the configured model, loaded when the label page first asks (torch is slow to load
    and the other pages never need it)."""
    import threading

    from ..home.label import scorer_for
    from .options import detector_from_config

    scorers: list = []
    lock = threading.Lock()  # two label pages at once: one model, used by one at a time

    def score(path: Path):
        with lock:
            if not scorers:
                scorers.append(scorer_for(detector_from_config(config, gate_dbfs=-float("inf"), channel=None)))
            return scorers[0](path)

    return score
