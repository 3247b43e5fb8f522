"""The service's configuration: typed sections, every key with its default.

``config.yaml`` at the repository root documents every key. Values are resolved in this order, the first that
sets a key wins: command-line flags, environment variables (``BARKWATCH_<SECTION>_<KEY>``), the config file
(``--config FILE``, else the first of ``./config.yaml``, ``$XDG_CONFIG_HOME/barkwatch/config.yaml``,
``/etc/barkwatch/config.yaml``), then the defaults below.

This module imports neither torch nor numpy, so ``barkwatch config``, ``events`` and ``status`` start fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field


EVENT_KINDS = ("bark_start", "bark")


@dataclass
class AudioConfig:
    device: str = "default"  # as `barkwatch listen --device`: index, name, hw:N[,M], part of a name, file:PATH
    samplerate: float | None = None  # None: the device's default rate
    channel: int | None = None  # None: mix all channels


@dataclass
class ModelConfig:
    path: str | None = None  # None: the shipped models/default.pt
    compute: str = "auto"  # auto, cpu, cuda or mps
    threads: int = 1


@dataclass
class DetectorConfig:
    threshold: float | None = None  # None: the model's own
    hop_s: float | None = None  # None: the model's own
    gate_dbfs: float = -60.0
    patience: int = 2
    release_s: float = 1.0
    merge_s: float = 2.0
    max_duration_s: float = 600.0


@dataclass
class PathsConfig:
    # None: $STATE_DIRECTORY (systemd's StateDirectory=), else $XDG_STATE_HOME/barkwatch, else
    # ~/.local/state/barkwatch
    state_dir: str | None = None
    events_dir: str | None = None  # None: $LOGS_DIRECTORY (systemd's LogsDirectory=), else <state_dir>/events
    clips_dir: str | None = None  # None: <state_dir>/clips


@dataclass
class EventsConfig:
    rotate: str = "daily"  # "daily": one file per local day; "size": a new file past max_file_mb
    max_file_mb: float = 10.0
    keep_days: float = 0.0  # 0: keep every log file


@dataclass
class ClipsConfig:
    enabled: bool = True
    format: str = "flac"  # flac or ogg
    pre_roll_s: float = 2.0
    post_roll_s: float = 2.0
    max_total_mb: float = 500.0  # oldest clips are deleted past this
    max_age_days: float = 30.0  # and past this age; 0: no age limit


@dataclass
class CommandConfig:
    run: str | None = None  # None: off. Split like a shell line, run without a shell; the record on stdin
    on: list[str] = field(default_factory=lambda: ["bark"])
    cooldown_s: float = 0.0
    timeout_s: float = 10.0


@dataclass
class WebhookConfig:
    url: str | None = None  # None: off
    on: list[str] = field(default_factory=lambda: ["bark_start"])
    cooldown_s: float = 300.0
    timeout_s: float = 5.0
    retries: int = 3
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class MqttConfig:
    host: str | None = None  # None: off
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = "barkwatch"
    topic_prefix: str = "barkwatch"
    discovery: bool = True  # publish Home Assistant discovery: a "dog barking" binary sensor and a counter
    discovery_prefix: str = "homeassistant"
    on: list[str] = field(default_factory=lambda: ["bark_start", "bark"])
    cooldown_s: float = 0.0


@dataclass
class NotifyConfig:
    command: CommandConfig = field(default_factory=CommandConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    quiet_hours: str | None = None  # e.g. "22:00-07:00", local time: nothing is sent then (events still logged)


@dataclass
class LoggingConfig:
    level: str = "info"  # debug, info, warning or error
    status_every_s: float = 10.0  # how often the status file is brought up to date


@dataclass
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    clips: ClipsConfig = field(default_factory=ClipsConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
