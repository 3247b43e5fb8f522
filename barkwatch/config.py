"""The service's configuration: typed sections, every key with its default, and the loader.

``config.yaml`` at the repository root documents every key. Values are resolved in this order, the first that
sets a key wins: command-line flags, environment variables (``BARKWATCH_<SECTION>_<KEY>``), the config file
(``--config FILE``, else ``$BARKWATCH_CONFIG``, else the first of ``./config.yaml``,
``$XDG_CONFIG_HOME/barkwatch/config.yaml``, ``/etc/barkwatch/config.yaml``), then the defaults below.

``load_config`` resolves and validates all of it against the dataclasses' annotations and ``_RULES``; any
unknown key or bad value raises ``ConfigError`` with a one-line message naming the source and the key.
``format_config`` shows the result, ``resolve_dirs`` turns the paths section into directories.

This module imports neither torch nor numpy, so ``barkwatch config``, ``events`` and ``status`` start fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import os
import re
import shlex
import types
import typing
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .files import atomic_path


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
    runtime: str = "auto"  # auto, torch or onnx


@dataclass
class DetectorConfig:
    threshold: float | None = None  # None: the model's own
    hop_s: float | None = None  # None: the model's own
    gate_dbfs: float = -60.0
    patience: int = 2
    release_s: float = 1.0
    merge_s: float = 2.0
    max_duration_s: float = 600.0
    hold_threshold: float | None = None  # None: the model's own (else the threshold)


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
class WebConfig:
    enabled: bool = False  # serve the web interface beside listening (`barkwatch web` serves it on its own)
    host: str = "127.0.0.1"  # anything but a loopback address needs a token
    port: int = 8080
    token: str | None = None  # asked for by every page and API call when set
    labels_dir: str | None = None  # the clips the label page offers (None: the clip folder)


@dataclass
class NodeConfig:
    # This listener among several on one broker (`barkwatch hub`). None: the host name in what is published,
    # and the topics stay as a single listener's (<topic_prefix>/event); a name puts them under
    # <topic_prefix>/<name>/ so that listeners never collide.
    name: str | None = None
    room: str | None = None  # the room the hub places this microphone's barks in; None: the name
    url: str | None = None  # this listener's web interface as the hub reaches it; None: from web.* when enabled


@dataclass
class HubConfig:
    mqtt: str | None = None  # the broker: mqtt://host[:1883] or mqtts://host[:8883] (TLS)
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None  # mqtts: the CA certificate file to trust; None: the system's
    client_id: str = "barkwatch-hub"  # fixed: the broker keeps the hub's session and messages while it is away
    topic_prefix: str = "barkwatch"  # the nodes' notify.mqtt.topic_prefix
    db: str | None = None  # the SQLite database; None: <state_dir>/hub.sqlite
    host: str = "127.0.0.1"  # the hub's web pages; anything but a loopback address needs a token
    port: int = 8090
    token: str | None = None
    node_token: str | None = None  # the nodes' web.token, when they share one
    node_tokens: dict[str, str] = field(default_factory=dict)  # node name -> its web.token (wins over node_token)
    node_urls: dict[str, str] = field(default_factory=dict)  # node name -> its web interface (wins over node.url)
    merge_s: float = 1.0  # barks of several microphones starting within this are one bark
    backfill_every_s: float = 600.0  # how often each node's web API is asked for what MQTT did not bring
    backfill_days: float = 7.0  # how far back a node the hub has never read is read


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
    web: WebConfig = field(default_factory=WebConfig)
    node: NodeConfig = field(default_factory=NodeConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


COMPUTE_CHOICES = ("auto", "cpu", "cuda", "mps")  # as compute.CHOICES, repeated so that no torch is imported
ENV_PREFIX = "BARKWATCH_"
ENV_CONFIG = "BARKWATCH_CONFIG"  # names the config file; not a key


class ConfigError(Exception):
    """A configuration that cannot be used. The message is one line: the source (a file, ``env BARKWATCH_X``
    or ``flag``), the key path, what is wrong and what to do."""


@dataclass
class LoadedConfig:
    """The effective configuration and where each value came from."""

    config: Config
    sources: dict[str, str]  # key path -> "default", the config file's path, "env BARKWATCH_X" or "flag"
    file: Path | None  # the config file read, None when there was none


# -- the schema, read from the dataclasses above --------------------------------------------------------------


@dataclass(frozen=True)
class _Key:
    """One leaf of the schema: its dotted path and the type its annotation asks for."""

    path: str
    kind: type  # str, float, int, bool, list (of str) or dict (str -> str)
    optional: bool  # the annotation is ``X | None``


def _leaves(cls: type, prefix: str = "") -> list[_Key]:
    """The leaves of a section dataclass, nested sections flattened into dotted paths."""
    hints = typing.get_type_hints(cls)
    keys: list[_Key] = []
    for f in dataclasses.fields(cls):
        hint, path = hints[f.name], prefix + f.name
        if dataclasses.is_dataclass(hint):
            keys += _leaves(hint, path + ".")
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        base = args[0] if optional else hint
        keys.append(_Key(path, typing.get_origin(base) or base, optional))
    return keys


@functools.cache
def _schema() -> dict[str, _Key]:
    return {key.path: key for key in _leaves(Config)}


def key_paths() -> list[str]:
    """Every leaf key's dotted path (``"detector.threshold"``), in the order of the dataclasses."""
    return list(_schema())


