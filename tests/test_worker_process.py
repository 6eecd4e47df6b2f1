"""The external worker as its own OS process, against Home Assistant in another one.

Home Assistant (harness/ha_process.py) serves HTTP and WebSocket on 127.0.0.1; the worker
(`python -m shackleton_voice local`) hears WAV files through the local audio transport;
the fake OpenAI-compatible server runs here. Nothing is patched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import sys
from typing import Any

import aiohttp
import pytest

from custom_components.shackleton.voice.worker import (
    AWAY_NOTICE,
    BACK_NOTICE,
    ConfigError,
    WorkerConfig,
)
from harness.fakes import ChatReply, FakeOpenAI
from harness.ha_process import REPO, arguments, free_port, read_facts

# The voice package as Home Assistant ships it: under this name, the worker runs in
# coverage's view (coverage follows subprocesses). `shackleton_voice` (the name users
# run, a link to the same directory) is started by the refusal test.
WORKER_MODULE = "custom_components.shackleton.voice"
AUDIO = REPO / "tests" / "fixtures" / "audio"
LIGHT = "light.kitchen_light"
KITCHEN_SATELLITE = "assist_satellite.shackleton_kitchen"


@dataclass
class Process:
    """A child process whose stdout lines are read as they come."""

    proc: asyncio.subprocess.Process
    lines: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    stderr: list[str] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None) -> Process:
        """Start the process."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=REPO,
            env={**os.environ, **(env or {})},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self = cls(proc)
        self.tasks = [asyncio.create_task(self._pump_out()), asyncio.create_task(self._pump_err())]
        return self

    async def _pump_out(self) -> None:
        """Do it."""
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            await self.lines.put(line.decode().strip())

    async def _pump_err(self) -> None:
        """Do it."""
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr.append(line.decode())

    async def line(self, seconds: float) -> str:
        """Return the next line on stdout."""
        try:
            return await asyncio.wait_for(self.lines.get(), seconds)
        except TimeoutError:
            raise AssertionError("".join(self.stderr[-40:])) from None

    async def event(self, kind: str, seconds: float = 60, **fields: Any) -> dict[str, Any]:
        """Return the next JSON event of `kind` (with `fields`), skipping others."""
        while True:
            line = await self.line(seconds)
            if not line.startswith("{"):
                continue
            event: dict[str, Any] = json.loads(line)
            if event["event"] == kind and all(event.get(k) == v for k, v in fields.items()):
                return event

    async def send(self, command: dict[str, Any]) -> None:
        """Write a command to stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self, *, kill: bool = False) -> int:
        """Stop (or kill) the process; return its exit code."""
        if self.proc.returncode is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
        try:
            code = await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return code


class Home:
    """Home Assistant in its own process, on a fixed port and config directory."""

    def __init__(self, config_dir: Path, openai_url: str, livekit_url: str | None = None) -> None:
        """Prepare; with `livekit_url`, the entry has that LiveKit server (the tests' key)."""
        self.config_dir = config_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.openai_url = openai_url
        self.livekit_url = livekit_url
        self.process: Process | None = None

    async def start(self) -> dict[str, Any]:
        """Start the process."""
        self.process = await Process.start(
            *arguments(self.config_dir, self.port, self.openai_url, livekit_url=self.livekit_url)
        )
        while not (await self.process.line(120)).startswith("READY"):
            pass
        return read_facts(self.config_dir)

    async def call(self, token: str, method: str, path: str, body: Any = None) -> Any:
        """Call the REST API as a user."""
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method,
                f"{self.url}{path}",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    def log(self) -> str:
        """Return Home Assistant's log."""
        path = self.config_dir / "home-assistant.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
async def home(
    tmp_path: Path, fake_openai: FakeOpenAI, socket_enabled: None
) -> AsyncIterator[Home]:
    """Return Home Assistant in its own process (stopped after the test)."""
    home = Home(tmp_path / "ha", fake_openai.base_url)
    yield home
    if home.process is not None:
        await home.process.stop()


def worker_env(home: Home, token: str, entry_id: str) -> dict[str, str]:
    """Return the environment that configures a worker."""
    return {
        "SHACKLETON_HA_URL": home.url,
        "SHACKLETON_TOKEN": token,
        "SHACKLETON_ENTRY_ID": entry_id,
        "SHACKLETON_NAME": "test-worker",
    }


async def start_local_worker(home: Home, token: str, entry_id: str) -> Process:
    """Start a worker serving a kitchen on local audio, after 0.5 s of quiet.

    Return it once Home Assistant shows the room listening: the worker says `ready` when
    its session starts, and its report reaches Home Assistant over the link a moment later.
    """
    worker = await Process.start(
        "-m", WORKER_MODULE, "local", "--room", "kitchen", env=worker_env(home, token, entry_id)
    )
    try:
        await worker.event("ready", 120)
        await worker.send({"silence": 0.5})
        deadline = asyncio.get_running_loop().time() + 30
        path = f"/api/states/{KITCHEN_SATELLITE}"
        while (await home.call(token, "GET", path))["state"] != "listening":
            assert asyncio.get_running_loop().time() < deadline, "the room never listened"
            await asyncio.sleep(0.1)
    except BaseException:
        await worker.stop()
        raise
    return worker


async def test_worker_process_serves_the_home(home: Home, fake_openai: FakeOpenAI) -> None:
    """A spoken request, an announcement, and Home Assistant killed and restarted."""
    fake_openai.transcripts = ["Turn on the kitchen light."]
    fake_openai.chat_script = [
        ChatReply(tool_calls=[("intent__HassTurnOn", {"name": "Kitchen light"})]),
        ChatReply(text="The kitchen light is on."),
    ]
    fake_openai.tts_seconds_per_char = 0.01
    facts = await home.start()
    admin = facts["users"]["admin"]["token"]
    worker = await start_local_worker(home, admin, facts["entry_id"])
    try:
        await worker.send({"play": str(AUDIO / "turn_on_kitchen_light.wav")})
        await worker.event("spoke")
        light = await home.call(admin, "GET", f"/api/states/{LIGHT}")
        assert light["state"] == "on"
        assert "The kitchen light is on." in fake_openai.tts_inputs
        # The worker's session shows in Home Assistant, and its turn was reported.
        state = await home.call(admin, "GET", "/api/states/sensor.shackleton_active_voice_sessions")
        assert state["state"] == "1"

        answer = await home.call(
            admin,
            "POST",
            "/api/services/shackleton/announce?return_response",
            {"message": "Dinner is ready", "rooms": ["kitchen"]},
        )
        assert answer["service_response"]["rooms"] == [{"room": "kitchen", "outcome": "spoken"}]
        await worker.event("announce", room="kitchen", spoken=True)
        await worker.event("spoke")
        assert "Dinner is ready" in fake_openai.tts_inputs

        # Home Assistant crashes: the worker says so in the room and keeps listening.
        assert home.process is not None
        await home.process.stop(kill=True)
        await worker.event("home", connected=False)
        await worker.event("spoke")
        assert AWAY_NOTICE in " ".join(fake_openai.tts_inputs)  # spoken a sentence at a time

        # It comes back on the same port: the worker reconnects by itself.
        await home.start()
        await worker.event("home", connected=True, seconds=60)
        await worker.event("spoke")
        assert BACK_NOTICE in " ".join(fake_openai.tts_inputs)
        # Made as soon as HA is up: said at once, or queued until the worker's session
        # is known again, then said. Either way it is heard.
        await home.call(
            admin,
            "POST",
            "/api/services/shackleton/announce?return_response",
            {"message": "The washing is done", "rooms": ["kitchen"]},
        )
        await worker.event("announce", room="kitchen", spoken=True)
        await worker.event("spoke")
        assert "The washing is done" in fake_openai.tts_inputs
        state = await home.call(admin, "GET", "/api/states/sensor.shackleton_active_voice_sessions")
        assert state["state"] == "1"
    finally:
        await worker.send({"quit": True})
        code = await worker.stop()
    assert code == 0, "".join(worker.stderr[-40:])
    logs = "".join(worker.stderr) + home.log()
    assert admin not in logs
    assert "Lost the connection to Home Assistant" in logs


async def test_worker_refused_without_admin(home: Home) -> None:
    """A non-administrator's token, or another entry, stops the worker with a clear error."""
    facts = await home.start()
    tablet = facts["users"]["tablet"]["token"]
    worker = await Process.start(
        "-m", "shackleton_voice", "local", env=worker_env(home, tablet, facts["entry_id"])
    )
    code = await asyncio.wait_for(worker.proc.wait(), 120)
    await worker.stop()
    errors = "".join(worker.stderr)
    assert code == 2, errors
    assert "Home Assistant refused this worker" in errors
    assert tablet not in errors

    admin = facts["users"]["admin"]["token"]
    other = await Process.start(
        "-m", WORKER_MODULE, "local", env=worker_env(home, admin, "01JNOTTHISENTRY")
    )
    code = await asyncio.wait_for(other.proc.wait(), 120)
    await other.stop()
    assert code == 2
    assert "There is no Shackleton entry 01JNOTTHISENTRY" in "".join(other.stderr)

    # LiveKit mode asks Home Assistant for the entry's server first: this one has none.
    livekit = await Process.start(
        "-m",
        WORKER_MODULE,
        "livekit",
        "--health-port",
        str(free_port()),
        env=worker_env(home, admin, facts["entry_id"]),
    )
    code = await asyncio.wait_for(livekit.proc.wait(), 120)
    await livekit.stop()
    assert code == 2
    assert "Shackleton has no LiveKit server" in "".join(livekit.stderr)


def test_worker_config(tmp_path: Path) -> None:
    """YAML, then environment variables over it; clear errors for what is missing or wrong."""
    path = tmp_path / "worker.yaml"
    path.write_text("ha_url: http://ha.local:8123/\ntoken: from-file\nentry_id: 01JENTRY\n")
    config = WorkerConfig.load(path, env={"SHACKLETON_TOKEN": "from-env", "LIVEKIT_URL": "ws://lk"})
    assert (config.ha_url, config.token, config.entry_id) == (
        "http://ha.local:8123",
        "from-env",
        "01JENTRY",
    )
    assert config.livekit_url == "ws://lk"
    assert "from-env" not in repr(config)
    assert config.link_config().websocket_url == "ws://ha.local:8123/api/websocket"
    secure = WorkerConfig.load(
        None, env={"SHACKLETON_CONFIG": str(path), "SHACKLETON_HA_URL": "https://ha"}
    )
    assert secure.link_config().websocket_url == "wss://ha/api/websocket"
    with pytest.raises(ConfigError, match="Missing SHACKLETON_TOKEN, SHACKLETON_ENTRY_ID"):
        WorkerConfig.load(None, env={"SHACKLETON_HA_URL": "http://ha"})
    with pytest.raises(ConfigError, match="must start with http"):
        WorkerConfig.load(path, env={"SHACKLETON_HA_URL": "ha.local"})
    path.write_text("ha_url: http://ha\ntoken: t\nentry_id: e\nport: 1\n")
    with pytest.raises(ConfigError, match="Unknown settings: port"):
        WorkerConfig.load(path, env={})
    path.write_text("ha_url: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        WorkerConfig.load(path, env={})
    with pytest.raises(ConfigError, match="Cannot read"):
        WorkerConfig.load(tmp_path / "missing.yaml", env={})
