"""``barkwatch hub``: gather every listener's barks over MQTT into one database and one set of pages."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Optional

import typer

from .options import ConfigFile, fail, load_config, needs, setup_logging


def hub(
    mqtt: Optional[str] = typer.Option(None, "--mqtt", help="The broker the listeners publish to: "
                                       "mqtt://HOST[:1883] or mqtts://HOST[:8883] (default: the config's hub.mqtt)."),
    db: Optional[Path] = typer.Option(None, "--db", help="The hub's SQLite database (default: the config's hub.db, "
                                      "else hub.sqlite in the state folder)."),
    host: Optional[str] = typer.Option(None, "--host", help="Address of the hub's pages (default: hub.host, "
                                       "127.0.0.1; anything else needs a token)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port of the hub's pages (default: hub.port, 8090)."),
    token: Optional[str] = typer.Option(None, "--token", help="Secret every page and API call must give (default: "
                                        "hub.token; better there or in BARKWATCH_HUB_TOKEN)."),
    config_file: ConfigFile = None,
) -> None:
    """Gather the barks of every listener on an MQTT broker into one database and one set of pages, each bark
    in the room whose microphone heard it loudest (docs/hub.md)."""
    from ..config import resolve_dirs

    needs("hub", "paho", "aiohttp")
    config = load_config(config_file, {"hub.mqtt": mqtt, "hub.db": str(db) if db else None, "hub.host": host,
                                       "hub.port": port, "hub.token": token}).config
    from ..hub.settings import HubError, HubSettings
    from ..hub.store import StoreError
    from ..hub.subscriber import Hub
    from ..hub.web import check, serve

    path = Path(config.hub.db).expanduser() if config.hub.db else resolve_dirs(config)[0] / "hub.sqlite"
    try:
        settings = HubSettings.from_config(config.hub, path)
        check(settings)
        intake = Hub(settings)
    except (HubError, StoreError) as e:
        fail(str(e), code=2 if isinstance(e, HubError) else 1)
    setup_logging(False, config.logging.level)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    intake.start()
    try:
        serve(settings, lambda url: typer.echo(f"barkwatch hub: {settings.broker} -> {path}; pages on {url}",
                                               err=True), stop)
    except HubError as e:
        intake.stop()
        fail(str(e), code=1)
    intake.stop()
    s = intake.stats
    typer.echo(f"barkwatch hub: stopped; {s['mqtt']} event(s) stored from MQTT, {s['backfill']} by backfill, "
               f"{s['skipped']} message(s) skipped", err=True)
