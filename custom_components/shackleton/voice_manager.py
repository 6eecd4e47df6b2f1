"""Starts and stops an entry's voice engine, and turns entry settings into voice settings."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from functools import partial
import sys
import time
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from homeassistant.components import conversation, persistent_notification
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Context, Event, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.httpx_client import get_async_client
from homeassistant.helpers.storage import Store
from homeassistant.util.ulid import ulid_now

from .const import (
    CONF_ANNOUNCE_QUEUE_MINUTES,
    CONF_INSTRUCTIONS,
    CONF_LANGUAGE,
    CONF_MAX_ENDPOINTING_DELAY,
    CONF_MIN_ENDPOINTING_DELAY,
    CONF_MIN_INTERRUPTION_DURATION,
    CONF_MIN_SILENCE_DURATION,
    CONF_MIN_SPEECH_DURATION,
    CONF_PREFIX_PADDING,
    CONF_VAD_ACTIVATION_THRESHOLD,
    CONF_VOICE,
    CONF_VOICE_MODE,
    CONF_WORKER,
    DEFAULT_OPTIONS,
    DOMAIN,
    ISSUE_VOICE_START_FAILED,
    ISSUE_VOICE_UNAVAILABLE,
    LOGGER,
    NOBODY_NOTIFY,
    NOBODY_QUEUE,
    PRIORITY_HIGH,
    PRIORITY_NORMAL,
    STAGE_LLM,
    STAGE_REALTIME,
    STAGE_STT,
    STAGE_TTS,
    VOICE_MODE_REALTIME,
    WORKER_EXTERNAL,
    api_key_key,
    base_url_key,
    model_key,
    provider_key,
)
from .home_bridge import HassHome
from .models import ShackletonConfigEntry, ShackletonRuntime
from .repairs import async_clear_issue, async_raise_issue
from .storage import Kind, async_load_checked, check, checked
from .voice.settings import Backoff, ProviderKind, ProviderSettings, TurnTaking, VoiceSettings
from .voice_support import async_get_loader
from .worker_api import WorkerHub, agent_name, worker_settings

if TYPE_CHECKING:
    from livekit import api

    from .voice.engine import RoomSession, VoiceEngine
    from .voice.rooms import RoomWorker
    from .voice.settings import LiveKitServer


# LiveKit offers a dispatch once, to the workers available at that moment: when all are
# full (a worker reports a freed room up to 2.5 s late) or none is registered, it stays
# in the room with nobody coming. A worker that takes it shows as the dispatch's job in
# a fraction of a second (0.2 s on a loaded 2-core machine); its session takes seconds.
DISPATCH_TAKEN_SECONDS: Final = 3.0
DISPATCH_SERVED_SECONDS: Final = 40.0
DISPATCH_POLL_SECONDS: Final = 0.5
DISPATCH_ATTEMPTS: Final = 5
DISPATCH_BACKOFF: Final = Backoff(initial=1.0, maximum=10.0)


def queue_store(hass: HomeAssistant, entry_id: str) -> Store[list[dict[str, Any]]]:
    """Return the store of an entry's queued announcements."""
    return Store(hass, 1, f"{DOMAIN}.{entry_id}.announcements")


# The fields of a queued announcement as saved; "expires" is wall-clock time.
QUEUE_FIELDS: Final[dict[str, Kind]] = {
    "text": str,
    "chime": bool,
    "priority": str,
    "room": str | None,
    "id": str,
    "expires": float,
}


def _parse_queue(data: Any) -> list[dict[str, Any]]:
    items = check(data, list, "data")
    return [
        checked(item, QUEUE_FIELDS, f"announcements[{index}]") for index, item in enumerate(items)
    ]


@dataclasses.dataclass(frozen=True, slots=True)
class Announcement:
    """Something to say into rooms; `room` and `expires_at` matter once it is queued."""

    text: str
    chime: bool = False
    priority: str = PRIORITY_NORMAL
    expires_at: float = 0.0  # time.monotonic()
    room: str | None = None
    id: str = dataclasses.field(default_factory=ulid_now)


def provider_settings(data: dict[str, Any], stage: str) -> ProviderSettings:
    """Return who serves a stage, from an entry's data."""
    kind: ProviderKind = "openai" if stage == STAGE_REALTIME else data[provider_key(stage)]
    return ProviderSettings(
        kind=kind,
        model=data[model_key(stage)],
        base_url=data.get(base_url_key(kind)),
        api_key=data.get(api_key_key(kind)),
    )


