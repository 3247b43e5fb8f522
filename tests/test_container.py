"""The service installed as the README tells a new user, on a Debian machine whose init is systemd.

The machines the tests run on do not boot systemd, but a container can: a Debian root built with mmdebstrap and
booted with ``systemd-nspawn -b``, systemd its PID 1. In it a user with sudo copies the repository, runs
``scripts/setup`` and ``sudo scripts/install-service --device file:/opt/barkwatch/samples/example.ogg`` (a
recording played in real time as the microphone: the example's five barks in its minute), then checks what
the README and the installer promise: the unit active, the barks in the event log, ``barkwatch status`` and
``events`` as the README shows them, every command the installer prints run as printed, ``systemctl stop`` in
the middle of a bark leaving that bark's record written, and ``systemd-analyze security`` on the installed
unit. The container is torn down whatever happens.

It needs root, mmdebstrap and systemd-nspawn (``scripts/setup --tests`` installs them; apt is tried here too),
and the package mirrors: the container's ``scripts/setup`` installs with apt and pip as a user's would. pip
there uses this machine's pip settings and local wheel folders (bound read-only) and root's pip cache, so
torch is not fetched again where this machine has it.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import REPO, SAMPLES
from test_systemd import MAX_EXPOSURE

from barkwatch.model import modelfile

SUITE = "bookworm"
# A minimal Debian that boots (setup adds the rest), and the MQTT broker a house with a hub runs.
PACKAGES = "systemd,dbus,python3,python3-venv,sudo,mosquitto"
USER = "alice"  # the new user: a login with sudo, the checkout in her home
HOSTNAME = "barkwatch-test"
EXAMPLE = "/opt/barkwatch/samples/example.ogg"  # where install-service copies the example
LOG_DIR = "/var/log/barkwatch"
CONFIG = "/etc/barkwatch/config.yaml"
NEEDS_FREE_GB = 5  # the root, and two environments with torch (the checkout's and /opt/barkwatch's)
FOLLOW_S = 5  # how long a printed command that follows (-f) runs before it is interrupted
META = modelfile.read_metadata(modelfile.DEFAULT_MODEL)


def _descendants(pid: int) -> list[tuple[int, int, str]]:
    """(pid, parent, name) of every process below ``pid``, from /proc."""
    procs = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            procs.append((int(entry.name), int(stat[stat.rindex(")") + 2:].split()[1]), name))
    below, found = {pid}, []
    for _ in range(10):  # a few levels deep is enough
        for p in procs:
            if p[1] in below and p[0] not in below:
                below.add(p[0])
                found.append(p)
    return found


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
        if point == str(path) or point.startswith(f"{path}/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, so a killed test run still powers the container off."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Container:
    """A Debian root under ``base``, booted with systemd-nspawn, commands run in it with nsenter."""

    def __init__(self, base: Path):
        self.base, self.root = base, base / "root"
        self.nspawn: subprocess.Popen | None = None
        self.pid = 0  # the container's systemd, as this machine numbers it
        self.binds: list[str] = []
        self.times: dict[str, float] = {}

    # --- building and booting

    def build(self) -> None:
        started = time.monotonic()
        done = subprocess.run(["mmdebstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(self.root)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"mmdebstrap failed:\n{done.stderr[-3000:]}"
        self.times["mmdebstrap"] = time.monotonic() - started
        (self.root / "etc/hostname").write_text(f"{HOSTNAME}\n")  # not this machine's, which sudo cannot resolve
        (self.root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n::1 localhost\n")
        self._share_pip()

    def _share_pip(self) -> None:
        """pip in the container installs as pip here does: the same settings (files and PIP_* variables), its
        local folders bound read-only, its CA bundle (a proxy's own CA, say) copied, root's cache shared."""
        listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                                timeout=60).stdout
        # Lines are SECTION.KEY='VALUE', SECTION being a config file's section or :env: for a PIP_* variable,
        # which wins over the files (listed first, so taken last).
        entries = re.findall(r"^(\S+?)\.([\w-]+)='(.*)'$", listed, re.M)
        settings: dict[tuple[str, str], str] = {}
        for section, key, value in sorted(entries, key=lambda e: e[0] == ":env:"):
            if key not in ("cache-dir", "no-cache-dir", "log"):
                settings[("global" if section == ":env:" else section, key)] = value
        bound: set[Path] = set()
        for (section, key), value in list(settings.items()):
            if key == "cert" and Path(value).is_file():
                shutil.copy(value, self.root / "etc/ssl/host-ca.pem")
                settings[(section, key)] = "/etc/ssl/host-ca.pem"
                continue
            for token in value.split():
                path = Path(token.removeprefix("file://"))
                if not path.is_absolute() or not path.exists():
                    continue
                path = path.parent if path.name == "simple" else path  # an index's files lie beside simple/
                if not any(path == b or b in path.parents for b in bound):
                    bound.add(path)
        for path in sorted(bound):
            target = self.root / path.relative_to("/")
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
            self.binds.append(f"--bind-ro={path}")
        sections: dict[str, list[str]] = {}
        for (section, key), value in settings.items():
            sections.setdefault(section, []).append(f"{key} = {value}")
        (self.root / "etc/pip.conf").write_text("".join(f"[{s}]\n" + "\n".join(lines) + "\n"
                                                        for s, lines in sections.items()))
        cache = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True,
                               timeout=60).stdout.strip()
        cache = Path(cache) if cache.startswith("/") else Path.home() / ".cache/pip"
        if cache.is_absolute():
            cache.mkdir(parents=True, exist_ok=True)
            self.binds.append(f"--bind={cache}:/root/.cache/pip")

    def boot(self, timeout: float = 120) -> None:
        started = time.monotonic()
        # --register=no: no machined to register with (nor the host's bus); --keep-unit: no scope to make.
        # Not --private-network: setup in the container needs the package mirrors.
        self.nspawn = subprocess.Popen(
            ["systemd-nspawn", "--register=no", "--keep-unit", f"--machine={HOSTNAME}", "-D", str(self.root),
             *self.binds, "-b"], stdin=subprocess.DEVNULL, stdout=(self.base / "console.log").open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        state = "no container yet"
        while time.monotonic() < started + timeout:
            if self.nspawn.poll() is not None:
                break
            if not self.pid:
                inits = [p for p, parent, name in _descendants(self.nspawn.pid) if name == "systemd"]
                self.pid = inits[0] if inits else 0
            if self.pid:
                state = self.sh("systemctl is-system-running", login=False, timeout=20).stdout.strip()
                if state in ("running", "degraded"):
                    self.times["boot"] = time.monotonic() - started
                    if state == "degraded":
                        print("container degraded:", self.sh("systemctl --failed --no-legend").stdout)
                    return
            time.sleep(0.5)
        pytest.fail(f"the container did not boot within {timeout:.0f} s (is-system-running: {state}; nspawn exit "
                    f"{self.nspawn.poll()})\n{self.console()}")

    def console(self) -> str:
        path = self.base / "console.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    # --- commands

    def sh(self, command: str, user: str = "root", timeout: float = 60, input: bytes | None = None,
           login: bool = True) -> subprocess.CompletedProcess:
        """``command`` in the container: a login shell of ``user`` (a clean environment, as after logging in),
        or, with ``login=False``, run directly as root. Killed inside the container after ``timeout``."""
        inner = ["runuser", "-l", user, "-c", command] if login else shlex.split(command)
        argv = ["nsenter", "-t", str(self.pid), "-m", "-u", "-i", "-n", "-p", "--",
                "timeout", "-k", "5", str(int(timeout)), *inner]
        done = subprocess.run(argv, input=input, capture_output=True, timeout=timeout + 30)
        return subprocess.CompletedProcess(argv, done.returncode, done.stdout.decode(errors="replace"),
                                           done.stderr.decode(errors="replace"))

    def journal(self) -> str:
        return self.sh("journalctl -u barkwatch --no-pager -o cat | tail -n 40").stdout

    def records(self) -> list[dict]:
        """The service's event log, every record in order (as root: the files are for group barkwatch)."""
        text = self.sh(f"cat {LOG_DIR}/*.jsonl 2>/dev/null").stdout
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    # --- tearing down

    def destroy(self) -> None:
        """Power off (nspawn turns SIGTERM into a clean shutdown), kill what is left, unmount what is left."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            self.nspawn.terminate()
            try:
                self.nspawn.wait(30)
            except subprocess.TimeoutExpired:
                if self.pid:  # the PID namespace's init: every process in the container dies with it
                    try:
                        os.kill(self.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.nspawn.kill()
                self.nspawn.wait(30)
        for point in _mounts_under(self.base):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=60)


def _tools_missing() -> list[str]:
    return [tool for tool in ("mmdebstrap", "systemd-nspawn", "nsenter") if shutil.which(tool) is None]


def _disk_dir() -> Path | None:
    """A folder on a disk with room for the container: /var/tmp (a disk, where /tmp may be a small tmpfs)."""
    for folder in ("/var/tmp", tempfile.gettempdir()):
        if os.path.isdir(folder) and shutil.disk_usage(folder).free >= NEEDS_FREE_GB * 2**30:
            return Path(folder)
    return None


@pytest.fixture(scope="module")
def container():
    """A booted Debian container (systemd as its init), removed afterwards whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("building and booting a container needs root")
    if _tools_missing() and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                                                    "mmdebstrap", "systemd-container", "util-linux"]):
            subprocess.run(args, capture_output=True, env=env, timeout=600)
    if missing := _tools_missing():
        pytest.skip(f"needs {', '.join(missing)}: apt-get install mmdebstrap systemd-container (scripts/setup "
                    "--tests installs them)")
    if (where := _disk_dir()) is None:
        pytest.skip(f"needs {NEEDS_FREE_GB} GB free in /var/tmp or {tempfile.gettempdir()} for the container")
    base = Path(tempfile.mkdtemp(prefix="barkwatch-container-", dir=where))
    box = Container(base)
    try:
        box.build()
        box.boot()
        yield box
    finally:
        box.destroy()
        if left := _mounts_under(base):  # never rm -rf through a bind mount into this machine's files
            pytest.fail(f"still mounted after the container stopped, {base} left in place: {', '.join(left)}")
        shutil.rmtree(base, ignore_errors=True)
        assert not base.exists(), f"{base} could not be removed"