def _sections() -> list[str]:
    """Every section's dotted path (``"notify"``, ``"notify.mqtt"``)."""
    return list(dict.fromkeys(p.rsplit(".", i)[0] for p in _schema() for i in range(1, p.count(".") + 1)))


def _env_name(path: str) -> str:
    return ENV_PREFIX + path.replace(".", "_").upper()


def get(config: Config, path: str) -> Any:
    """The value at a dotted key path (a section path gives the section). Raises KeyError for an unknown path."""
    value: Any = config
    for part in path.split("."):
        if not dataclasses.is_dataclass(value) or part not in {f.name for f in dataclasses.fields(value)}:
            raise KeyError(path)
        value = getattr(value, part)
    return value


def _set(config: Config, path: str, value: Any) -> None:
    section, _, name = path.rpartition(".")
    setattr(get(config, section), name, value)


# -- what each key accepts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """What a key accepts beyond its type: ``what`` completes "must be ...", ``ok`` tests a value of the right type."""

    what: str
    ok: Callable[[Any], bool]


def _num(lo: float = -math.inf, hi: float = math.inf, *, above: bool = False) -> Callable[[float], bool]:
    """A range test that rejects NaN and infinities; ``above``: lo itself is out of range."""
    return lambda x: math.isfinite(x) and (x > lo if above else x >= lo) and x <= hi


def _one_of(choices: Sequence[str]) -> _Rule:
    return _Rule("one of " + ", ".join(choices), lambda x: x in choices)


def _text(what: str = "a non-empty string") -> _Rule:
    return _Rule(what, lambda x: x != "")


def _command_line(text: str) -> bool:
    try:
        return bool(shlex.split(text))
    except ValueError:  # an unclosed quote
        return False


def _url(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in text)


def _quiet_hours(text: str) -> bool:
    try:
        parse_quiet_hours(text)
    except ValueError:
        return False
    return True


def valid_node_name(text: object) -> bool:
    """A node's name is one level of an MQTT topic, a path segment of the hub's pages and a label on them: not
    empty, at most 64 characters, no /, + or #, no control characters."""
    return (isinstance(text, str) and 0 < len(text) <= 64 and text.strip() == text
            and not set(text) & {"/", "+", "#"} and all(c.isprintable() for c in text))


def _broker_url(text: str) -> bool:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    return parts.scheme in ("mqtt", "mqtts") and bool(parts.hostname) and parts.path in ("", "/")