def uses_local_models(settings: VoiceSettings) -> bool:
    """Return whether a pipeline runs offline speech models in HA's process."""
    return any(
        stage is not None and stage.kind == "local" for stage in (settings.stt, settings.tts)
    )


def local_model_figures() -> dict[str, Any]:
    """Return the load figures of the local models loaded so far (none if not imported)."""
    module = sys.modules.get(f"{__package__}.voice.local_models")
    return dict(module.MODELS.figures) if module is not None else {}


def turn_taking_from_options(options: dict[str, Any]) -> TurnTaking:
    """Return the turn-taking settings of an entry's options."""
    merged = {**DEFAULT_OPTIONS, **options}
    return TurnTaking(
        activation_threshold=float(merged[CONF_VAD_ACTIVATION_THRESHOLD]),
        min_speech_duration=float(merged[CONF_MIN_SPEECH_DURATION]),
        min_silence_duration=float(merged[CONF_MIN_SILENCE_DURATION]),
        prefix_padding=float(merged[CONF_PREFIX_PADDING]),
        min_interruption_duration=float(merged[CONF_MIN_INTERRUPTION_DURATION]),
        min_endpointing_delay=float(merged[CONF_MIN_ENDPOINTING_DELAY]),
        max_endpointing_delay=float(merged[CONF_MAX_ENDPOINTING_DELAY]),
    )


def settings_from_entry(entry: ShackletonConfigEntry, default_language: str) -> VoiceSettings:
    """Return the voice settings of an entry."""
    data = dict(entry.data)
    options = {**DEFAULT_OPTIONS, **entry.options}
    realtime = data.get(CONF_VOICE_MODE) == VOICE_MODE_REALTIME
    return VoiceSettings(
        mode="realtime" if realtime else "pipeline",
        llm=provider_settings(data, STAGE_LLM),
        stt=None if realtime else provider_settings(data, STAGE_STT),
        tts=None if realtime else provider_settings(data, STAGE_TTS),
        realtime=provider_settings(data, STAGE_REALTIME) if realtime else None,
        instructions=str(options[CONF_INSTRUCTIONS]),
        language=str(options.get(CONF_LANGUAGE) or default_language),
        voice=str(options[CONF_VOICE]),
        turn_taking=turn_taking_from_options(options),
    )