def _repository_files() -> list[str]:
    """What a clone holds (and install-service copies): the files git knows of, as in the working tree."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, timeout=60)
    if listed.returncode:
        pytest.skip(f"{REPO} is not a git checkout: {listed.stderr.strip()}")
    return [f for f in listed.stdout.split("\0") if f and (REPO / f).is_file()]


def _hints(output: str) -> list[str]:
    """The commands install-service tells the user to run next: the indented lines after its "done"."""
    after = output[output.index("install-service: done"):].splitlines()[1:]
    return [line.strip() for line in after if line.startswith("  ") and line.strip()]


def _follows(command: str) -> bool:
    return bool(re.search(r"(^|\s)(-f|--follow)(\s|$)", command.split("#")[0]))


@pytest.mark.slow
@pytest.mark.live
@pytest.mark.timeout(900)
def test_a_fresh_install_as_the_readme_says_reaches_a_running_service_whose_hints_work(container):
    box, times, started = container, container.times, time.monotonic()

    def step(name: str, since: float) -> float:
        times[name] = time.monotonic() - since
        return time.monotonic()

    def ok(done: subprocess.CompletedProcess, what: str) -> str:
        assert done.returncode == 0, (f"{what}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
                                      f"\n--- journal:\n{box.journal()}")
        return done.stdout

    # 1. A user with sudo and a copy of the repository in her home (what `git clone` would give her).
    ok(box.sh(f"useradd --create-home --shell /bin/bash {USER} && echo '{USER} ALL=(ALL) NOPASSWD:ALL' "
              f"> /etc/sudoers.d/{USER} && chmod 0440 /etc/sudoers.d/{USER}"), "useradd")
    t = time.monotonic()
    archive = subprocess.run(["tar", "-C", str(REPO), "--null", "-T", "-", "-cf", "-"],
                             input="\0".join(_repository_files()).encode(), capture_output=True, timeout=120)
    assert archive.returncode == 0, archive.stderr.decode()
    ok(box.sh("mkdir barkwatch && tar -C barkwatch -xf -", user=USER, input=archive.stdout), "copying the checkout")
    t = step("copy", t)

    # 2. The README: scripts/setup, then the service with the example as its microphone.
    out = ok(box.sh("cd barkwatch && scripts/setup", user=USER, timeout=600), "scripts/setup")
    assert "setup: done" in out
    t = step("setup", t)
    installed = box.sh(f"cd barkwatch && sudo scripts/install-service --device file:{EXAMPLE}", user=USER,
                       timeout=600)
    out = ok(installed, "install-service")
    t0 = time.monotonic()  # the service is READY: the recording's second 0 (to within a second)
    step("install-service", t)
    assert "sudo:" not in installed.stderr, installed.stderr  # sudo resolves its host, and so on
    assert "plays it once in real time" in out  # the installer says a recording ends

    # 3. The unit is active and the README's status says it listens to the recording.
    assert box.sh("systemctl is-active barkwatch").stdout.strip() == "active", box.journal()
    status = box.sh("barkwatch status --state-dir /var/lib/barkwatch", user=USER)
    assert status.returncode == 0 and "barkwatch: running" in status.stdout and EXAMPLE in status.stdout, status

    # 4. Every command the installer printed, run as printed once a bark is in the log; one that follows (-f)
    #    runs for FOLLOW_S s and must still be following when interrupted (timeout's 124), having shown what it
    #    should by then.
    deadline = t0 + 40  # the second bark, the first loud one, ends 19.5 s in
    while not any(r["event"] == "bark" for r in box.records()):
        assert time.monotonic() < deadline, f"no bark in {LOG_DIR} after 40 s\n{box.journal()}"
        time.sleep(0.5)
    hints = _hints(out)
    assert hints, out
    expected = {"barkwatch status": "barkwatch: running", "barkwatch events": "bark ",
                "journalctl": "listening to", "usermod": ""}
    for hint in hints:
        follows = _follows(hint)
        ran = box.sh(f"timeout -s INT {FOLLOW_S} bash -c {shlex.quote(hint)}" if follows else hint, user=USER)
        assert ran.returncode == (124 if follows else 0), (hint, ran.returncode, ran.stdout, ran.stderr)
        assert "error" not in ran.stderr.lower() and "sudo:" not in ran.stderr, (hint, ran.stderr)
        needle = next((v for k, v in expected.items() if k in hint.split("#")[0]), None)
        assert needle is not None, f"a printed command this test does not know: {hint!r}"
        assert needle in ran.stdout, (hint, ran.stdout)
    assert any("usermod" in h for h in hints)  # run above: alice is in group barkwatch from her next login
    # systemd/README.md's reload: SIGHUP through ExecReload=, in the sandbox, without a restart.
    pid = box.sh("systemctl show barkwatch -p MainPID --value").stdout.strip()
    ok(box.sh("sudo systemctl reload barkwatch", user=USER), "systemctl reload")
    deadline = time.monotonic() + 10
    while "reloaded the configuration" not in box.journal():
        assert time.monotonic() < deadline, f"no reload in the journal\n{box.journal()}"
        time.sleep(0.5)
    assert box.sh("systemctl show barkwatch -p MainPID --value").stdout.strip() == pid
    t = step("hints", t0)

    # 5. `systemctl stop` while the last bark (53.2-56.6 s in) is open: its record is written all the same.
    truth = sorted(json.loads((SAMPLES / "example.json").read_text())["barks"], key=lambda b: b["onset_s"])
    deadline = t0 + truth[-1]["offset_s"] + 20
    while not (last := [r for r in box.records() if r["event"] == "bark_start"
                        and r["offset_s"] >= truth[-1]["start_s"] - META["window_s"]]):
        assert time.monotonic() < deadline, f"the last bark never started\n{box.records()}\n{box.journal()}"
        time.sleep(0.2)
    assert not any(r["event"] == "bark" and r["id"] == last[0]["id"] for r in box.records()), \
        "the last bark had ended before the stop: the steps before took too long"
    ok(box.sh("systemctl stop barkwatch", timeout=30), "systemctl stop")
    t = step("to the stop", t)
    result = box.sh("systemctl show barkwatch -p Result -p ExecMainStatus -p ActiveState").stdout
    assert "Result=success" in result and "ExecMainStatus=0" in result and "ActiveState=inactive" in result, result
    records = box.records()
    assert records[-1]["event"] == "bark" and records[-1]["id"] == last[0]["id"], records[-3:]
    starts = [r for r in records if r["event"] == "bark_start"]
    assert [r["id"] for r in records if r["event"] == "bark"] == [r["id"] for r in starts]
    # test_listen's bar for the example live: at least 80% of the barks, each at its time, nothing else.
    assert len(starts) >= 0.8 * len(truth), starts
    found: set[int] = set()
    for record in starts:
        matches = [i for i, bark in enumerate(truth) if i not in found and bark["start_s"] - META["window_s"]
                   <= record["offset_s"] <= bark["onset_s"] + 2 * META["hop_s"]]
        assert matches, (record, truth)
        found.add(matches[0])
    assert f"stopped by SIGTERM: {len(starts)} event(s)" in box.journal()

    # 6. The README's events command, as alice now in group barkwatch (a new login), lists those barks.
    events = box.sh("barkwatch events --since today", user=USER)
    assert events.returncode == 0, events
    rows = [line for line in events.stdout.splitlines() if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line)]
    assert len(rows) == len(starts), events.stdout
    status = box.sh("barkwatch status --state-dir /var/lib/barkwatch", user=USER)
    assert status.returncode == 3 and "not running" in status.stdout, status  # stopped, and says so

    # 7. The installed unit's sandbox, as systemd in the container rates it.
    security = box.sh("systemd-analyze security barkwatch --no-pager")
    level = re.search(r"Overall exposure level for barkwatch\.service: (\d+(?:\.\d+)?)", security.stdout)
    assert level, security
    assert float(level.group(1)) <= MAX_EXPOSURE, security.stdout[-2000:]
    times["test"] = time.monotonic() - started
    print("container timings (s):", ", ".join(f"{k} {v:.0f}" for k, v in times.items()))


@pytest.mark.slow
@pytest.mark.live
@pytest.mark.timeout(600)
def test_the_hub_installed_beside_the_listener_gathers_its_barks_over_the_local_mosquitto(container):
    """After the listener's install above: `install-service --hub` refuses while hub.mqtt is unset; with it
    (and the listener named and pointed at the container's own mosquitto) the hub's unit runs in its sandbox
    and stores every bark the listener logs, in the listener's room."""
    box = container
    if box.sh("test -x /opt/barkwatch/.venv/bin/barkwatch").returncode:
        pytest.skip("needs the listener installed by the test above")
    python = "/opt/barkwatch/.venv/bin/python"

    def ok(done: subprocess.CompletedProcess, what: str) -> str:
        journal = box.sh("journalctl -u barkwatch-hub --no-pager -o cat").stdout[-3000:]
        assert done.returncode == 0, (f"{what}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
                                      f"\n--- the hub's journal:\n{journal}")
        return done.stdout

    refused = box.sh("cd barkwatch && sudo scripts/install-service --hub", user=USER, timeout=600)
    assert refused.returncode == 1 and "set hub.mqtt in /etc/barkwatch/config.yaml" in refused.stderr, refused
    assert box.sh("systemctl is-enabled barkwatch-hub").stdout.strip() != "enabled"
    for key, value in (("node.name", "living-room"), ("node.room", "Living room"),
                       ("hub.mqtt", "mqtt://localhost:1883")):
        code = f"from barkwatch.config import set_in_file; set_in_file({CONFIG!r}, {key!r}, {value!r})"
        ok(box.sh(f"{python} -c {shlex.quote(code)}"), f"setting {key}")
    # notify.mqtt.host, a key two levels down, as an admin edits it: the shipped file's line under mqtt:.
    ok(box.sh(f"sed -i '/^  mqtt:/,/^    host:/s/^    host: null/    host: localhost/' {CONFIG}"), "notify.mqtt")
    read = f"from barkwatch.config import get, load_config; print(get(load_config({CONFIG!r}, env={{}}).config, " \
           "'notify.mqtt.host'))"
    assert ok(box.sh(f"{python} -c {shlex.quote(read)}"), "reading the config").strip() == "localhost"
    out = ok(box.sh("cd barkwatch && sudo scripts/install-service --hub", user=USER, timeout=600), "install --hub")
    assert "journalctl -u barkwatch-hub" in out
    deadline = time.monotonic() + 30
    while "hub: connected to mqtt://localhost:1883" not in box.sh("journalctl -u barkwatch-hub -o cat").stdout:
        assert time.monotonic() < deadline, box.sh("journalctl -u barkwatch-hub --no-pager -o cat").stdout
        time.sleep(0.5)
    assert box.sh("systemctl is-active barkwatch-hub").stdout.strip() == "active"

    # The listener plays the example again, now publishing as living-room.
    before = {r["id"] for r in box.records()}
    ok(box.sh("systemctl restart barkwatch", timeout=120), "restarting the listener")
    ask = ("import json, urllib.request; print(json.dumps(json.load(urllib.request.urlopen("
           "'http://127.0.0.1:8090/api/events?since=today', timeout=10))['barks']))")
    deadline = time.monotonic() + 120
    while box.sh("systemctl is-active barkwatch").stdout.strip() == "active":  # the recording plays once
        assert time.monotonic() < deadline, "the listener never finished the recording"
        time.sleep(1)
    logged = {r["id"] for r in box.records() if r["event"] == "bark"} - before
    assert len(logged) >= 4, box.records()[-12:]
    deadline = time.monotonic() + 20
    while True:
        barks = json.loads(ok(box.sh(f"{python} -c {shlex.quote(ask)}"), "the hub's API") or "[]")
        if {b["id"] for b in barks} >= logged or time.monotonic() > deadline:
            break
        time.sleep(1)
    mine = [b for b in barks if b["id"] in logged]
    assert {b["id"] for b in mine} == logged, (logged, barks)
    assert {(b["node"], b["room"]) for b in mine} == {("living-room", "Living room")}, mine

    security = box.sh("systemd-analyze security barkwatch-hub --no-pager")
    level = re.search(r"Overall exposure level for barkwatch-hub\.service: (\d+(?:\.\d+)?)", security.stdout)
    assert level and float(level.group(1)) <= MAX_EXPOSURE, security.stdout[-2000:]


# --- without a container: what install-service refuses before it changes anything

PRIVATE_TMP = "PrivateTmp= gives it its own /tmp and /var/tmp"
PROTECT_HOME = "ProtectHome=yes hides home directories"


@pytest.mark.parametrize("path, why", [("/tmp/barks.ogg", PRIVATE_TMP), ("/var/tmp/barks.ogg", PRIVATE_TMP),
                                       ("/home/someone/barks.ogg", PROTECT_HOME), ("/root/barks.ogg", PROTECT_HOME)])
def test_install_service_refuses_a_recording_the_sandboxed_service_cannot_see(tmp_path, path, why):
    """The device check runs outside the sandbox, where such a file plays: the service would then fail to
    start five times over. A dry run refuses it as the real run does, first thing."""
    prefix = tmp_path / "opt"
    result = subprocess.run(["bash", str(REPO / "scripts" / "install-service"), "--dry-run", "--prefix",
                             str(prefix), "--device", f"file:{path}"], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (f"install-service: file:{path}: the service cannot see {path} ({why}); put the "
                             f"recording elsewhere, e.g. under {prefix}\n")


def test_install_service_makes_a_relative_recording_path_absolute(tmp_path):
    """The service runs in /, so file:samples/x.ogg in the config would name /samples/x.ogg."""
    if not Path("/usr/bin/python3").is_file():
        pytest.skip("no system python3 in /usr/bin for the dry run to find")
    system_first = dict(os.environ, PATH="/usr/bin:" + os.environ.get("PATH", ""))
    result = subprocess.run(["bash", str(REPO / "scripts" / "install-service"), "--dry-run", "--prefix",
                             "/opt/barkwatch-dry", "--device", "file:srv/barks.ogg"], capture_output=True, text=True,
                            timeout=60, cwd="/", env=system_first)
    assert result.returncode == 0, result.stderr
    assert "+ set audio.device to 'file:/srv/barks.ogg' in /etc/barkwatch/config.yaml" in result.stdout
