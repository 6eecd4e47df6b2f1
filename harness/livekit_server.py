"""A real LiveKit server for the tests: the binary `scripts/livekit` built, on loopback.

`scripts/test`, `scripts/browser` and `scripts/bench` build it (or record why they could
not) and pass its path in SHACKLETON_LIVEKIT_SERVER. A test that needs the server and
has none fails with the reason; it never skips.

Ports are chosen from /proc/net, not by binding: pytest-socket blocks socket creation
during a test's set-up, and the server binds them a moment later anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
import os
from pathlib import Path
import random
import subprocess
import time
from typing import IO

import pytest

API_KEY = "devkey"
API_SECRET = "shackleton-tests-loopback-only-secret"  # on loopback only
# Each server takes an HTTP (signal) port, an ICE/TCP port and this many UDP ports.
UDP_PORTS = 12


def binary() -> str:
    """Return the server's path, or fail the test with the reason there is none."""
    path = os.environ.get("SHACKLETON_LIVEKIT_SERVER", "")
    if path and os.access(path, os.X_OK):
        return path
    reason = os.environ.get("SHACKLETON_LIVEKIT_ERROR") or (
        "no LiveKit server: run the tests with scripts/test, which builds one "
        "(scripts/livekit, Go 1.26), or set SHACKLETON_LIVEKIT_SERVER to its path"
    )
    pytest.fail(f"The tests marked `livekit` need a real LiveKit server: {reason}")


def _ports_in_use() -> set[int]:
    used = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            used.add(int(line.split()[1].rsplit(":", 1)[1], 16))
    return used


def free_ports(count: int) -> list[int]:
    """Return `count` consecutive ports that nothing on this machine uses now."""
    used = _ports_in_use()
    for _ in range(200):
        start = random.randrange(20000, 32000 - count)  # noqa: S311 - not a secret
        ports = list(range(start, start + count))
        if used.isdisjoint(ports):
            return ports
    raise RuntimeError("no free loopback ports")


def _config(ports: list[int], webhooks: Iterable[str]) -> str:
    http, tcp, udp = ports[0], ports[1], ports[2:]
    lines = [
        f"port: {http}",
        "bind_addresses: [127.0.0.1]",
        "rtc:",
        f"  tcp_port: {tcp}",
        f"  port_range_start: {udp[0]}",
        f"  port_range_end: {udp[-1]}",
        "  use_external_ip: false",
        "  node_ip: 127.0.0.1",
        "keys:",
        f"  {API_KEY}: {API_SECRET}",
        "logging:",
        "  level: info",
    ]
    if urls := list(webhooks):
        lines += ["webhook:", f"  api_key: {API_KEY}", "  urls:"]
        lines += [f"    - {url}" for url in urls]
    return "\n".join(lines) + "\n"


@dataclass
class LiveKitProcess:
    """One `livekit-server --dev` on 127.0.0.1; `start` again after `stop` on the same ports."""

    folder: Path
    webhooks: tuple[str, ...] = ()
    ports: list[int] = field(default_factory=lambda: free_ports(2 + UDP_PORTS))
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The signal URL, as Shackleton's entry holds it."""
        return f"ws://127.0.0.1:{self.ports[0]}"

    @property
    def http_url(self) -> str:
        """The same server's HTTP (twirp) URL."""
        return f"http://127.0.0.1:{self.ports[0]}"

    @property
    def log_file(self) -> Path:
        """Everything the server printed, across restarts."""
        return self.folder / "livekit.log"

    def log(self) -> str:
        """Return the server's log so far."""
        return self.log_file.read_text(errors="replace")

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it listens."""
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "livekit.yaml"
        config.write_text(_config(self.ports, self.webhooks))
        self._log = self.log_file.open("ab")
        offset = self.log_file.stat().st_size
        self.process = subprocess.Popen(
            [binary(), "--dev", "--config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while "starting LiveKit server" not in self.log_file.read_bytes()[offset:].decode(
            errors="replace"
        ):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"livekit-server did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)
        # Its log line comes just before the listeners: wait for the HTTP port itself.
        while self.ports[0] not in _ports_in_use():
            if time.monotonic() > deadline:
                raise RuntimeError(f"livekit-server is not listening:\n{self.log()[-3000:]}")
            time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGKILL as a crash would, or SIGTERM and wait."""
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
