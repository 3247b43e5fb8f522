"""The configuration loader: the documented config.yaml, precedence, search order, validation, resolve_dirs."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest
import yaml

from barkwatch import config as cfg
from barkwatch.config import Config, ConfigError, format_config, get, key_paths, load_config, resolve_dirs

REPO = Path(__file__).resolve().parents[1]
DOCUMENTED = REPO / "config.yaml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def error(**kwargs) -> str:
    """The ConfigError message load_config raises; no search, an empty environment unless given."""
    kwargs.setdefault("env", {})
    kwargs.setdefault("search", [])
    with pytest.raises(ConfigError) as info:
        load_config(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def file_error(tmp_path: Path, text: str) -> str:
    return error(config_file=write(tmp_path / "c.yaml", text))


# -- the documented default ----------------------------------------------------------------------------------


def test_documented_config_equals_the_defaults():
    loaded = load_config(DOCUMENTED, env={})
    assert loaded.config == Config()
    assert loaded.file == DOCUMENTED
    assert set(loaded.sources.values()) == {str(DOCUMENTED)}


def test_documented_config_lists_every_key_with_a_comment():
    def leaves(mapping: dict, prefix: str = "") -> list[str]:
        return [p for k, v in mapping.items()
                for p in (leaves(v, f"{prefix}{k}.") if isinstance(v, dict) and f"{prefix}{k}" not in key_paths()
                          else [f"{prefix}{k}"])]

    assert leaves(cfg._yaml_load(DOCUMENTED.read_text())) == key_paths()  # every key, in the schema's order
    lines = DOCUMENTED.read_text().splitlines()
    for i, line in enumerate(lines):
        key = line.strip().partition(":")[0]
        is_leaf = line.strip() and not line.lstrip().startswith("#") and line.partition(":")[2].strip()
        if is_leaf and key != "password":  # username's comment covers the pair
            assert lines[i - 1].lstrip().startswith("#"), f"config.yaml: {key} has no comment"


def test_schema_is_complete_and_env_names_are_unambiguous():
    paths = key_paths()
    assert len(paths) == 74 and "detector.hold_threshold" in paths and "model.runtime" in paths and "notify.mqtt.host" in paths and "web.token" in paths and "notify.quiet_hours" in paths
    assert set(cfg._RULES) == set(paths)  # every key has a rule, no rule for a key that is gone
    assert len({cfg._env_name(p) for p in paths}) == len(paths)
    assert get(Config(), "notify.mqtt.port") == 1883
    with pytest.raises(KeyError):
        get(Config(), "notify.mqtt.portt")


def test_config_module_does_not_import_torch_or_numpy():
    code = "import sys, barkwatch.config; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# -- precedence and search -----------------------------------------------------------------------------------


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path):
    file = write(tmp_path / "c.yaml", "detector:\n  threshold: 0.6\n  patience: 4\n  merge_s: 5\n"
                                      "model:\n  threads: 2\n")
    env = {"BARKWATCH_DETECTOR_THRESHOLD": "0.7", "BARKWATCH_DETECTOR_PATIENCE": "5", "PATH": "/bin"}
    flags = {"detector.threshold": 0.8, "detector.hop_s": None, "model.compute": "cpu"}
    loaded = load_config(file, env=env, flags=flags)
    d = loaded.config.detector
    assert (d.threshold, d.patience, d.merge_s, d.hop_s) == (0.8, 5, 5.0, None)
    assert isinstance(d.merge_s, float)  # an int where a float is expected becomes a float
    assert (loaded.config.model.threads, loaded.config.model.compute) == (2, "cpu")
    assert loaded.file == file
    s = loaded.sources
    assert s["detector.threshold"] == "flag" and s["model.compute"] == "flag"
    assert s["detector.patience"] == "env BARKWATCH_DETECTOR_PATIENCE"
    assert s["detector.merge_s"] == s["model.threads"] == str(file)
    assert s["detector.hop_s"] == s["clips.format"] == "default"
    assert set(s) == set(key_paths())


def test_env_values_are_yaml_and_string_keys_take_the_text(tmp_path):
    env = {"BARKWATCH_NOTIFY_MQTT_HOST": "localhost", "BARKWATCH_PATHS_STATE_DIR": "/x",
           "BARKWATCH_NOTIFY_WEBHOOK_ON": "[bark, bark_start]", "BARKWATCH_CLIPS_ENABLED": "false",
           "BARKWATCH_AUDIO_DEVICE": "2", "BARKWATCH_MODEL_PATH": "null", "BARKWATCH_NOTIFY_MQTT_PORT": "8883",
           "BARKWATCH_NOTIFY_WEBHOOK_HEADERS": "{Authorization: Bearer x}", "BARKWATCH_CONFIG": ""}
    c = load_config(env=env, search=[]).config
    assert c.notify.mqtt.host == "localhost" and c.paths.state_dir == "/x"
    assert c.notify.webhook.on == ["bark", "bark_start"] and c.clips.enabled is False
    assert c.audio.device == "2" and c.model.path is None and c.notify.mqtt.port == 8883
    assert c.notify.webhook.headers == {"Authorization": "Bearer x"}


def test_flag_strings_for_typed_keys_are_parsed_and_tuples_are_lists():
    c = load_config(env={}, search=[], flags={"detector.threshold": "0.9", "notify.mqtt.on": ("bark",),
                                              "audio.device": "hw:1,0", "model.path": Path("/m.pt")}).config
    assert (c.detector.threshold, c.notify.mqtt.on, c.audio.device) == (0.9, ["bark"], "hw:1,0")
    assert c.model.path == "/m.pt"
    assert error(flags={"model.threads": object()}).startswith("flag: model.threads: must be a whole number")


def test_search_order_first_existing_wins(tmp_path):
    first, second, third = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    write(second, "model:\n  threads: 2\n")
    write(third, "model:\n  threads: 3\n")
    loaded = load_config(env={}, search=[first, second, third])
    assert loaded.file == second and loaded.config.model.threads == 2
    assert loaded.sources["model.threads"] == str(second)
    nothing = load_config(env={}, search=[first])
    assert nothing.file is None and nothing.config == Config() and set(nothing.sources.values()) == {"default"}


def test_default_search_places(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    xdg = tmp_path / "xdg"
    assert cfg.search_paths({"XDG_CONFIG_HOME": str(xdg)}) == [
        Path("config.yaml"), xdg / "barkwatch" / "config.yaml", Path("/etc/barkwatch/config.yaml")]
    home = tmp_path / "home"  # unset or relative XDG_CONFIG_HOME: ~/.config
    assert cfg.search_paths({"HOME": str(home), "XDG_CONFIG_HOME": "rel"})[1] == home / ".config/barkwatch/config.yaml"

    write(xdg / "barkwatch" / "config.yaml", "model:\n  threads: 2\n")
    assert load_config(env={"XDG_CONFIG_HOME": str(xdg)}).config.model.threads == 2
    write(tmp_path / "config.yaml", "model:\n  threads: 3\n")  # ./config.yaml comes first
    loaded = load_config(env={"XDG_CONFIG_HOME": str(xdg)})
    assert loaded.config.model.threads == 3 and loaded.file == Path("config.yaml")


def test_named_config_file_beats_search_and_must_exist(tmp_path):
    named = write(tmp_path / "named.yaml", "model:\n  threads: 4\n")
    by_env = write(tmp_path / "env.yaml", "model:\n  threads: 5\n")
    found = write(tmp_path / "found.yaml", "model:\n  threads: 6\n")
    env = {"BARKWATCH_CONFIG": str(by_env)}
    assert load_config(named, env=env, search=[found]).config.model.threads == 4
    assert load_config(env=env, search=[found]).config.model.threads == 5
    assert load_config(env={}, search=[found]).config.model.threads == 6
    assert error(config_file=tmp_path / "nope.yaml", search=[found]) == (
        f"{tmp_path / 'nope.yaml'}: config file not found (named by --config); check the path")
    assert "named by BARKWATCH_CONFIG" in error(env={"BARKWATCH_CONFIG": str(tmp_path / "nope.yaml")})


# -- errors ---------------------------------------------------------------------------------------------------


def test_unknown_key_in_file_says_did_you_mean(tmp_path):
    file = write(tmp_path / "config.yaml", "detector:\n  thresold: 0.9\n")
    assert error(config_file=file) == f"{file}: detector.thresold: unknown key; did you mean detector.threshold?"
    assert file_error(tmp_path, "detectr:\n  threshold: 0.9\n").endswith(
        "detectr: unknown key; did you mean detector?")
    assert file_error(tmp_path, "notify:\n  xyzzy: 1\n").endswith(
        "notify.xyzzy: unknown key; notify has: command, webhook, mqtt, quiet_hours")
    assert file_error(tmp_path, "model:\n  threshold: 0.9\n").endswith(
        "model.threshold: unknown key; did you mean detector.threshold?")  # in the wrong section
    assert error(flags={"foo.bar": 1}) == "flag: foo.bar: unknown key; no such section"
    assert file_error(tmp_path, "detector.threshold: 0.9\n").endswith(
        "detector.threshold: write it nested: 'threshold:' indented under 'detector:'")


def test_unknown_env_and_flag_keys(tmp_path):
    assert error(env={"BARKWATCH_DETECTOR_THRESOLD": "0.9"}) == (
        "environment: BARKWATCH_DETECTOR_THRESOLD: unknown key; did you mean BARKWATCH_DETECTOR_THRESHOLD?")
    assert error(env={"BARKWATCH_MQTT_HOST": "x"}).endswith("did you mean BARKWATCH_NOTIFY_MQTT_HOST?")
    assert error(env={"BARKWATCH_ZZZ": "1"}) == (
        "environment: BARKWATCH_ZZZ: unknown key; the names are BARKWATCH_<SECTION>_<KEY>")
    assert error(flags={"detector.treshold": 1}) == (
        "flag: detector.treshold: unknown key; did you mean detector.threshold?")
    assert error(flags={"detector": 1}) == "flag: detector: a section, not a key; name a key in it"
    # Variables without the prefix are none of the loader's business.
    assert load_config(env={"BARKWATCHX": "1", "barkwatch_x": "1"}, search=[]).config == Config()


@pytest.mark.parametrize("yaml_text, message", [
    ("detector:\n  threshold: high\n", "detector.threshold: must be a number between 0 and 1 or null, got 'high'"),
    ("detector:\n  threshold: 1.5\n", "detector.threshold: must be a number between 0 and 1 or null, got 1.5"),
    ("detector:\n  threshold: .nan\n", "detector.threshold: must be a number between 0 and 1 or null, got .nan"),
    ("detector:\n  threshold: true\n", "detector.threshold: must be a number between 0 and 1 or null, got true"),
    ("detector:\n  patience: 2.5\n", "detector.patience: must be a whole number of windows >= 1, got 2.5"),
    ("detector:\n  patience: true\n", "detector.patience: must be a whole number of windows >= 1, got true"),
    ("detector:\n  patience: 0\n", "detector.patience: must be a whole number of windows >= 1, got 0"),
    ("detector:\n  patience: null\n", "detector.patience: must be a whole number of windows >= 1, got null"),
    ("detector:\n  hop_s: 0\n", "detector.hop_s: must be a number of seconds > 0 or null, got 0"),
    ("detector:\n  release_s: -1\n", "detector.release_s: must be a number of seconds >= 0, got -1"),
    ("detector:\n  max_duration_s: 0\n", "detector.max_duration_s: must be a number of seconds > 0, got 0"),
    ("detector:\n  gate_dbfs: 3\n", "detector.gate_dbfs: must be a level in dBFS <= 0 (-.inf: no gate), got 3"),
    ("clips:\n  enabled: yes\n", "clips.enabled: must be true or false, got 'yes'"),
    ("clips:\n  enabled: 1\n", "clips.enabled: must be true or false, got 1"),
    ("clips:\n  format: wav\n", "clips.format: must be one of flac, ogg, got 'wav'"),
    ("clips:\n  pre_roll_s: 31\n", "clips.pre_roll_s: must be a number of seconds between 0 and 30, got 31"),
    ("clips:\n  max_total_mb: -1\n", "clips.max_total_mb: must be a size in MB >= 0, got -1"),
    ("model:\n  compute: gpu\n", "model.compute: must be one of auto, cpu, cuda, mps, got 'gpu'"),
    ("model:\n  threads: 0\n", "model.threads: must be a whole number of threads >= 1, got 0"),
    ("events:\n  rotate: weekly\n", "events.rotate: must be one of daily, size, got 'weekly'"),
    ("events:\n  keep_days: -2\n", "events.keep_days: must be a number of days >= 0, got -2"),
    ("logging:\n  level: INFO\n", "logging.level: must be one of debug, info, warning, error, got 'INFO'"),
    ("audio:\n  device: 2\n", ("audio.device: must be a device as `barkwatch listen --device` takes it "
                               "(index, name, hw:N[,M], file:PATH), got 2; quote it to make it text")),
    ("notify:\n  command:\n    on: [bark, woof]\n",
     "notify.command.on: must be a list of event kinds from bark_start, bark, got [bark, woof]"),
    ("notify:\n  command:\n    on: bark\n",
     "notify.command.on: must be a list of event kinds from bark_start, bark, got 'bark'"),
    ("notify:\n  command:\n    run: 'echo \"x'\n",
     "notify.command.run: must be a command line (split like a shell line) or null, got 'echo \"x'"),
    ("notify:\n  webhook:\n    url: ftp://x\n",
     "notify.webhook.url: must be an http:// or https:// URL or null, got 'ftp://x'"),
    ("notify:\n  webhook:\n    headers: {X-N: 1}\n",
     "notify.webhook.headers: must be a mapping of header names to string values, got {X-N: 1}"),
    ("notify:\n  webhook:\n    retries: -1\n",
     "notify.webhook.retries: must be a whole number of retries >= 0, got -1"),
    ("notify:\n  mqtt:\n    port: 70000\n",
     "notify.mqtt.port: must be a port number between 1 and 65535, got 70000"),
    ("notify:\n  mqtt:\n    topic_prefix: a/#\n",
     "notify.mqtt.topic_prefix: must be a non-empty MQTT topic without + or #, got 'a/#'"),
    ("notify:\n  quiet_hours: 22-7\n",
     "notify.quiet_hours: must be a local time span HH:MM-HH:MM (e.g. 22:00-07:00) or null, got '22-7'"),
    *[(f"node:\n  name: {name}\n", "node.name: must be a name without /, + or # (a level of the MQTT topics), at "
       f"most 64 characters or null, got {shown}") for name, shown in (("a/b", "'a/b'"), ("'kitchen+'", "'kitchen+'"),
                                                                      ("'#'", "'#'"), ("''", "''"))],
    ("hub:\n  mqtt: http://broker\n",
     "hub.mqtt: must be a broker URL mqtt://HOST[:PORT] or mqtts://HOST[:PORT] or null, got 'http://broker'"),
    ("hub:\n  node_tokens: {a/b: secret-one}\n",
     "hub.node_tokens: must be a mapping of node names to their web.token, got {a/b: secret-one}"),
    ("notify:\n  mqtt: localhost\n",
     "notify.mqtt: must be a section of keys (indented under 'mqtt:'), got 'localhost'"),
])
def test_bad_values_in_file(tmp_path, yaml_text, message):
    file = write(tmp_path / "c.yaml", yaml_text)
    assert error(config_file=file) == f"{file}: {message}"


def test_bad_values_in_env_and_flags():
    assert error(env={"BARKWATCH_DETECTOR_THRESHOLD": "high"}) == (
        "env BARKWATCH_DETECTOR_THRESHOLD: detector.threshold: must be a number between 0 and 1 or null, got 'high'")
    assert error(env={"BARKWATCH_NOTIFY_COMMAND_ON": "[bark"}).endswith("got '[bark'")  # not YAML: shown as text
    assert error(env={"BARKWATCH_MODEL_THREADS": ""}).endswith("model.threads: must be a whole number of threads "
                                                               ">= 1, got null")
    assert error(flags={"model.threads": 1.5}) == "flag: model.threads: must be a whole number of threads >= 1, got 1.5"


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    message = file_error(tmp_path, "detector:\n  threshold: 0.9\n  patience: [2\n")
    assert message.startswith(f"{tmp_path / 'c.yaml'}:4:") and "YAML syntax error" in message
    message = file_error(tmp_path, "model:\n  threads: 1\n   compute: cpu\n")
    assert message.startswith(f"{tmp_path / 'c.yaml'}:3:") and "YAML syntax error" in message


def test_duplicate_keys_and_non_mapping_top_level(tmp_path):
    assert file_error(tmp_path, "notify:\n  quiet_hours: 22:00-07:00\nmodel: {}\nnotify: {}\n") == (
        f"{tmp_path / 'c.yaml'}:4:1: notify: given twice; keep one")
    assert file_error(tmp_path, "- detector\n") == (
        f"{tmp_path / 'c.yaml'}: the top level must be a mapping of sections such as 'detector:', got [detector]")


def test_empty_file_and_empty_sections_are_defaults(tmp_path):
    assert load_config(write(tmp_path / "a.yaml", "# nothing\n"), env={}).config == Config()
    assert load_config(write(tmp_path / "b.yaml", "detector:\n  # threshold: 0.9\n"), env={}).config == Config()


# -- showing ----------------------------------------------------------------------------------------------------


def test_format_config_round_trips_and_names_sources(tmp_path):
    file = write(tmp_path / "c.yaml", "notify:\n  webhook:\n    url: https://example.com/hook?a=1#x\n"
                                      "    headers: {Authorization: 'Bearer a: b'}\n"
                                      "  quiet_hours: '22:00-07:00'\n"
                                      "audio:\n  device: \"2\"\n")
    env = {"BARKWATCH_NOTIFY_MQTT_PASSWORD": "p#s: 'x\"\nline2", "BARKWATCH_NOTIFY_COMMAND_ON": "[]",
           "BARKWATCH_MODEL_PATH": "on"}
    loaded = load_config(file, env=env, flags={"detector.threshold": 0.25, "detector.gate_dbfs": float("-inf")})
    text = format_config(loaded)
    assert "  threshold: 0.25  # flag\n" in text
    assert "    password: " in text and "# env BARKWATCH_NOTIFY_MQTT_PASSWORD\n" in text
    assert f"    url: https://example.com/hook?a=1#x  # {file}\n" in text
    assert "  clips_dir: null  # default\n" in text
    assert isinstance(yaml.safe_load(text), dict)  # plain YAML too, not only to this loader
    shown = write(tmp_path / "shown.yaml", text)
    again = load_config(shown, env={})
    assert again.config == loaded.config
    assert again.config.notify.mqtt.password == "p#s: 'x\"\nline2" and again.config.model.path == "on"
    assert set(again.sources.values()) == {str(shown)}
    defaults = load_config(env={}, search=[])
    assert load_config(write(tmp_path / "d.yaml", format_config(defaults)), env={}).config == Config()


# -- directories and quiet hours ----------------------------------------------------------------------------


def test_resolve_dirs_defaults_systemd_and_xdg(tmp_path):
    home = tmp_path / "home"
    assert resolve_dirs(Config(), {"HOME": str(home)}) == (
        home / ".local/state/barkwatch", home / ".local/state/barkwatch/events", home / ".local/state/barkwatch/clips")
    xdg = {"HOME": str(home), "XDG_STATE_HOME": "/xdg/state"}
    assert resolve_dirs(Config(), xdg)[0] == Path("/xdg/state/barkwatch")
    assert resolve_dirs(Config(), {"HOME": str(home), "XDG_STATE_HOME": "relative"})[0] == (
        home / ".local/state/barkwatch")  # the XDG spec ignores relative paths
    systemd = {**xdg, "STATE_DIRECTORY": "/var/lib/barkwatch:/var/lib/other", "LOGS_DIRECTORY": "/var/log/barkwatch"}
    assert resolve_dirs(Config(), systemd) == (
        Path("/var/lib/barkwatch"), Path("/var/log/barkwatch"), Path("/var/lib/barkwatch/clips"))


def test_resolve_dirs_configured_paths_win_and_expand_home(tmp_path):
    home = tmp_path / "home"
    c = load_config(env={"BARKWATCH_PATHS_STATE_DIR": "~/bw", "BARKWATCH_PATHS_CLIPS_DIR": "/clips"},
                    search=[]).config
    env = {"HOME": str(home), "STATE_DIRECTORY": "/var/lib/barkwatch", "LOGS_DIRECTORY": "/var/log/barkwatch"}
    assert resolve_dirs(c, env) == (home / "bw", Path("/var/log/barkwatch"), Path("/clips"))
    c.paths.events_dir = "~/ev"
    assert resolve_dirs(c, env)[1] == home / "ev"


def test_reading_commands_find_an_installed_services_folders(tmp_path):
    from barkwatch.config import dirs_to_read

    home = {"HOME": str(tmp_path / "home")}
    service = (tmp_path / "var/lib/barkwatch", tmp_path / "var/log/barkwatch")
    own = resolve_dirs(Config(), home)[:2]
    assert dirs_to_read(Config(), home, service) == own  # no service installed: one's own folders
    service[0].mkdir(parents=True)
    (service[0] / "status.json").write_text("{}")
    service[1].mkdir(parents=True)
    assert dirs_to_read(Config(), home, service) == service  # nothing of one's own: the service's
    own[0].mkdir(parents=True)
    (own[0] / "status.json").write_text("{}")
    own[1].mkdir(parents=True)
    assert dirs_to_read(Config(), home, service) == own  # one's own listener wins where it has run
    configured = load_config(env={"BARKWATCH_PATHS_STATE_DIR": str(tmp_path / "elsewhere")}, search=[]).config
    assert dirs_to_read(configured, home, service) == (tmp_path / "elsewhere", tmp_path / "elsewhere/events")


def test_parse_quiet_hours():
    assert cfg.parse_quiet_hours("22:00-07:00") == (time(22, 0), time(7, 0))
    assert cfg.parse_quiet_hours(" 9:30 - 17:45 ") == (time(9, 30), time(17, 45))
    for bad, says in [("22-7", "HH:MM-HH:MM"), ("24:00-07:00", "hours must be 00-23"),
                      ("22:00-22:00", "same time"), ("", "HH:MM-HH:MM")]:
        with pytest.raises(ValueError, match=says):
            cfg.parse_quiet_hours(bad)


def load_as_nobody(config: Path) -> str:
    """``load_config(config)`` in a forked child that became nobody (this interpreter may live where nobody
    cannot start it): "loaded" or the error's text."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            load_config(config)
            message = "loaded"
        except ConfigError as e:
            message = str(e)
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            message = f"{type(e).__name__}: {e}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        message = f.read()
    os.waitpid(pid, 0)
    return message


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to become another user")
def test_a_config_only_its_group_may_read_says_sudo_or_join_the_group():
    """The service's config is root:barkwatch 0640 in /etc/barkwatch: a user outside the group is told how to
    read it, in one line, whether the file or its folder is closed to them."""
    import grp
    import tempfile

    group = grp.getgrgid(0).gr_name  # root's group: nobody is not in it
    hint = f"permission denied; run the command with sudo, or join group {group} (sudo usermod -aG {group} $USER, " \
           "then log in again)"
    with tempfile.TemporaryDirectory(dir="/tmp") as top:  # pytest's own folders are closed to other users
        folder = Path(top) / "barkwatch"
        folder.mkdir()
        Path(top).chmod(0o755)
        config = folder / "config.yaml"
        config.write_text("audio:\n  device: default\n")
        os.chown(config, 0, 0)
        config.chmod(0o640)
        assert load_as_nobody(config) == f"{config}: {hint}"
        folder.chmod(0o750)
        assert load_as_nobody(config) == f"{config}: {hint}"
