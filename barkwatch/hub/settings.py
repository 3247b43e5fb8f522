"""What the hub runs with, from the ``hub`` section (``HubConfig``) and the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..config import HubConfig


class HubError(Exception):
    """A setting the hub cannot start with: one line naming it and what to do."""


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Broker:
        """``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` (as the config loader checks it)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise HubError(f"hub.mqtt {url!r}: give the broker as mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls)

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass(frozen=True)
class HubSettings:
    broker: Broker
    db: Path
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    client_id: str = "barkwatch-hub"
    topic_prefix: str = "barkwatch"
    host: str = "127.0.0.1"
    port: int = 8090
    token: str | None = None
    node_token: str | None = None
    node_tokens: dict[str, str] = field(default_factory=dict)
    node_urls: dict[str, str] = field(default_factory=dict)
    merge_s: float = 1.0
    backfill_every_s: float = 600.0
    backfill_days: float = 7.0

    @classmethod
    def from_config(cls, hub: HubConfig, db: Path) -> HubSettings:
        if hub.mqtt is None:
            raise HubError("hub.mqtt: no broker given; give --mqtt mqtt://HOST:1883 or set hub.mqtt in the config")
        return cls(Broker.parse(hub.mqtt), db, hub.username, hub.password, hub.ca_file, hub.client_id,
                   hub.topic_prefix.rstrip("/"), hub.host, hub.port, hub.token, hub.node_token,
                   dict(hub.node_tokens), dict(hub.node_urls), hub.merge_s, hub.backfill_every_s, hub.backfill_days)

    def node_url(self, name: str, announced: str | None) -> str | None:
        """Where the node's web interface is: the hub's own config first, then what the node announced."""
        url = self.node_urls.get(name) or announced
        return url.rstrip("/") if url else None

    def token_for(self, name: str) -> str | None:
        return self.node_tokens.get(name) or self.node_token