def _topic(text: str) -> bool:
    return text != "" and not set(text) & {"+", "#", "\0"}  # MQTT wildcards cannot appear in a published topic


_SECONDS_GE0 = _Rule("a number of seconds >= 0", _num(0))
_SECONDS_GT0 = _Rule("a number of seconds > 0", _num(0, above=True))
_EVENT_LIST = _Rule("a list of event kinds from " + ", ".join(EVENT_KINDS), lambda xs: set(xs) <= set(EVENT_KINDS))

# One rule per key (a test checks that none is missing).
_RULES: dict[str, _Rule] = {
    "audio.device": _text("a device as `barkwatch listen --device` takes it (index, name, hw:N[,M], file:PATH)"),
    "audio.samplerate": _Rule("a number of samples per second > 0", _num(0, above=True)),
    "audio.channel": _Rule("a channel index >= 0", _num(0)),
    "model.path": _text("a model file's path"),
    "model.compute": _one_of(COMPUTE_CHOICES),
    "model.threads": _Rule("a whole number of threads >= 1", _num(1)),
    "model.runtime": _one_of(("auto", "torch", "onnx")),
    "detector.threshold": _Rule("a number between 0 and 1", _num(0, 1)),
    "detector.hop_s": _SECONDS_GT0,
    "detector.gate_dbfs": _Rule("a level in dBFS <= 0 (-.inf: no gate)", lambda x: x <= 0 and not math.isnan(x)),
    "detector.patience": _Rule("a whole number of windows >= 1", _num(1)),
    "detector.release_s": _SECONDS_GE0,
    "detector.merge_s": _SECONDS_GE0,
    "detector.max_duration_s": _SECONDS_GT0,
    "detector.hold_threshold": _Rule("a number between 0 and 1", _num(0, 1)),
    "paths.state_dir": _text("a directory"),
    "paths.events_dir": _text("a directory"),
    "paths.clips_dir": _text("a directory"),
    "events.rotate": _one_of(("daily", "size")),
    "events.max_file_mb": _Rule("a size in MB > 0", _num(0, above=True)),  # 0 would start a file per record
    "events.keep_days": _Rule("a number of days >= 0", _num(0)),
    "clips.enabled": _Rule("true or false", lambda x: True),
    "clips.format": _one_of(("flac", "ogg")),
    "clips.pre_roll_s": _Rule("a number of seconds between 0 and 30", _num(0, 30)),
    "clips.post_roll_s": _Rule("a number of seconds between 0 and 30", _num(0, 30)),
    "clips.max_total_mb": _Rule("a size in MB >= 0", _num(0)),
    "clips.max_age_days": _Rule("a number of days >= 0", _num(0)),
    "notify.command.run": _Rule("a command line (split like a shell line)", _command_line),
    "notify.webhook.url": _Rule("an http:// or https:// URL", _url),
    "notify.webhook.retries": _Rule("a whole number of retries >= 0", _num(0)),
    "notify.webhook.headers": _Rule("a mapping of header names to string values", lambda x: True),
    "notify.mqtt.host": _text("a host name or address"),
    "notify.mqtt.port": _Rule("a port number between 1 and 65535", _num(1, 65535)),
    "notify.mqtt.username": _text(),
    "notify.mqtt.password": _Rule("a string", lambda x: True),
    "notify.mqtt.client_id": _text(),
    "notify.mqtt.topic_prefix": _Rule("a non-empty MQTT topic without + or #", _topic),
    "notify.mqtt.discovery": _Rule("true or false", lambda x: True),
    "notify.mqtt.discovery_prefix": _Rule("a non-empty MQTT topic without + or #", _topic),
    "notify.quiet_hours": _Rule("a local time span HH:MM-HH:MM (e.g. 22:00-07:00)", _quiet_hours),
    "web.enabled": _Rule("true or false", lambda x: True),
    "web.host": _text("an address to listen on (127.0.0.1: this machine only; 0.0.0.0: every network)"),
    "web.port": _Rule("a port number between 1 and 65535", _num(1, 65535)),
    "web.token": _Rule("a string of at least 8 characters", lambda x: len(x) >= 8),
    "web.labels_dir": _text("a directory"),
    "node.name": _Rule("a name without /, + or # (a level of the MQTT topics), at most 64 characters",
                       valid_node_name),
    "node.room": _text("a room's name, e.g. garden"),
    "node.url": _Rule("an http:// or https:// URL", _url),
    "hub.mqtt": _Rule("a broker URL mqtt://HOST[:PORT] or mqtts://HOST[:PORT]", _broker_url),
    "hub.username": _text(),
    "hub.password": _Rule("a string", lambda x: True),
    "hub.ca_file": _text("a file of CA certificates"),
    "hub.client_id": _text(),
    "hub.topic_prefix": _Rule("a non-empty MQTT topic without + or #", _topic),
    "hub.db": _text("a database file's path"),
    "hub.host": _text("an address to listen on (127.0.0.1: this machine only; 0.0.0.0: every network)"),
    "hub.port": _Rule("a port number between 1 and 65535", _num(1, 65535)),
    "hub.token": _Rule("a string of at least 8 characters", lambda x: len(x) >= 8),
    "hub.node_token": _Rule("a string of at least 8 characters", lambda x: len(x) >= 8),
    "hub.node_tokens": _Rule("a mapping of node names to their web.token",
                             lambda x: all(valid_node_name(k) and len(v) >= 8 for k, v in x.items())),
    "hub.node_urls": _Rule("a mapping of node names to http:// or https:// URLs",
                           lambda x: all(valid_node_name(k) and _url(v) for k, v in x.items())),
    "hub.merge_s": _Rule("a number of seconds between 0 and 10", _num(0, 10)),
    "hub.backfill_every_s": _SECONDS_GT0,
    "hub.backfill_days": _Rule("a number of days >= 0", _num(0)),
    "logging.level": _one_of(("debug", "info", "warning", "error")),
    "logging.status_every_s": _SECONDS_GT0,
    **{f"notify.{way}.{name}": rule for way in ("command", "webhook", "mqtt")
       for name, rule in (("on", _EVENT_LIST), ("cooldown_s", _SECONDS_GE0), ("timeout_s", _SECONDS_GT0))
       if not (way == "mqtt" and name == "timeout_s")},
}

