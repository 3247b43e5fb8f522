"""A virtual microphone for capture tests on machines with no sound card: a private PulseAudio server.

    audio played into the null sink ``<name>_sink`` (``play``) -> the sink's monitor -> the remap source
    ``<name>`` -> the ALSA PCM ``<name>`` (type pulse) -> PortAudio's ALSA host API -> sounddevice

PortAudio lists the PCM by its name (``vmic``), so code under test opens it like any microphone and runs the
real callback path. The null sink is clocked by the system clock, so audio arrives in real time, and it
arrives bit-exact when the played file's rate equals ``rate`` (paplay resamples otherwise).

PortAudio enumerates devices once, when ``sounddevice`` is imported: code that captures must run in a
subprocess started with ``env()`` after ``start()``; this process never sees the device.

Needs ``pulseaudio``, ``pulseaudio-utils`` (pactl, paplay) and ``libasound2-plugins`` (the ALSA pulse PCM),
all in ``scripts/setup --tests``. The server is private: its own socket, cookie, runtime and home directories under
one state directory, no ``default.pa``, nothing probing hardware, dbus or X11.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

REQUIRED_PROGRAMS = ("pulseaudio", "pactl", "paplay")
ALSA_PULSE_PLUGIN = "/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so"


def missing_programs() -> list[str]:
    """The programs the virtual microphone needs that are not on PATH."""
    return [p for p in REQUIRED_PROGRAMS if shutil.which(p) is None]


class VirtualMic:
    """A private PulseAudio server whose null sink's monitor is the capture device ``name``.

    ``start`` and ``stop`` bracket a test (or use it as a context manager); ``stop_server``, ``start_server``
    and ``restart`` take the server away and bring it back on the same socket, with the same device names,
    while the state directory (and so ``env()``) stays valid: what an audio server that crashes or restarts
    mid-run looks like to a capturing process. ``freeze`` and ``thaw`` stop and continue the server process
    (SIGSTOP, SIGCONT): a hung server, which sends a capturing process no audio and no error at all.
    """

    def __init__(self, name: str = "vmic", rate: int = 22050, channels: int = 1):
        self.name = name
        self.sink = f"{name}_sink"
        self.rate = rate
        self.channels = channels
        self.state: Path | None = None
        self._server: subprocess.Popen | None = None
        self._frozen = False

    # Lifecycle

    def start(self) -> VirtualMic:
        """Write the state directory (ALSA config, environment) and start the server; return once the device
        exists and the sink runs at low latency. Raises ``RuntimeError`` with the server's log otherwise."""
        if self.state is not None:
            raise RuntimeError(f"virtual microphone already started in {self.state}; call stop() first")
        if missing := missing_programs():
            raise RuntimeError(f"virtual microphone: {', '.join(missing)} not found: run scripts/setup --tests")
        if not glob.glob(ALSA_PULSE_PLUGIN):
            raise RuntimeError("virtual microphone: the ALSA pulse plugin is missing: install libasound2-plugins "
                               "(or run scripts/setup --tests)")
        # Short on purpose: the socket's path must fit a unix socket address (108 bytes).
        self.state = Path(tempfile.mkdtemp(prefix="vmic", dir="/tmp"))
        for sub in ("runtime", "home"):
            (self.state / sub).mkdir(mode=0o700)
        # The PCM's id is the name PortAudio reports for the device.
        (self.state / "asound.conf").write_text(
            f'pcm.{self.name} {{\n    type pulse\n    device "{self.name}"\n'
            f'    hint {{ show on description "Virtual test microphone ({self.name})" }}\n}}\n'
            f"ctl.{self.name} {{ type pulse }}\n")
        (self.state / "env.sh").write_text("".join(f"export {k}={v}\n" for k, v in self._client_vars().items()))
        try:
            self.start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (if running) and remove the state directory. Safe to call twice."""
        self.stop_server()
        if self.state is not None:
            shutil.rmtree(self.state, ignore_errors=True)
            self.state = None

    def __enter__(self) -> VirtualMic:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # The server alone

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.poll() is None

    def start_server(self, timeout: float = 10.0) -> None:
        """Launch the server on the state directory's socket and wait until the device is usable."""
        if self.state is None:
            raise RuntimeError("virtual microphone not started: call start() first")
        if self.running:
            raise RuntimeError(f"virtual microphone: pulseaudio already running (pid {self._server.pid})")
        self.socket.unlink(missing_ok=True)  # a server killed with SIGKILL leaves its socket behind
        n, sink, rate, ch = self.name, self.sink, self.rate, self.channels
        modules = [
            f"module-native-protocol-unix auth-anonymous=1 socket={self.socket}",
            f"module-null-sink sink_name={sink} rate={rate} channels={ch} sink_properties=device.description={n}-sink",
            f"module-remap-source master={sink}.monitor source_name={n} source_properties=device.description={n}",
            # The keepalive: a silent source looped into the sink keeps the null sink at a low configured
            # latency. Without it the idle sink runs at its 2 s maximum latency and a new capture stream gets
            # no data for 1.5-2 s (and the first milliseconds of a played file can be lost).
            f"module-null-source source_name={n}_keepalive rate={rate} channels={ch}",
            (f"module-loopback source={n}_keepalive sink={sink} latency_msec=30 source_dont_move=true "
             "sink_dont_move=true"),
        ]
        # -n: no default.pa, so nothing probes hardware or loads dbus, udev or X11 modules.
        # --exit-idle-time=-1: the default (20 s) would end the server between tests.
        # --realtime/--high-priority=no: no rtkit requests over dbus, which a container does not have.
        command = ["pulseaudio", "--daemonize=no", "-n", "--use-pid-file=no", "--exit-idle-time=-1",
                   "--realtime=no", "--high-priority=no", f"--log-target=file:{self.state / 'pulseaudio.log'}"]
        for module in modules:
            command += ["-L", module]
        server_env = dict(os.environ, HOME=str(self.state / "home"), XDG_RUNTIME_DIR=str(self.state / "runtime"),
                          PULSE_RUNTIME_PATH=str(self.state / "runtime"))
        with open(self.state / "pulseaudio.stderr", "ab") as stderr:
            # Its own session, so a terminal's Ctrl-C reaches the test runner, which then stops it cleanly.
            self._server = subprocess.Popen(command, env=server_env, stdin=subprocess.DEVNULL, stdout=stderr,
                                            stderr=stderr, start_new_session=True)
        deadline = time.monotonic() + timeout
        while n not in self._names("sources"):
            if not self.running or time.monotonic() > deadline:
                self._fail_start("did not create its source in time" if self.running else "exited")
            time.sleep(0.05)
        self.pactl("set-default-sink", sink)
        self.pactl("set-default-source", n)
        # The null sink rendered up to 2 s ahead before the keepalive connected; suspending and resuming it
        # once resets its clock to the keepalive's low latency.
        self.pactl("suspend-sink", sink, "1")
        self.pactl("suspend-sink", sink, "0")
        while (latency := self.sink_latency_us()) is None or latency >= 100_000:
            if time.monotonic() > deadline:
                self._fail_start(f"sink latency stayed at {latency} us")
            time.sleep(0.05)

    def stop_server(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        """End the server with ``sig`` (SIGKILL for a crash), keeping the state directory; capture streams
        open on it end. SIGKILL follows if it outlives ``timeout``. Nothing happens if it is not running."""
        server, self._server = self._server, None
        if server is None:
            return
        if server.poll() is None:
            server.send_signal(sig)
            if self._frozen:  # a stopped process acts on SIGTERM only once it runs again
                server.send_signal(signal.SIGCONT)
            self._frozen = False
            try:
                server.wait(timeout)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    def freeze(self) -> None:
        """Stop the server process (SIGSTOP): capture streams get no more audio, and no error either."""
        if not self.running:
            raise RuntimeError("virtual microphone: pulseaudio is not running")
        self._server.send_signal(signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """Let a frozen server run again (SIGCONT)."""
        if self._server is not None and self._frozen:
            self._server.send_signal(signal.SIGCONT)
        self._frozen = False

    def restart(self, down_s: float = 0.0) -> None:
        """Stop the server, wait ``down_s`` seconds, and start it again with the same names and socket."""
        self.stop_server()
        time.sleep(down_s)
        self.start_server()

    # Clients

    @property
    def socket(self) -> Path:
        if self.state is None:
            raise RuntimeError("virtual microphone not started: call start() first")
        return self.state / "pulse.sock"

    def env(self) -> dict[str, str]:
        """This process's environment plus what a client needs to reach the server: give it to the subprocess
        that imports sounddevice (and to paplay, pactl). The device is ``name``; ``default`` and ``pulse``
        route to it too."""
        return dict(os.environ, **self._client_vars())

    def play(self, path: Path | str, *args: str) -> subprocess.Popen:
        """Start playing ``path`` into the sink in real time (paplay, resampling if its rate differs from
        ``rate``); ``wait()`` on the result to block until it has played. ``args`` go to paplay."""
        return subprocess.Popen(["paplay", f"--device={self.sink}", *args, str(path)], env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``pactl`` against this server; its output as text."""
        return subprocess.run(["pactl", *args], env=self.env(), capture_output=True, text=True, check=check,
                              timeout=10)

    def sink_latency_us(self) -> int | None:
        """The null sink's current latency in microseconds, as ``pactl list sinks`` reports it."""
        ours = False
        for line in self.pactl("list", "sinks", check=False).stdout.splitlines():
            key, _, value = line.strip().partition(": ")
            if key == "Name":
                ours = value == self.sink
            elif ours and key == "Latency":
                return int(value.split()[0])
        return None

    def log(self) -> str:
        """The server's log and stderr, for failure messages."""
        if self.state is None:
            return ""
        return "".join(p.read_text(errors="replace") for p in (self.state / "pulseaudio.stderr",
                                                                self.state / "pulseaudio.log") if p.exists())

    def _client_vars(self) -> dict[str, str]:
        state = self.state
        return {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_COOKIE": str(state / "home" / ".config" / "pulse" / "cookie"),
            "PULSE_RUNTIME_PATH": str(state / "runtime"),
            "PULSE_SOURCE": self.name,
            "PULSE_SINK": self.sink,
            # The system configuration first, then the PCM above on top of it.
            "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{state / 'asound.conf'}",
            "VMIC_DEVICE": self.name, "VMIC_SINK": self.sink, "VMIC_RATE": str(self.rate),
            "VMIC_CHANNELS": str(self.channels), "VMIC_STATE": str(state),
        }

    def _names(self, kind: str) -> list[str]:
        listed = self.pactl("list", "short", kind, check=False)
        return [line.split("\t")[1] for line in listed.stdout.splitlines() if "\t" in line]

    def _fail_start(self, what: str) -> None:
        log = self.log()
        self.stop_server(signal.SIGKILL)
        raise RuntimeError(f"virtual microphone: pulseaudio {what}; its log:\n{log[-4000:]}")
