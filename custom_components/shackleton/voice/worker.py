"""The external voice worker: the same engine, outside Home Assistant.

Configured by environment variables or a small YAML file (`WorkerConfig`), it connects
to Home Assistant (`HomeLink`), fetches its entry's settings and builds the engine as the
in-process manager does. Two ways to meet people:

- `livekit`: a standard LiveKit agent worker (`AgentServer`). LiveKit dispatches rooms
  to it, each job in its own process; any number of workers on any number of machines
  share the rooms, and LiveKit's dispatch balances them.
- `local`: one room on local audio (WAV files in, audio frames out), driven by JSON lines
  on stdin. The tests and benchmarks use it; it needs no LiveKit server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field, replace
import logging
import os
from pathlib import Path
from typing import Any, Final

from .engine import RoomSession, VoiceEngine, vad_options
from .ha_link import HomeAway, HomeLink, HomeRefused, LinkConfig, RemoteHome
from .home import NobodyListening, QuestionPending
from .protocol import Command, Event, WorkerSettings

_LOGGER = logging.getLogger(__name__)

AWAY_NOTICE: Final = (
    "I've lost my connection to Home Assistant. I'm still listening, but I can't "
    "control the home until it's back."
)
BACK_NOTICE: Final = "I'm connected to Home Assistant again."
ENV_PREFIX: Final = "SHACKLETON_"


class ConfigError(Exception):
    """The worker's configuration is missing or wrong; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What a worker must know: Home Assistant, a token, and the entry it serves."""

    ha_url: str
    token: str = field(repr=False)
    entry_id: str
    name: str = field(default_factory=lambda: os.uname().nodename)
    # Overrides of the LiveKit server's address as this machine reaches it.
    livekit_url: str | None = None

    @classmethod
    def load(cls, path: Path | None = None, env: dict[str, str] | None = None) -> WorkerConfig:
        """Read a YAML file (if given), then `SHACKLETON_*` environment variables over it."""
        env = dict(os.environ if env is None else env)
        if path is None and env.get(ENV_PREFIX + "CONFIG"):
            path = Path(env[ENV_PREFIX + "CONFIG"])
        values: dict[str, Any] = {}
        if path is not None:
            try:
                import yaml

                loaded = yaml.safe_load(path.read_text()) or {}
            except OSError as err:
                raise ConfigError(f"Cannot read {path}: {err.strerror}") from err
            except yaml.YAMLError as err:
                raise ConfigError(f"{path} is not valid YAML: {err}") from err
            if not isinstance(loaded, dict):
                raise ConfigError(f"{path} must hold a mapping of settings")
            values.update({str(k): v for k, v in loaded.items() if v is not None})
        for key in ("ha_url", "token", "entry_id", "name", "livekit_url"):
            if value := env.get(ENV_PREFIX + key.upper()):
                values[key] = value
        if value := env.get("LIVEKIT_URL"):
            values.setdefault("livekit_url", value)
        missing = [key for key in ("ha_url", "token", "entry_id") if not values.get(key)]
        if missing:
            names = ", ".join(ENV_PREFIX + key.upper() for key in missing)
            raise ConfigError(
                f"Missing {names}: set them (or {', '.join(missing)} in the YAML file). The "
                "entry id is on the entry's page in Home Assistant, and the token is a "
                "long-lived access token of an administrator."
            )
        url = str(values["ha_url"]).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"ha_url must start with http:// or https://, not {url!r}")
        unknown = set(values) - {"ha_url", "token", "entry_id", "name", "livekit_url"}
        if unknown:
            raise ConfigError(f"Unknown settings: {', '.join(sorted(unknown))}")
        return cls(
            ha_url=url,
            token=str(values["token"]),
            entry_id=str(values["entry_id"]),
            **{k: str(values[k]) for k in ("name", "livekit_url") if values.get(k)},
        )

    def link_config(self) -> LinkConfig:
        """Return the link's configuration."""
        return LinkConfig(url=self.ha_url, token=self.token, entry_id=self.entry_id, name=self.name)