_NOT_TYPED = object()


def _typed(kind: type, value: Any) -> Any:
    """``value`` as the annotation's type (an int as a float, containers copied), or ``_NOT_TYPED``."""
    if kind is bool or kind is str:
        return value if isinstance(value, kind) else _NOT_TYPED
    if isinstance(value, bool):  # bool is an int to Python, never to this schema
        return _NOT_TYPED
    if kind is int:
        return value if isinstance(value, int) else _NOT_TYPED
    if kind is float:
        try:
            return float(value) if isinstance(value, (int, float)) else _NOT_TYPED
        except OverflowError:
            return _NOT_TYPED
    if kind is list:
        ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
        return list(value) if ok else _NOT_TYPED
    if kind is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        return dict(value) if ok else _NOT_TYPED
    raise TypeError(f"config schema: unsupported annotation {kind!r}")


def _checked(path: str, value: Any, source: str) -> Any:
    """``value`` typed and validated for ``path``; raises ConfigError naming the source and the key."""
    key, rule = _schema()[path], _RULES[path]
    if value is None and key.optional:
        return None
    typed = _typed(key.kind, value)
    if typed is not _NOT_TYPED and rule.ok(typed):
        return typed
    hint = "; quote it to make it text" if key.kind is str and isinstance(value, (bool, int, float)) else ""
    null = " or null" if key.optional else ""
    raise ConfigError(f"{source}: {path}: must be {rule.what}{null}, got {_show(value)}{hint}")


