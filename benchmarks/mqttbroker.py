"""A real mosquitto broker on 127.0.0.1, for the tests (``tests/servers.py``) and ``benchmarks/hub.py``."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Sequence

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick; free until someone else takes it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on port {port} after {timeout} s") from None
            time.sleep(0.01)


class Broker:
    """A mosquitto broker on ``port`` (a free one by default), its files and log (``mosquitto.log``) in
    ``directory``. Anonymous unless ``users`` (name: password) are given; with ``persistence``, sessions and
    queued messages survive ``stop`` (a SIGTERM) and ``start``, which may be called again and again;
    ``settings``: more lines of mosquitto.conf."""

    def __init__(self, directory: Path, port: int | None = None, *, users: dict[str, str] | None = None,
                 persistence: bool = False, settings: Sequence[str] = ()):
        if MOSQUITTO is None:
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        self.directory = Path(directory)
        self.port = port or free_port()
        # Run as root, mosquitto switches to its own user, which cannot read a private test folder.
        lines = [f"listener {self.port} 127.0.0.1", f"user {pwd.getpwuid(os.geteuid()).pw_name}",
                 f"persistence {str(persistence).lower()}", f"persistence_location {self.directory}/"]
        if users:
            passwords = self.directory / "passwords"
            passwords.write_text("".join(f"{name}:{password}\n" for name, password in users.items()))
            subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.config = self.directory / "mosquitto.conf"
        self.config.write_text("\n".join([*lines, *settings]) + "\n")
        self._proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        with open(self.directory / "mosquitto.log", "ab") as log:
            self._proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=log)
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()  # mosquitto saves its persistence file on SIGTERM
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