class VoiceManager:
    """Owns an entry's voice engine for as long as the entry is loaded."""

    def __init__(
        self, hass: HomeAssistant, entry: ShackletonConfigEntry, runtime: ShackletonRuntime
    ) -> None:
        """Prepare; `async_start` loads the engine in the background."""
        self._hass = hass
        self._entry = entry
        self._runtime = runtime
        self.engine: VoiceEngine | None = None
        self.server: LiveKitServer | None = None
        self.workers: dict[str, RoomWorker] = {}
        self._worker_tasks: dict[str, asyncio.Task[None]] = {}
        self._ready = asyncio.Event()
        self._queue: list[Announcement] = []
        # The queue survives restarts (a worker's room may come back after HA does).
        self._queue_store: Store[list[dict[str, Any]]] = queue_store(hass, entry.entry_id)
        # With an external worker: the home it reaches over WebSocket, and its links.
        self.home: HassHome | None = None
        self.hub: WorkerHub | None = None
        self._dispatches: dict[str, asyncio.Task[None]] = {}

    @property
    def external(self) -> bool:
        """Return whether the voice engine runs in an external worker."""
        return self._entry.options.get(CONF_WORKER) == WORKER_EXTERNAL

    @callback
    def async_start(self) -> None:
        """Load the voice engine without holding up Home Assistant's start."""
        self._entry.async_on_unload(self.async_stop)
        self._entry.async_on_unload(
            self._hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, self._async_on_hass_stop)
        )
        if self.external:
            self._async_start_hub()
            return
        self._entry.async_create_background_task(
            self._hass, self._async_load(), f"{DOMAIN} voice engine"
        )

    @callback
    def _async_start_hub(self) -> None:
        """Serve the entry from external workers: they connect over WebSocket."""
        # The voice packages are the worker's business now: an in-process failure is moot.
        async_clear_issue(self._hass, ISSUE_VOICE_UNAVAILABLE, self._entry.entry_id)
        async_clear_issue(self._hass, ISSUE_VOICE_START_FAILED, self._entry.entry_id)
        self.home = HassHome(self._hass, self._entry)
        self.hub = WorkerHub(
            self._entry,
            settings=partial(worker_settings, self._hass, self._entry),
            on_room=self._async_on_worker_room,
            on_workers=self._async_on_workers,
            requeue=self._async_requeue,
        )
        self._entry.async_on_unload(self.hub.async_close)
        self._async_on_workers(0)
        self._ready.set()

    @callback
    def _async_on_workers(self, count: int) -> None:
        """Voice is available while at least one worker is connected."""
        self._runtime.async_set_voice(
            available=count > 0,
            error=None if count else "no_worker",
            details={"mode": "external", "workers": count},
        )

    @callback
    def _async_on_worker_room(self, room: str, active: bool) -> None:
        if active:
            self._runtime.async_set_room_state(room, "listening")
            self._async_room_served(room)
        else:
            self._runtime.async_set_room_state(room, None)

    @callback
    def _async_requeue(self, announcement: Announcement) -> None:
        """Keep an announcement its worker did not get to say, for the room's next session."""
        minutes = float(
            self._entry.options.get(
                CONF_ANNOUNCE_QUEUE_MINUTES, DEFAULT_OPTIONS[CONF_ANNOUNCE_QUEUE_MINUTES]
            )
        )
        expires = max(announcement.expires_at, time.monotonic() + 60 * minutes)
        LOGGER.info(
            "%s: announcement %s was not said in %s yet; it waits for the room's next session",
            self._entry.title,
            announcement.id,
            announcement.room,
        )
        self._queue.append(dataclasses.replace(announcement, expires_at=expires))
        self._async_save_queue()

    def announce(
        self, room: str | None, text: str, *, chime: bool = False, interrupt: bool = False
    ) -> bool:
        """Say `text` in `room` if someone is there; False otherwise."""
        return self._say(room, Announcement(text, chime=chime), interrupt=interrupt)

    def _say(self, room: str | None, announcement: Announcement, *, interrupt: bool) -> bool:
        if room is None or not self._runtime.voice_enabled:
            return False
        if self.hub is not None:
            return self.hub.announce(announcement, room, interrupt=interrupt)
        return self.engine is not None and self.engine.announce(
            room, announcement.text, chime=announcement.chime, interrupt=interrupt
        )

    @property
    def active_rooms(self) -> list[str]:
        """Return the rooms with a voice session (someone can hear the assistant)."""
        if self.hub is not None:
            return sorted(self.hub.rooms)
        return sorted(self.engine.sessions) if self.engine is not None else []

    @callback
    def async_announce(
        self, rooms: list[str] | None, announcement: Announcement, policy: str
    ) -> list[dict[str, Any]]:
        """Announce into `rooms` (None: every active room); return each room's outcome.

        A room with nobody in it gets the no-listener `policy`: drop (with a warning),
        queue until someone joins (within the announcement's TTL), or notify.
        """
        targets: list[str | None] = list(rooms) if rooms else list(self.active_rooms)
        outcomes: list[dict[str, Any]] = []
        missed: list[str | None] = []
        for room in targets:
            if self._say(room, announcement, interrupt=announcement.priority == PRIORITY_HIGH):
                outcomes.append({"room": room, "outcome": "spoken"})
            else:
                missed.append(room)
        if not targets:
            missed = [None]  # no room at all: the next one to open
        if not missed:
            return outcomes
        if policy == NOBODY_QUEUE:
            for room in missed:
                self._queue.append(dataclasses.replace(announcement, room=room))
            self._async_save_queue()
        elif policy == NOBODY_NOTIFY:
            persistent_notification.async_create(
                self._hass,
                announcement.text,
                title=self._entry.title,
                notification_id=f"{DOMAIN}_announcement_{announcement.id}",
            )
        else:
            LOGGER.warning(
                "%s: nobody heard the announcement in %s; it was dropped",
                self._entry.title,
                ", ".join(room or "any room" for room in missed),
            )
        outcome = {NOBODY_QUEUE: "queued", NOBODY_NOTIFY: "notified"}.get(policy, "dropped")
        outcomes += [{"room": room, "outcome": outcome} for room in missed]
        return outcomes

    @callback
    def _async_deliver_queued(self, room: str) -> None:
        """Say what was queued for `room` (or for any room) now that someone is there."""
        now = time.monotonic()
        keep: list[Announcement] = []
        for item in self._queue:
            if item.expires_at <= now:
                LOGGER.info(
                    "%s: a queued announcement expired unheard: %s", self._entry.title, item.id
                )
            elif item.room not in (room, None) or not self._say(room, item, interrupt=False):
                keep.append(item)
        if keep != self._queue:
            self._queue = keep
            self._async_save_queue()

    async def async_load_queue(self) -> None:
        """Take back the announcements queued before a restart (unexpired ones)."""
        stored = (
            await async_load_checked(self._queue_store, _parse_queue, "queued announcements") or []
        )
        wall, mono = time.time(), time.monotonic()
        self._queue = [
            Announcement(
                text=item["text"],
                chime=item["chime"],
                priority=item["priority"],
                room=item["room"],
                id=item["id"],
                expires_at=mono + item["expires"] - wall,
            )
            for item in stored
            if item["expires"] > wall
        ]

    def _queue_data(self) -> list[dict[str, Any]]:
        wall, mono = time.time(), time.monotonic()
        return [
            {
                "text": item.text,
                "chime": item.chime,
                "priority": item.priority,
                "room": item.room,
                "id": item.id,
                "expires": wall + item.expires_at - mono,  # wall clock: restarts keep it
            }
            for item in self._queue
        ]

    @callback
    def _async_save_queue(self) -> None:
        self._queue_store.async_delay_save(self._queue_data, 1)

    @property
    def queued(self) -> list[Announcement]:
        """Return the announcements waiting for someone to join."""
        return list(self._queue)

    async def async_start_conversation(self, room: str, text: str, context: str | None) -> bool:
        """Speak first in `room` and listen; False when nobody is there."""
        if self.hub is not None:
            return self._runtime.voice_enabled and await self.hub.async_start_conversation(
                room, text, context
            )
        return (
            self.engine is not None
            and self._runtime.voice_enabled
            and await self.engine.start_conversation(room, text, context)
        )

    async def async_wait_ready(self) -> VoiceEngine | None:
        """Wait until loading ended; return the engine, or None when voice is unavailable."""
        await self._ready.wait()
        return self.engine

    async def _async_load(self) -> None:
        try:
            loader = async_get_loader(self._hass)
            support = await loader.async_load()
            settings = settings_from_entry(self._entry, self._hass.config.language)
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
                return
            async_clear_issue(self._hass, ISSUE_VOICE_UNAVAILABLE, self._entry.entry_id)
            # Imported by the loader already: these are dictionary look-ups now.
            from livekit.plugins import silero

            from .voice.engine import VoiceEngine, vad_options

            vad = await self._hass.async_add_executor_job(
                partial(silero.VAD.load, **vad_options(settings.turn_taking))
            )
            try:
                self.engine = await VoiceEngine.async_create(
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
                return
            async_clear_issue(self._hass, ISSUE_VOICE_START_FAILED, self._entry.entry_id)
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

    async def async_start_local_session(self, room: str, **io: Any) -> RoomSession:
        """Start a session on local audio (tests, the demo, notebooks)."""
        engine = await self.async_wait_ready()
        if engine is None:
            raise RuntimeError("voice is unavailable")
        session = await engine.async_start_session(room, **io)
        self._runtime.async_set_room_state(room, "listening")
        self._async_room_served(room)
        return session

    @callback
    def _async_room_served(self, room: str) -> None:
        """Someone is in `room`: make it a device, and say what waited for them."""
        self._entry.runtime_data.rooms.async_served(room)
        self._async_deliver_queued(room)

    @callback
    def async_join_room(self, room: str) -> None:
        """Have the agent join a LiveKit room (and stay, reconnecting) until asked to leave."""
        if self.hub is not None:
            self._async_dispatch(room)
            return
        if room in self._worker_tasks or self.engine is None or self.server is None:
            return
        from .voice.rooms import RoomWorker

        worker = RoomWorker(
            self.engine, self.server, room, on_status=partial(self._on_room_status, room)
        )
        self.workers[room] = worker
        self._runtime.async_set_room_state(room, "idle")
        self._worker_tasks[room] = self._entry.async_create_background_task(
            self._hass, worker.run(), f"{DOMAIN} room {room}"
        )

    @callback
    def _async_dispatch(self, room: str) -> None:
        """Ask LiveKit to send one of the entry's workers to `room` (its own dispatch)."""
        # One dispatch at a time per room, until its worker reports in: a second card
        # (or a reconnect) meanwhile would bring a second agent.
        if (
            self.server is None
            or self.hub is None
            or room in self.hub.rooms
            or room in self._dispatches
        ):
            return
        task = self._entry.async_create_background_task(
            self._hass, self._async_create_dispatch(room), f"{DOMAIN} dispatch {room}"
        )
        self._dispatches[room] = task
        task.add_done_callback(lambda _: self._dispatches.pop(room, None))

    async def _async_create_dispatch(self, room: str) -> None:
        """Dispatch the entry's agent to `room`, again while no worker takes it."""
        from livekit import api

        if self.server is None:  # pragma: no cover - checked before the task
            return
        client = api.LiveKitAPI(
            self.server.url.replace("ws", "http", 1),
            self.server.api_key,
            self.server.api_secret,
            session=async_get_clientsession(self._hass),
        )
        request = api.CreateAgentDispatchRequest(
            agent_name=agent_name(self._entry.entry_id), room=room
        )
        try:
            for attempt in range(1, DISPATCH_ATTEMPTS + 1):
                dispatch = await asyncio.wait_for(
                    client.agent_dispatch.create_dispatch(request), 10
                )
                self._runtime.async_set_livekit(connected=True, error=None)
                if await self._async_wait_served(client, dispatch.id, room):
                    return
                # Withdrawn before the next offer: LiveKit waits for this one's answers
                # and ends any job it started, so a late taker brings no second agent.
                with contextlib.suppress(api.TwirpError):
                    await asyncio.wait_for(
                        client.agent_dispatch.delete_dispatch(dispatch.id, room), 10
                    )
                if attempt < DISPATCH_ATTEMPTS:
                    await asyncio.sleep(DISPATCH_BACKOFF.delay(attempt))
        except (TimeoutError, aiohttp.ClientError, api.TwirpError) as err:
            LOGGER.warning(
                "%s: LiveKit could not send a worker to room %s: %s",
                self._entry.title,
                room,
                getattr(err, "message", None) or type(err).__name__,
            )
            self._runtime.async_set_livekit(connected=False, error="cannot_connect")
            return
        LOGGER.warning(
            "%s: no voice worker took room %s after %s offers: are the workers running, "
            "and is one of them free?",
            self._entry.title,
            room,
            DISPATCH_ATTEMPTS,
        )

    async def _async_wait_served(self, client: api.LiveKitAPI, dispatch_id: str, room: str) -> bool:
        """Wait until a worker serves `room`; False when no worker took the dispatch."""
        now = time.monotonic()
        taken_by, served_by = now + DISPATCH_TAKEN_SECONDS, now + DISPATCH_SERVED_SECONDS
        taken = False
        while self.hub is not None and room not in self.hub.rooms:
            if not taken:
                found = await asyncio.wait_for(
                    client.agent_dispatch.get_dispatch(dispatch_id, room), 10
                )
                taken = found is not None and len(found.state.jobs) > 0
                if not taken and time.monotonic() > taken_by:
                    return False
            elif time.monotonic() > served_by:
                # Taken, but its session never reported (the job failed): the room's
                # next request may try again.
                return True
            await asyncio.sleep(DISPATCH_POLL_SECONDS)
        return True

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
            self._async_room_served(room)

    async def async_leave_room(self, room: str) -> bool:
        """Make the agent leave a room; return whether it was there (or trying to be)."""
        if self.hub is not None:
            return self.hub.leave(room)
        task = self._worker_tasks.pop(room, None)
        self.workers.pop(room, None)
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

    async def _async_on_hass_stop(self, _event: Event) -> None:
        await self.async_stop()

    async def async_stop(self) -> None:
        """Leave every room, then close the engine and every session; keep the queue."""
        await self._queue_store.async_save(self._queue_data())
        for room in list(self._worker_tasks):
            await self.async_leave_room(room)
        engine, self.engine = self.engine, None
        if engine is not None:
            LOGGER.debug("Stopping the voice engine of %s", self._entry.title)
            await engine.aclose()