def _show(value: Any, limit: int = 80) -> str:
    """A bad value for a message: a string quoted, anything else as YAML; cut to ``limit`` characters."""
    try:
        text = repr(value) if isinstance(value, str) else _yaml_value(value)
    except yaml.YAMLError:  # not a YAML type: only a flag can pass one
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _unknown_path(source: str, path: str) -> ConfigError:
    """An unknown key in a file or a flag. The hint: the key of that name in another section (a key put in the
    wrong section), else the closest key in the same section, else keys close to it in other sections, else the
    section's keys. Names are compared without their section, which would make a section's keys look alike."""
    parent, _, name = path.rpartition(".")
    known = [*_sections(), *_schema()]
    siblings = [p.rpartition(".")[2] for p in known if p.rpartition(".")[0] == parent]
    elsewhere: dict[str, list[str]] = {}  # leaf name -> the paths that end in it
    for p in known:
        elsewhere.setdefault(p.rpartition(".")[2], []).append(p)
    if path in known:  # a flag naming a section
        hint = "a section, not a key; name a key in it"
    elif name in elsewhere:
        hint = f"did you mean {' or '.join(elsewhere[name])}?"
    elif close := difflib.get_close_matches(name, siblings, n=1):
        hint = f"did you mean {parent + '.' if parent else ''}{close[0]}?"
    elif close := difflib.get_close_matches(name, list(elsewhere), n=1):
        hint = f"did you mean {' or '.join(elsewhere[close[0]])}?"
    elif siblings:
        hint = f"{parent or 'the top level'} has: " + ", ".join(siblings)
    else:
        hint = "no such section"
    return ConfigError(f"{source}: {path}: {'' if path in known else 'unknown key; '}{hint}")


# -- the three layers -----------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load`` with two changes. Only true and false are booleans (YAML 1.2): in YAML 1.1 the key
    ``on:`` reads as True, and yes/no/on/off as values surprise. A key given twice in one mapping is an error:
    PyYAML would keep the last silently, and a second ``notify:`` block would drop the first."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
                                   for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


class _DuplicateKey(yaml.constructor.ConstructorError):
    pass


def _unique_mapping(loader: _Loader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, Hashable):
            if key in seen:
                raise _DuplicateKey(None, None, f"{key}: given twice; keep one", key_node.start_mark)
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def _unreadable_hint(path: Path) -> str:
    """What lets a user read a file their group rights keep them from: the service's config is root's,
    readable by its group (it may hold tokens and passwords)."""
    import grp

    try:
        group = grp.getgrgid(path.stat().st_gid).gr_name
    except (OSError, KeyError):  # a folder above it is closed too
        return "run the command with sudo"
    return (f"run the command with sudo, or join group {group} (sudo usermod -aG {group} $USER, then log in "
            "again)")


def _read_file(path: Path) -> dict[str, Any]:
    """The file's keys as {path: raw value}; syntax, unknown keys and misplaced sections raise ConfigError."""
    source = str(path)
    try:
        data = _yaml_load(path.read_text(encoding="utf-8"))
    except PermissionError:
        raise ConfigError(f"{source}: permission denied; {_unreadable_hint(path)}") from None
    except OSError as e:
        raise ConfigError(f"{source}: cannot read the config file: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text; save the config file as UTF-8") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = e.problem if isinstance(e, _DuplicateKey) else f"YAML syntax error: {e.problem or e.context}"
        raise ConfigError(f"{where}: {problem}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: YAML error: {' '.join(str(e).split())}") from None
    if data is None:  # an empty file, or only comments
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections such as 'detector:', "
                          f"got {_show(data)}")
    values: dict[str, Any] = {}
    sections, keys = set(_sections()), _schema()

    def walk(mapping: dict, prefix: str) -> None:
        for name, value in mapping.items():
            path = f"{prefix}{name}"
            if isinstance(name, str) and "." in name and path in {*sections, *keys}:
                parent, _, leaf = path.rpartition(".")
                raise ConfigError(f"{source}: {path}: write it nested: '{leaf}:' indented under '{parent}:'")
            if path in sections:
                if value is None:  # a section whose keys are all commented out
                    continue
                if not isinstance(value, dict):
                    raise ConfigError(f"{source}: {path}: must be a section of keys (indented under "
                                      f"'{name}:'), got {_show(value)}")
                walk(value, path + ".")
            elif path in keys:
                values[path] = value
            else:
                raise _unknown_path(source, path)

    walk(data, "")
    return values


