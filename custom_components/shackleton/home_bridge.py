"""Home Assistant's side of the voice engine's `Home` interface."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import dataclasses
from functools import partial
from typing import Any

from homeassistant.components import conversation, persistent_notification, stt
from homeassistant.components.intent import (
    TimerEventType,
    TimerInfo,
    async_register_timer_handler,
)
from homeassistant.components.tts import helper as tts_helper
from homeassistant.core import Context, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir, llm
from homeassistant.util import dt as dt_util
import probatio

from . import compat, phrases
from .assistants import room_assistant
from .const import (
    ASSISTANT_STATES,
    CONF_TRANSCRIPTS_IN_EVENTS,
    DOMAIN,
    EVENT_ERROR,
    EVENT_TURN,
    ISSUE_PROVIDER_FAILING,
    LOGGER,
    REDACTED,
    STATE_IDLE,
)
from .models import ShackletonConfigEntry
from .repairs import async_clear_issue, async_raise_issue
from .tools.api import tool_schemas
from .voice.home import (
    HomeContext,
    Persona,
    RoomTools,
    ToolCallError,
    ToolSpec,
    TurnReport,
    Usage,
)


def make_llm_context(
    hass: HomeAssistant,
    language: str,
    device_id: str | None,
    context: Context | None = None,
    agent_id: str | None = None,
) -> llm.LLMContext:
    """Build the LLMContext of a Shackleton turn; `agent_id` is the agent handling it."""
    return compat.llm_context(
        platform=DOMAIN,
        context=context or Context(),
        language=language,
        assistant=conversation.DOMAIN,
        device_id=device_id,
        agent_id=agent_id,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class AgentAnswer:
    """What a conversation agent said, and the intents or tools it used."""

    speech: str
    tools: list[str]
    conversation_id: str | None = None


async def async_ask_agent(
    hass: HomeAssistant,
    *,
    text: str,
    agent_id: str,
    conversation_id: str | None,
    context: Context,
    language: str,
    device_id: str | None,
    run_tool: Callable[[str, dict[str, Any]], Awaitable[Any]],
) -> AgentAnswer:
    """Hand words to one of the home's conversation agents.

    Assist has no calendar or reminder sentences: Shackleton's own (phrases.py) are
    tried first for it, and run Shackleton's tools through `run_tool`. A failing or
    missing agent raises ToolCallError.
    """
    if agent_id == conversation.HOME_ASSISTANT_AGENT and (matched := phrases.match(text)):
        try:
            result = await run_tool(matched.tool, matched.arguments)
        except (ToolCallError, HomeAssistantError, probatio.Invalid) as err:
            return AgentAnswer(f"Sorry, I couldn't do that: {err}", [matched.tool])
        return AgentAnswer(phrases.answer(matched, result), [matched.tool])
    try:
        result = await conversation.async_converse(
            hass,
            text=text,
            conversation_id=conversation_id,
            context=context,
            language=language,
            agent_id=agent_id,
            device_id=device_id,
        )
    except (HomeAssistantError, ValueError) as err:  # ValueError: no such agent (any more)
        raise ToolCallError(str(err) or type(err).__name__) from err
    response = result.response
    speech = str(response.speech.get("plain", {}).get("speech", ""))
    intent_type = response.intent.intent_type if response.intent else None
    return AgentAnswer(speech, [intent_type] if intent_type else [], result.conversation_id)


class HassHome:
    """Gives the voice engine the home: Assist tools, context, and reporting."""

    def __init__(self, hass: HomeAssistant, entry: ShackletonConfigEntry) -> None:
        """Serve one config entry."""
        self._hass = hass
        self._entry = entry
        self._runtime = entry.runtime_data.runtime
        # One HA context per user turn and room: what tells a confirmation's yes apart.
        self._turn_contexts: dict[str, tuple[int, Context]] = {}
        # The rooms served: their HA device, with HA's timer handler registered on it.
        self._room_devices: dict[str, str] = {}
        # Each room's LLM API instance for its current turn: a turn's tool calls (often
        # several at once) share one instead of each listing every tool again.
        self._instances: dict[str, tuple[int, asyncio.Future[llm.APIInstance]]] = {}
        # A room's conversation with an agent goes on across turns (follow-ups work).
        self._conversations: dict[str, str] = {}
        self._secrets = [
            str(value)
            for key, value in entry.data.items()
            if key.endswith(("_api_key", "_secret")) and value
        ]

    def _language(self, room: str) -> str:
        return room_assistant(self._entry, room).language_or(self._hass.config.language)

    def context(self, room: str) -> HomeContext:
        """Return the home's name, the room's language, the time zone and time."""
        return HomeContext(
            home_name=self._hass.config.location_name,
            language=self._language(room),
            time_zone=str(self._hass.config.time_zone),
            now=dt_util.now(),
        )

    def _context(self, room: str, turn: int | None) -> Context:
        if turn is None:
            return Context()
        known = self._turn_contexts.get(room)
        if known is None or known[0] != turn:
            known = self._turn_contexts[room] = (turn, Context())
        return known[1]

    @callback
    def serve_room(self, room: str) -> str:
        """Start serving a room; return its HA device, with HA's timer handler on it.

        Assist's timer intents only appear for a device that can announce timers, so
        each room gets one: "set a timer" then works with HA's own timers. Listing a
        room's tools and asking an agent serve it; calling again is cheap.
        """
        device_id = self._entry.runtime_data.rooms.device_id(room)
        if self._room_devices.get(room) != device_id:
            self._room_devices[room] = device_id
            self._entry.async_on_unload(
                async_register_timer_handler(self._hass, device_id, partial(self._on_timer, room))
            )
        return device_id

    @callback
    def _on_timer(self, room: str, event_type: TimerEventType, timer: TimerInfo) -> None:
        """Say a finished timer in its room; a notification when nobody is there."""
        if event_type is not TimerEventType.FINISHED:
            return
        text = f"The {timer.name} timer is done." if timer.name else "Your timer is done."
        if not self._entry.runtime_data.voice.announce(room, text):
            persistent_notification.async_create(
                self._hass, text, title="Timer", notification_id=f"{DOMAIN}_timer_{timer.id}"
            )

    async def _build_api(self, room: str, device_id: str, turn: int | None) -> llm.APIInstance:
        """Return the room's tools: its assistant's groups, guarded by its domains."""
        assistant = room_assistant(self._entry, room)
        agent = self._entry.runtime_data.agents.get(assistant.subentry_id)
        llm_context = make_llm_context(
            self._hass,
            assistant.language_or(self._hass.config.language),
            device_id,
            self._context(room, turn),
            agent.entity_id if agent else None,
        )
        api = self._entry.runtime_data.api.for_assistant(assistant)
        return await api.async_get_room_instance(llm_context, room)

    async def _turn_api(self, room: str, turn: int) -> llm.APIInstance:
        """Return the room's LLM API instance for `turn`, built once for the turn."""
        known = self._instances.get(room)
        if known is None or known[0] != turn:
            device_id = self._room_devices.get(room)
            if device_id is None:  # not served (no tools listed): its device, without timers
                device_id = self._entry.runtime_data.rooms.device_id(room)
            building = self._hass.async_create_task(
                self._build_api(room, device_id, turn), f"{DOMAIN} tools of {room}"
            )
            building.add_done_callback(partial(self._forget_failed, room))
            known = self._instances[room] = (turn, building)
        # Shielded: a cancelled tool call leaves the turn's other calls their instance.
        return await asyncio.shield(known[1])

    def _forget_failed(self, room: str, building: asyncio.Future[llm.APIInstance]) -> None:
        """Let the next call build again when this build failed (its callers saw why)."""
        failed = building.cancelled() or building.exception() is not None
        if failed and self._instances.get(room, (0, None))[1] is building:
            del self._instances[room]

    async def room_tools(self, room: str) -> RoomTools:
        """Return Shackleton's tools (Assist's over the exposed entities, and its own).

        The guide is the LLM API's prompt: Assist's guidance and the confirmation rules.
        """
        # Listing tools is no turn of anyone's: no confirmation can hang on it.
        instance = await self._build_api(room, self.serve_room(room), None)
        specs = [ToolSpec(**schema) for schema in tool_schemas(instance)]
        assistant = room_assistant(self._entry, room)
        persona = Persona(
            instructions=assistant.instructions,
            language=assistant.language_or(self._hass.config.language),
            model=assistant.model,
            voice=assistant.voice,
        )
        return RoomTools(specs, instance.api_prompt if specs else "", persona)

    async def call_tool(
        self, room: str, name: str, arguments: dict[str, Any], *, turn: int = 0
    ) -> Any:
        """Run a tool; refusals and bad arguments come back as errors the model can read."""
        api = await self._turn_api(room, turn)
        try:
            result = await api.async_call_tool(llm.ToolInput(tool_name=name, tool_args=arguments))
        except (HomeAssistantError, probatio.Invalid) as err:
            raise ToolCallError(str(err) or type(err).__name__) from err
        return result.data

    async def converse(
        self, room: str, text: str, agent_id: str, *, turn: int = 0
    ) -> tuple[str, list[str]]:
        """Ask a conversation agent, as the room's device (so timers ring there)."""
        answer = await async_ask_agent(
            self._hass,
            text=text,
            agent_id=agent_id,
            conversation_id=self._conversations.get(room),
            context=self._context(room, turn),
            language=self._language(room),
            device_id=self.serve_room(room),
            run_tool=partial(self.call_tool, room, turn=turn),
        )
        if answer.conversation_id:
            self._conversations[room] = answer.conversation_id
        return answer.speech, answer.tools

    async def transcribe(self, engine: str, pcm: bytes, rate: int, language: str) -> str:
        """Transcribe with one of HA's speech-to-text engines, as an Assist pipeline does."""
        instance = (
            stt.async_get_speech_to_text_engine(self._hass, engine)
            if stt.DOMAIN in self._hass.config.components
            else None
        )
        if instance is None:
            raise ToolCallError(f"There is no speech-to-text engine {engine}")
        metadata = stt.SpeechMetadata(
            language=_pick_language(language, instance.supported_languages),
            format=stt.AudioFormats.WAV,
            codec=stt.AudioCodecs.PCM,
            bit_rate=stt.AudioBitRates.BITRATE_16,
            sample_rate=stt.AudioSampleRates(rate),
            channel=stt.AudioChannels.CHANNEL_MONO,
        )

        async def audio() -> AsyncIterator[bytes]:
            for start in range(0, len(pcm), 3200):  # 100 ms chunks, as a satellite sends
                yield pcm[start : start + 3200]

        try:
            if isinstance(instance, stt.SpeechToTextEntity):
                result = await instance.internal_async_process_audio_stream(metadata, audio())
            else:
                result = await instance.async_process_audio_stream(metadata, audio())
        except HomeAssistantError as err:
            raise ToolCallError(str(err) or type(err).__name__) from err
        if result.result is not stt.SpeechResultState.SUCCESS:
            raise ToolCallError(f"{engine} could not transcribe the audio")
        return str(result.text or "")

    async def synthesize(self, engine: str, text: str, language: str) -> tuple[str, bytes]:
        """Speak with one of HA's text-to-speech engines, in its own audio format."""
        instance = (
            tts_helper.get_engine_instance(self._hass, engine)
            if "tts" in self._hass.config.components
            else None
        )
        if instance is None:
            raise ToolCallError(f"There is no text-to-speech engine {engine}")
        chosen = _pick_language(language, instance.supported_languages)
        options = dict(instance.default_options or {})
        try:
            extension, data = await instance.async_get_tts_audio(text, chosen, options)
        except HomeAssistantError as err:
            raise ToolCallError(str(err) or type(err).__name__) from err
        if not extension or not data:
            raise ToolCallError(f"{engine} returned no audio")
        return extension, data

    @callback
    def report_state(self, room: str, state: str) -> None:
        """Show a room's agent state on the state sensor."""
        # LiveKit's "initializing" (and anything newer) shows as idle.
        self._runtime.async_set_room_state(room, state if state in ASSISTANT_STATES else STATE_IDLE)

    @callback
    def report_turn(self, report: TurnReport) -> None:
        """Fire `shackleton_turn` and feed the figures; a good turn clears the breaker repair."""
        self._runtime.async_record_turn(
            report.end_to_end, failed=report.error is not None, room=report.room
        )
        data: dict[str, Any] = {
            "entry_id": self._entry.entry_id,
            "room": report.room,
            "end_of_utterance_delay_ms": _ms(report.end_of_utterance_delay),
            "transcription_delay_ms": _ms(report.transcription_delay),
            "llm_ttft_ms": _ms(report.llm_ttft),
            "tts_ttfb_ms": _ms(report.tts_ttfb),
            "end_to_end_ms": _ms(report.end_to_end),
            "interrupted": report.interrupted,
            "tools": report.tools,
            "error": report.error,
        }
        if self._entry.options.get(CONF_TRANSCRIPTS_IN_EVENTS):
            data |= {"user_text": report.user_text, "agent_text": report.agent_text}
        else:
            data |= {"user_text": REDACTED, "agent_text": REDACTED}
        self._hass.bus.async_fire(EVENT_TURN, data)
        if report.error is None:
            async_clear_issue(self._hass, ISSUE_PROVIDER_FAILING, self._entry.entry_id)

    @callback
    def report_error(self, room: str, source: str, message: str, *, recoverable: bool) -> None:
        """Fire `shackleton_error`; an open breaker raises a repair issue."""
        message = self._scrub(message)
        LOGGER.debug("Room %s: %s error: %s", room, source, message)
        self._hass.bus.async_fire(
            EVENT_ERROR,
            {
                "entry_id": self._entry.entry_id,
                "room": room,
                "source": source,
                "message": message,
                "recoverable": recoverable,
            },
        )
        if source == "breaker":
            LOGGER.warning("Room %s: the providers keep failing (%s)", room, message)
            async_raise_issue(
                self._hass,
                ISSUE_PROVIDER_FAILING,
                self._entry.entry_id,
                ir.IssueSeverity.ERROR,
                {"title": self._entry.title, "error": message},
            )

    @callback
    def report_usage(self, usage: Usage) -> None:
        """Count what the providers did on the entry's usage sensors."""
        self._entry.runtime_data.usage.async_add(usage)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def _pick_language(wanted: str, supported: list[str] | None) -> str:
    """Return `wanted` or the engine's closest language (en for en-GB, en-US for en)."""
    if not supported or wanted in supported:
        return wanted
    base = wanted.split("-")[0].lower()
    for language in supported:
        if language.lower() == base or language.split("-")[0].lower() == base:
            return language
    return wanted  # the engine says what is wrong with it


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)