class VoiceWorker:
    """Serves an entry's rooms from outside Home Assistant."""

    def __init__(
        self,
        config: WorkerConfig,
        *,
        vad: Any = None,
        on_notice: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        """Prepare; `async_start` connects and builds the engine."""
        self.config = config
        self.link = HomeLink(
            config.link_config(), on_event=self._on_event, on_connection=self._on_connection
        )
        self.home = RemoteHome(self.link)
        self.engine: VoiceEngine | None = None
        self._vad = vad
        self._notice = on_notice or (lambda kind, fields: None)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._away_told: set[str] = set()

    async def async_start(self, seconds: float | None = None) -> WorkerSettings:
        """Connect to Home Assistant, then build the engine from the entry's settings."""
        self.link.start()
        settings = await self.link.wait_settings(seconds)
        self.engine = await self._build(settings)
        return settings

    async def _build(self, settings: WorkerSettings) -> VoiceEngine:
        from livekit.plugins import silero

        voice = settings.voice
        if self._vad is None:
            self._vad = await asyncio.to_thread(
                lambda: silero.VAD.load(**vad_options(voice.turn_taking))
            )
        else:
            self._vad.update_options(**vad_options(voice.turn_taking))
        return await VoiceEngine.async_create(self.home, voice, vad=self._vad)

    async def async_serve(self, room: str, **io: Any) -> RoomSession:
        """Start a room's session (local audio, or a LiveKit room) and tell Home Assistant."""
        if self.engine is None:
            raise RuntimeError("start the worker first")
        session = await self.engine.async_start_session(room, **io)
        self.home.report_session(room, active=True)
        return session

    async def async_end(self, room: str) -> None:
        """End a room's session and tell Home Assistant."""
        if self.engine is not None and await self.engine.async_end_session(room):
            self.home.report_session(room, active=False)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_connection(self, connected: bool) -> None:
        """Say in every room when Home Assistant goes away, and when it is back.

        An entry reloading (its options changed) is no outage: nothing is said.
        """
        self._notice("home", {"connected": connected})
        engine = self.engine
        if engine is None or (not connected and self.link.reloading):
            return
        for room in list(engine.sessions):
            if connected:
                self.home.report_session(room, active=True)  # a restarted HA forgot it
                if room in self._away_told:
                    self._away_told.discard(room)
                    engine.announce(room, BACK_NOTICE)
            elif engine.announce(room, AWAY_NOTICE):
                self._away_told.add(room)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        engine = self.engine
        if kind == Event.SETTINGS and engine is not None and self.link.settings is not None:
            self._apply(engine, self.link.settings)
        elif kind == Event.ANNOUNCE:
            spoken = engine is not None and engine.announce(
                event["room"],
                event["text"],
                chime=bool(event.get("chime")),
                interrupt=bool(event.get("interrupt")),
            )
            self._notice("announce", {"room": event["room"], "spoken": spoken})
            self._spawn(self._ack(event["id"], spoken))
        elif kind == Event.START_CONVERSATION:
            self._spawn(self._start_conversation(event))
        elif kind == Event.ASK:
            self._spawn(self._ask(event))
        elif kind == Event.LEAVE:
            self._spawn(self.async_end(event["room"]))

    def _apply(self, engine: VoiceEngine, settings: WorkerSettings) -> None:
        """Apply new settings: turn-taking live; anything else needs new models."""
        if replace(settings.voice, turn_taking=engine.settings.turn_taking) == engine.settings:
            if settings.voice.turn_taking != engine.settings.turn_taking:
                engine.update_turn_taking(settings.voice.turn_taking)
            return
        _LOGGER.info("The entry's voice settings changed: restarting the engine")
        self._spawn(self._rebuild(settings))

    async def _rebuild(self, settings: WorkerSettings) -> None:
        old = self.engine
        if old is None:
            return
        rooms = list(old.sessions.items())
        self.engine = await self._build(settings)
        for room, session in rooms:
            io = session.start_arguments  # the session's own audio, or room
            await old.async_end_session(room)
            await self.engine.async_start_session(
                room,
                audio_input=io.get("audio_input"),
                audio_output=io.get("audio_output"),
                rtc_room=io.get("room"),
                participant_identity=io.get("participant_identity"),
            )
        await old.aclose()

    async def _ack(self, request: str, ok: bool, **answer: str | bool | None) -> None:
        # Unacknowledged, Home Assistant queues it again when this link drops: said
        # twice at worst, never lost.
        with contextlib.suppress(HomeAway, HomeRefused):
            await self.link.request(Command.ACK, request=request, ok=ok, **answer)

    async def _start_conversation(self, event: dict[str, Any]) -> None:
        engine = self.engine
        ok = engine is not None and await engine.start_conversation(
            event["room"], event["text"], event.get("context"), chime=bool(event.get("chime"))
        )
        await self._ack(event["id"], ok)

    async def _ask(self, event: dict[str, Any]) -> None:
        """Ask Home Assistant's question in the room; ack with the answer heard (or None)."""
        if (engine := self.engine) is None:
            await self._ack(event["id"], False)
            return
        try:
            answer = await engine.ask(
                event["room"],
                event["text"],
                chime=bool(event.get("chime")),
                seconds=float(event["seconds"]),
            )
        except NobodyListening:
            await self._ack(event["id"], False)
            return
        except QuestionPending:  # the room is busy: HA says so, not "nobody there"
            await self._ack(event["id"], False, busy=True)
            return
        await self._ack(event["id"], True, answer=answer)

    async def aclose(self) -> None:
        """End every session (telling Home Assistant), then disconnect."""
        if self.engine is not None:
            for room in list(self.engine.sessions):
                await self.async_end(room)
            await self.engine.aclose()
            self.engine = None
        await self.link.drain()
        for task in list(self._tasks):
            task.cancel()
        await self.link.aclose()