def _parse_text(path: str, text: str) -> Any:
    """A value given as text (environment, or a str flag for a non-string key): YAML for typed keys; text as it
    is for string keys, except that empty or ``null`` is None where the key allows it."""
    key = _schema()[path]
    if key.kind is str:
        return None if key.optional and text.strip() in ("", "null", "Null", "NULL", "~") else text
    try:
        return _yaml_load(text)
    except yaml.YAMLError:  # not YAML: the type check reports it as the text it is
        return text


def _env_values(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    by_name = {_env_name(p): p for p in _schema()}
    values: dict[str, tuple[Any, str]] = {}
    for name, text in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG:
            continue
        if name not in by_name:  # compared without the prefix, which every name shares
            bare = [n.removeprefix(ENV_PREFIX) for n in by_name]
            close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), bare, n=1)
            hint = f"did you mean {ENV_PREFIX}{close[0]}?" if close else "the names are BARKWATCH_<SECTION>_<KEY>"
            raise ConfigError(f"environment: {name}: unknown key; {hint}")
        path, source = by_name[name], f"env {name}"
        values[path] = (_checked(path, _parse_text(path, text), source), source)
    return values


def _flag_values(flags: Mapping[str, object]) -> dict[str, tuple[Any, str]]:
    values: dict[str, tuple[Any, str]] = {}
    for path, value in flags.items():
        if value is None:  # not given on the command line
            continue
        if path not in _schema():
            raise _unknown_path("flag", path)
        if isinstance(value, str) and _schema()[path].kind is not str:
            value = _parse_text(path, value)
        elif isinstance(value, tuple):  # argparse/typer multi-value options
            value = list(value)
        elif isinstance(value, os.PathLike):  # typer's Path options
            value = os.fspath(value)
        values[path] = (_checked(path, value, "flag"), "flag")
    return values


# -- finding the file, loading, showing -----------------------------------------------------------------------


