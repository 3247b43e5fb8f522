"""The systemd unit: it loads cleanly, its sandbox rates well, and it keeps the settings the service relies on.

``systemd-analyze`` works offline on the unit file, so these need no running systemd (they skip where the tool
is missing).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "barkwatch.service"
HUB_UNIT = REPO / "systemd" / "barkwatch-hub.service"
MAX_EXPOSURE = 2.5  # systemd-analyze security: up to 2.5 is "OK" or better

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


def directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) for each assignment, in order; repeated keys stay repeated, as systemd reads them."""
    section, out = "", []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        else:
            key, _, value = line.partition("=")
            out.append((section, key.strip(), value.strip()))
    return out


def values(section: str, key: str) -> list[str]:
    return [v for s, k, v in directives(UNIT.read_text()) if (s, k) == (section, key)]


def verify(text: str, tmp_path: Path, name: str = "barkwatch.service") -> list[str]:
    """Problems ``systemd-analyze verify`` finds in a unit with this text, as its output lines about the unit.

    verify insists that ExecStart='s program exists, which /opt/barkwatch/.venv/bin/barkwatch does not on a
    development machine, so the copy checked here runs this Python instead; everything else is as written.
    verify exits 0 on unknown keys and bad values (it only warns), hence the output is what is checked.
    """
    unit = tmp_path / name
    unit.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable}", text, flags=re.M))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no", str(unit)],
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if name in line]
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}")
    return problems


def exposure(path: Path) -> float:
    """The overall exposure ``systemd-analyze security`` gives the unit file at ``path``: 0 (safe) to 10."""
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(path)],
                            capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert found, f"no exposure level in:\n{result.stdout}\n{result.stderr}"
    return float(found.group(1))


@needs_analyze
def test_unit_verifies_cleanly(tmp_path):
    assert verify(UNIT.read_text(), tmp_path) == []


@needs_analyze
def test_verify_catches_a_mistyped_directive(tmp_path):
    """The check above is only worth something if a typo makes it fail."""
    broken = UNIT.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
    assert any("NoNewPrivilege" in line for line in verify(broken, tmp_path))


@needs_analyze
def test_sandbox_exposure_is_low():
    level = exposure(UNIT)
    assert level <= MAX_EXPOSURE, f"systemd-analyze security rates the unit {level} (more than {MAX_EXPOSURE})"


@needs_analyze
def test_the_hub_unit_verifies_cleanly_and_its_sandbox_rates_low(tmp_path):
    assert verify(HUB_UNIT.read_text(), tmp_path, HUB_UNIT.name) == []
    level = exposure(HUB_UNIT)
    assert level <= MAX_EXPOSURE, f"systemd-analyze security rates the hub's unit {level} (more than {MAX_EXPOSURE})"
    hub = dict(((s, k), v) for s, k, v in directives(HUB_UNIT.read_text()))
    assert hub[("Service", "User")] == "barkwatch" and hub[("Service", "StateDirectory")] == "barkwatch-hub"
    assert hub[("Service", "PrivateDevices")] == "yes"  # it needs no sound card, unlike the listener
    assert "barkwatch hub --config /etc/barkwatch/config.yaml" in hub[("Service", "ExecStart")]


@needs_analyze
def test_exposure_rises_without_the_sandbox(tmp_path):
    """Removing the hardening must fail the test above: the parsed figure follows the unit."""
    text = UNIT.read_text()
    stripped = tmp_path / "barkwatch.service"
    stripped.write_text(text[:text.index("# --- Sandboxing")] + text[text.index("[Install]"):])
    assert exposure(stripped) > MAX_EXPOSURE


def test_notify_service_with_watchdog_and_restarts():
    assert values("Service", "Type") == ["notify"]
    assert values("Service", "NotifyAccess") == ["main"]  # notify.command's children cannot fake READY=1
    (watchdog,) = values("Service", "WatchdogSec")
    assert 5 <= int(watchdog) <= 300
    assert values("Service", "Restart") == ["on-failure"]
    assert values("Service", "RestartSec")
    # A start limit, in [Unit] where systemd reads it (in [Service] it is ignored with a warning).
    assert values("Unit", "StartLimitIntervalSec") and values("Unit", "StartLimitBurst")
    assert "-HUP $MAINPID" in values("Service", "ExecReload")[0]


def test_runs_as_barkwatch_with_audio_and_its_directories():
    assert values("Service", "User") == ["barkwatch"]
    assert values("Service", "SupplementaryGroups") == ["audio"]
    # config.PathsConfig finds its directories through $STATE_DIRECTORY and $LOGS_DIRECTORY.
    assert values("Service", "StateDirectory") == ["barkwatch"]
    assert values("Service", "LogsDirectory") == ["barkwatch"]
    assert "/etc/barkwatch/config.yaml" in values("Service", "ExecStart")[0]


def test_sandbox_leaves_what_audio_and_torch_need():
    """Hardening that looks free but breaks the service (see systemd/README.md)."""
    assert values("Service", "PrivateDevices") in ([], ["no"])  # would hide /dev/snd
    assert values("Service", "PrivateUsers") in ([], ["no"])  # would drop the audio group
    assert "char-alsa rw" in values("Service", "DeviceAllow")
    assert values("Service", "MemoryDenyWriteExecute") in ([], ["no"])  # oneDNN's JIT convolutions
    assert values("Service", "ProcSubset") in ([], ["all"])  # torch's CPU detection reads /proc/cpuinfo
    # torch calls mbind and sched_setaffinity, which the filter refuses: EPERM lets it carry on, SIGSYS kills.
    assert values("Service", "SystemCallErrorNumber") == ["EPERM"]
