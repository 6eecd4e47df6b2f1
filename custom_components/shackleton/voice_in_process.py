"""The voice engine inside Home Assistant's own process and event loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from functools import partial
import sys
from typing import TYPE_CHECKING, Any

from homeassistant.components import conversation
from homeassistant.core import Context, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.httpx_client import get_async_client

from .announcements import Announcement
from .const import DOMAIN, ISSUE_VOICE_START_FAILED, ISSUE_VOICE_UNAVAILABLE, LOGGER
from .home_bridge import HassHome
from .repairs import async_clear_issue, async_raise_issue
from .voice.home import NobodyListening
from .voice_backend import VoiceBackend, VoiceHost
from .voice_config import settings_from_entry, turn_taking_from_options, uses_local_models
from .voice_support import VoiceSupport, async_get_loader

if TYPE_CHECKING:
    from .voice.engine import RoomSession, VoiceEngine
    from .voice.rooms import RoomLink
    from .voice.settings import VoiceSettings


def local_model_figures() -> dict[str, Any]:
    """Return the load figures of the local models loaded so far (none if not imported)."""
    module = sys.modules.get(f"{__package__}.voice.local_models")
    return dict(module.MODELS.figures) if module is not None else {}


class InProcessVoice(VoiceBackend):
    """Loads the engine in the background, and joins LiveKit rooms with it."""

    def __init__(self, host: VoiceHost) -> None:
        """Prepare; `async_start` loads the engine."""
        super().__init__(host)
        self.engine: VoiceEngine | None = None
        # The agent's presence in each LiveKit room it was asked into.
        self.links: dict[str, RoomLink] = {}
        self._link_tasks: dict[str, asyncio.Task[None]] = {}
        self._ready = asyncio.Event()

    @callback
    def async_start(self) -> None:
        """Load the voice engine without holding up Home Assistant's start."""
        self._entry.async_create_background_task(
            self._hass, self._async_load(), f"{DOMAIN} voice engine"
        )

    async def async_ready(self) -> bool:
        """Wait until loading ended; return whether the engine runs."""
        await self._ready.wait()
        return self.engine is not None

    @property
    def active_rooms(self) -> list[str]:
        """Return the rooms with a voice session."""
        return sorted(self.engine.sessions) if self.engine is not None else []

    def say(self, room: str, announcement: Announcement, interrupt: bool) -> bool:
        """Say an announcement in `room` now; False when nobody is there."""
        return self.engine is not None and self.engine.announce(
            room, announcement.text, chime=announcement.chime, interrupt=interrupt
        )

    async def async_start_conversation(
        self, room: str, text: str, context: str | None, *, chime: bool = False
    ) -> bool:
        """Speak first in `room` and listen; False when nobody is there."""
        return self.engine is not None and await self.engine.start_conversation(
            room, text, context, chime=chime
        )

    async def async_ask(self, room: str, text: str, *, chime: bool, seconds: float) -> str | None:
        """Ask `text` in `room`; return the answer heard within `seconds`, else None."""
        if self.engine is None:
            raise NobodyListening(room)
        return await self.engine.ask(room, text, chime=chime, seconds=seconds)

    def async_apply_options(self, options: dict[str, Any]) -> bool:
        """Apply changed turn-taking options to every session; False: reload instead."""
        if self.engine is None:
            return False
        self.engine.update_turn_taking(turn_taking_from_options(options))
        return True

    async def async_start_local_session(self, room: str, **io: Any) -> RoomSession:
        """Start a session on local audio (tests, the demo, notebooks)."""
        if not await self.async_ready() or self.engine is None:
            raise RuntimeError("voice is unavailable")
        session = await self.engine.async_start_session(room, **io)
        self._runtime.async_set_room_state(room, "listening")
        self._on_served(room)
        return session

    @callback
    def async_join_room(self, room: str) -> None:
        """Have the agent join a LiveKit room (and stay, reconnecting) until asked to leave."""
        if room in self._link_tasks or self.engine is None or self._server is None:
            return
        from .voice.rooms import RoomLink

        link = RoomLink(
            self.engine, self._server, room, on_status=partial(self._on_room_status, room)
        )
        self.links[room] = link
        self._runtime.async_set_room_state(room, "idle")
        self._link_tasks[room] = self._entry.async_create_background_task(
            self._hass, link.run(), f"{DOMAIN} room {room}"
        )

    @callback
    def _on_room_status(self, room: str, status: str, error: str | None) -> None:
        if status == "error":
            self._runtime.async_set_livekit(connected=False, error=error)
        elif status == "server_lost":
            # A room lost the server mid-session (the SDK is retrying): it is down now,
            # not at the link's next check, up to a minute away.
            self._runtime.async_set_livekit(connected=False, error="cannot_connect")
        elif status in ("connected", "serving"):
            self._runtime.async_set_livekit(connected=True, error=None)
        if status == "serving":
            self._on_served(room)

    async def async_leave_room(self, room: str) -> bool:
        """Make the agent leave a room; return whether it was there (or trying to be)."""
        task = self._link_tasks.pop(room, None)
        self.links.pop(room, None)
        if task is None:
            return await self.async_end_session(room)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self.async_end_session(room)
        return True

    async def async_end_session(self, room: str) -> bool:
        """End a room's session."""
        ended = self.engine is not None and await self.engine.async_end_session(room)
        self._runtime.async_set_room_state(room, None)
        return ended

    async def async_stop(self) -> None:
        """Leave every room, then close the engine and every session."""
        for room in list(self._link_tasks):
            await self.async_leave_room(room)
        engine, self.engine = self.engine, None
        if engine is not None:
            LOGGER.debug("Stopping the voice engine of %s", self._entry.title)
            await engine.aclose()

    # --- loading -----------------------------------------------------------------

    async def _async_load(self) -> None:
        try:
            settings = settings_from_entry(self._entry, self._hass.config.language)
            support = await self._async_load_support(settings)
            if support is None:
                return
            self.engine = await self._async_create_engine(settings)
            if self.engine is None:
                return
            if settings.llm.kind == "home_assistant":
                # Assist loads its sentences on first use (0.35 s): not in the first turn.
                await self._async_warm_up_agent(settings.llm.model, settings.language)
            self._runtime.async_set_voice(
                available=True,
                details={
                    "import_seconds": round(support.import_seconds, 3),
                    "plugin_import_seconds": round(support.plugin_import_seconds, 3),
                    "mode": settings.mode,
                    "local_models": {
                        name: dataclasses.asdict(figures)
                        for name, figures in local_model_figures().items()
                    },
                },
            )
        finally:
            self._ready.set()

    async def _async_load_support(self, settings: VoiceSettings) -> VoiceSupport | None:
        """Import the voice packages (and local models); None, with a repair, if they fail."""
        loader = async_get_loader(self._hass)
        support = await loader.async_load()
        if support.available and uses_local_models(settings):
            local = await loader.async_load_local()
            if not local.available:
                support = local
        if not support.available:
            self._runtime.async_set_voice(available=False, error=support.reason)
            async_raise_issue(
                self._hass,
                ISSUE_VOICE_UNAVAILABLE,
                self._entry.entry_id,
                ir.IssueSeverity.WARNING,
                {"title": self._entry.title, "error": support.detail or support.reason or ""},
            )
            return None
        async_clear_issue(self._hass, ISSUE_VOICE_UNAVAILABLE, self._entry.entry_id)
        return support

    async def _async_create_engine(self, settings: VoiceSettings) -> VoiceEngine | None:
        """Start the engine; None, with a repair, when a model will not load."""
        # Imported by the loader already: these are dictionary look-ups now.
        from livekit.plugins import silero

        from .voice.engine import VoiceEngine, vad_options

        vad = await self._hass.async_add_executor_job(
            partial(silero.VAD.load, **vad_options(settings.turn_taking))
        )
        try:
            engine = await VoiceEngine.async_create(
                HassHome(self._hass, self._entry),
                settings,
                vad=vad,
                http_client=get_async_client(self._hass),
                http_session=async_get_clientsession(self._hass),
            )
        except Exception as err:  # noqa: BLE001 - a model that will not load: say so
            LOGGER.exception("The voice engine of %s did not start", self._entry.title)
            self._runtime.async_set_voice(available=False, error="start_failed")
            async_raise_issue(
                self._hass,
                ISSUE_VOICE_START_FAILED,
                self._entry.entry_id,
                ir.IssueSeverity.ERROR,
                {"title": self._entry.title, "error": str(err) or type(err).__name__},
            )
            return None
        async_clear_issue(self._hass, ISSUE_VOICE_START_FAILED, self._entry.entry_id)
        return engine

    async def _async_warm_up_agent(self, agent_id: str, language: str) -> None:
        """Have the agent ready before the first turn.

        Assist loads its sentences on first use, then compiles their patterns on its
        first recognition (0.35 s on 2 cores): both happen now, and nothing is done.
        Other agents are asked nothing: a language model would be paid for it.
        """
        try:
            await conversation.async_prepare_agent(self._hass, agent_id, language)
        except ValueError as err:  # the agent was removed: each turn apologises
            LOGGER.warning("%s: %s", self._entry.title, err)
            return
        if agent_id != conversation.HOME_ASSISTANT_AGENT:
            return
        # A sentence no intent matches: every pattern is tried (so compiled), nothing
        # runs, and Assist answers that it did not understand.
        await conversation.async_converse(
            self._hass,
            text="shackleton warm up",
            conversation_id=None,
            context=Context(),
            language=language,
            agent_id=agent_id,
        )