def _home(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def _expand(text: str, env: Mapping[str, str]) -> Path:
    """``~`` and ``~/x`` against ``env``'s HOME; ``~user`` as the system has it."""
    if text == "~" or text.startswith("~/"):
        return _home(env) / text[2:]
    return Path(text).expanduser()


def _xdg(env: Mapping[str, str], name: str, default: str) -> Path:
    """An XDG base directory: the variable if it is an absolute path (the spec ignores relative ones)."""
    value = env.get(name, "")
    return Path(value) if os.path.isabs(value) else _home(env) / default


def search_paths(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where a config file is looked for when none is named, first match wins."""
    env = os.environ if env is None else env
    return [Path("config.yaml"), _xdg(env, "XDG_CONFIG_HOME", ".config") / "barkwatch" / "config.yaml",
            Path("/etc/barkwatch/config.yaml")]


def _find_file(config_file: str | os.PathLike | None, env: Mapping[str, str],
               search: Sequence[Path] | None) -> Path | None:
    named = [(config_file, "--config"), (env.get(ENV_CONFIG) or None, ENV_CONFIG)]
    for given, by in named:
        if given is not None:
            path = _expand(os.fspath(given), env)
            if not _exists(path):
                raise ConfigError(f"{path}: config file not found (named by {by}); check the path")
            return path
    return next((p for p in (search_paths(env) if search is None else search) if _exists(Path(p))), None)


def _exists(path: Path) -> bool:
    """Whether the file is there; a folder on its way this user may not enter is a ConfigError that says how."""
    try:
        return path.exists()
    except PermissionError:
        raise ConfigError(f"{path}: permission denied; {_unreadable_hint(path.parent)}") from None


def load_config(config_file: str | os.PathLike | None = None, env: Mapping[str, str] | None = None,
                flags: Mapping[str, object] | None = None, search: Sequence[Path] | None = None) -> LoadedConfig:
    """The effective configuration: ``flags`` over ``env`` over the config file over the defaults.

    config_file: the file from ``--config`` (must exist); else ``env``'s BARKWATCH_CONFIG (must exist); else the
        first of ``search`` that exists (default: ``search_paths(env)``); else no file.
    env: the environment (default ``os.environ``); every BARKWATCH_* variable but BARKWATCH_CONFIG must name a key.
    flags: dotted key path -> value from the command line; None means not given. Values are checked like file
        values, except that a string for a non-string key is parsed as YAML, as environment values are, a tuple
        is a list and a Path is its string.
    Raises ConfigError (one line: source, key, problem) for any unknown key or bad value in any layer.
    """
    env = os.environ if env is None else env
    file = _find_file(config_file, env, search)
    layers = [{path: (_checked(path, value, str(file)), str(file)) for path, value in _read_file(file).items()}
              if file is not None else {}, _env_values(env), _flag_values(flags or {})]
    config, sources = Config(), dict.fromkeys(_schema(), "default")
    for layer in layers:  # lowest first, so that later layers overwrite
        for path, (value, source) in layer.items():
            _set(config, path, value)
            sources[path] = source
    return LoadedConfig(config, sources, file)


def _yaml_value(value: Any) -> str:
    """``value`` as one line of YAML that reads back as the same value."""
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, allow_unicode=True)
    text = text.removesuffix("\n...\n").strip()
    return json.dumps(value, ensure_ascii=False) if "\n" in text else text  # a JSON string is YAML on one line


def format_config(loaded: LoadedConfig) -> str:
    """The effective configuration as YAML, every key with its source in a trailing comment; valid as a config
    file itself (it loads back to the same Config)."""
    lines = ["# barkwatch: the effective configuration; after each value, where it came from",
             f"# config file: {loaded.file if loaded.file is not None else 'none'}"]
    opened: list[str] = []  # the sections of the previous key
    for path in key_paths():
        *parents, name = path.split(".")
        depth = next((i for i, (a, b) in enumerate(zip(opened, parents)) if a != b), min(len(opened), len(parents)))
        for i in range(depth, len(parents)):
            lines.append("  " * i + parents[i] + ":")
        opened = parents
        value = _yaml_value(get(loaded.config, path))
        lines.append(f"{'  ' * len(parents)}{name}: {value}  # {loaded.sources.get(path, 'default')}")
    return "\n".join(lines) + "\n"


def set_in_file(path: str | os.PathLike, key: str, value: Any) -> Path:
    """Set one section key (``"detector.threshold"``) in the config file ``path``, keeping everything else in
    it, comments included; the file is made if missing. The result is loaded before it replaces the file
    (atomically), so a file this cannot edit cleanly is left as it was, with a ConfigError."""
    path = Path(path)
    section, _, name = key.partition(".")
    if key not in _schema() or "." in name:
        raise ConfigError(f"{key}: not a key this can set; see `barkwatch config --show`")
    line = f"  {name}: {_yaml_value(value)}"
    try:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config file: {getattr(e, 'strerror', None) or e}") from None
    head = next((i for i, x in enumerate(lines) if re.match(rf"^{section}:\s*(#.*)?$", x)), None)
    if head is None:
        lines += ([""] if lines else []) + [f"{section}:", line]
    else:
        end = next((i for i in range(head + 1, len(lines)) if lines[i].strip() and not lines[i][0].isspace()
                    and not lines[i].lstrip().startswith("#")), len(lines))
        at = next((i for i in range(head + 1, end) if re.match(rf"^\s+{name}:", lines[i])), None)
        if at is None:
            lines.insert(head + 1, line)
        else:
            comment = re.search(r"\s+#[^'\"]*$", lines[at])
            lines[at] = line + (comment.group(0) if comment else "")
    text = "\n".join(lines) + "\n"
    try:
        with atomic_path(path) as temporary:
            temporary.write_text(text, encoding="utf-8")
            loaded = load_config(temporary, env={}, search=[])
            if get(loaded.config, key) != value:
                raise ConfigError(f"{path}: {key} could not be set cleanly; set it by hand to {_yaml_value(value)}")
    except OSError as e:
        raise ConfigError(f"{path}: cannot write the config file: {e.strerror or e}") from None
    return path


def resolve_dirs(config: Config, env: Mapping[str, str] | None = None) -> tuple[Path, Path, Path]:
    """(state_dir, events_dir, clips_dir), each the configured path (``~`` expanded; a relative one is relative
    to the working directory) or else:

    state_dir: $STATE_DIRECTORY (systemd's StateDirectory=; the first of several ':'-separated paths), else
        $XDG_STATE_HOME/barkwatch, else ~/.local/state/barkwatch.
    events_dir: $LOGS_DIRECTORY (systemd's LogsDirectory=, the first), else <state_dir>/events.
    clips_dir: <state_dir>/clips.
    Nothing is created.
    """
    env = os.environ if env is None else env
    paths = config.paths

    def first(name: str) -> Path | None:
        return next((Path(p) for p in env.get(name, "").split(":") if p), None)

    state = (_expand(paths.state_dir, env) if paths.state_dir else
             first("STATE_DIRECTORY") or _xdg(env, "XDG_STATE_HOME", ".local/state") / "barkwatch")
    events = _expand(paths.events_dir, env) if paths.events_dir else first("LOGS_DIRECTORY") or state / "events"
    clips = _expand(paths.clips_dir, env) if paths.clips_dir else state / "clips"
    return state, events, clips


# Where the systemd unit (systemd/barkwatch.service: StateDirectory=, LogsDirectory=) keeps them.
SERVICE_DIRS = (Path("/var/lib/barkwatch"), Path("/var/log/barkwatch"))


def dirs_to_read(config: Config, env: Mapping[str, str] | None = None,
                 service: tuple[Path, Path] = SERVICE_DIRS) -> tuple[Path, Path]:
    """(state_dir, events_dir) for commands that read what a listener wrote (``status``, ``events``).

    As ``resolve_dirs``, except that where the config names no folder and the default one holds nothing yet,
    an installed service's folder is read instead: an owner who installed the service types ``barkwatch
    status`` in their own shell, without systemd's $STATE_DIRECTORY, and means the service."""
    from .service.systemd import state_path

    state, events, _ = resolve_dirs(config, env)
    if config.paths.state_dir is None and not state_path(state).exists() and state_path(service[0]).exists():
        state = service[0]
    if (config.paths.events_dir is None and config.paths.state_dir is None and not events.is_dir()
            and service[1].is_dir()):
        events = service[1]
    return state, events


_QUIET_HOURS = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


def parse_quiet_hours(text: str) -> tuple[time, time]:
    """``"22:00-07:00"`` -> (22:00, 07:00), local times. The span may cross midnight (start > end); start == end
    is refused as ambiguous. Raises ValueError with a message that says what is expected."""
    match = _QUIET_HOURS.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"quiet hours must be HH:MM-HH:MM in local time, e.g. 22:00-07:00, got {text!r}")
    h1, m1, h2, m2 = map(int, match.groups())
    try:
        start, end = time(h1, m1), time(h2, m2)
    except ValueError:
        raise ValueError(f"quiet hours {text!r}: hours must be 00-23 and minutes 00-59") from None
    if start == end:
        raise ValueError(f"quiet hours {text!r} start and end at the same time; give a span such as 22:00-07:00")
    return start, end
