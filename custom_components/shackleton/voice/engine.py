"""The voice engine: one LiveKit AgentSession per room, talking to a `Home`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
import json
import logging
from pathlib import Path
import time
from typing import Any

import aiohttp
from livekit import rtc
from livekit.agents import Agent, AgentSession, llm, stt as stt_mod, vad as vad_mod
from livekit.agents.llm import StopResponse, ToolError, function_tool
from livekit.agents.types import NOT_GIVEN
from livekit.agents.voice import io
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.events import (
    AgentStateChangedEvent,
    CloseEvent,
    CloseReason,
    ConversationItemAddedEvent,
    ErrorEvent,
    FunctionToolsExecutedEvent,
    UserStateChangedEvent,
)
import numpy as np

from .agent_llm import ConversationAgentLLM
from .client import INTERRUPT_RPC, TOOL_TOPIC, tool_summary
from .home import Home, HomeContext, ToolCallError, ToolSpec, TurnReport
from .local_audio import read_wav
from .providers import (
    AnswerLost,
    Models,
    build_models,
    connect_options,
    realtime_turn_detection,
)
from .settings import Backoff, TurnTaking, VoiceSettings, persona
from .shared_vad import SharedVAD

_LOGGER = logging.getLogger(__name__)
RESTART_BACKOFF = Backoff(initial=1.0, maximum=60.0)
# The conversation items a room remembers (about ten exchanges with their tool calls).
HISTORY_ITEMS = 40
APOLOGY_WAV = Path(__file__).parent / "assets" / "apology_en.wav"
CHIME_RATE = 24000


def build_instructions(settings: VoiceSettings, context: HomeContext, tool_guide: str = "") -> str:
    """Return the persona with the home's context and the tools' guide appended."""
    lines = [
        persona(settings.instructions),
        f"Home: {context.home_name}. Time zone: {context.time_zone}. "
        f"Now: {context.now:%A %d %B %Y, %H:%M}.",
        f"Answer in the language with code '{context.language}'.",
    ]
    if context.user_name:
        lines.append(f"You are talking with {context.user_name}.")
    lines.append(tool_guide.strip())
    return "\n".join(line for line in lines if line)


def turn_handling(turn: TurnTaking, *, realtime: bool, preemptive: bool = True) -> dict[str, Any]:
    """Return LiveKit's turn-handling options for our turn-taking settings.

    `preemptive` (answering while the endpointing delay runs) is off for conversation
    agents: they act as they answer, and the user may not have finished.
    """
    return {
        # VAD decides turns: the adaptive modes need LiveKit's hosted models.
        "turn_detection": "realtime_llm" if realtime else "vad",
        "endpointing": {
            "mode": "fixed",
            "min_delay": turn.min_endpointing_delay,
            "max_delay": turn.max_endpointing_delay,
        },
        "interruption": {
            "enabled": True,
            "mode": "vad",
            "min_duration": turn.min_interruption_duration,
            "resume_false_interruption": True,
            "false_interruption_timeout": 2.0,
        },
        "preemptive_generation": {"enabled": preemptive, "preemptive_tts": preemptive},
    }


def vad_options(turn: TurnTaking) -> dict[str, Any]:
    """Return silero's options for our turn-taking settings."""
    return {
        "activation_threshold": turn.activation_threshold,
        "min_speech_duration": turn.min_speech_duration,
        "min_silence_duration": turn.min_silence_duration,
        "prefix_padding_duration": turn.prefix_padding,
    }


def _make_tool(session: RoomSession, spec: ToolSpec) -> llm.RawFunctionTool[Any, Any]:
    async def call(raw_arguments: dict[str, object]) -> Any:
        session.tools_called.append((session.turn, spec.name))
        session.touch()
        try:
            result = await session.engine.home.call_tool(
                session.room, spec.name, raw_arguments, turn=session.turn
            )
        except ToolCallError as err:
            session.tell_clients_tool(spec.name, None, ok=False)
            # The model reads this and can recover (ask again, pick another entity...).
            raise ToolError(str(err)) from err
        session.tell_clients_tool(spec.name, result, ok=True)
        # LiveKit sends str(result): JSON, not a Python repr, and never an empty string.
        return json.dumps(result, default=str, ensure_ascii=False)

    schema = {"name": spec.name, "description": spec.description, "parameters": spec.parameters}
    return function_tool(call, raw_schema=schema)


class Breaker:
    """Opens after consecutive failed turns; after a pause, lets one turn probe."""

    def __init__(self, threshold: int, retry_after: Callable[[], float]) -> None:
        """Open after `threshold` failures; probe after `retry_after()` seconds."""
        self._threshold = threshold
        self._retry_after = retry_after
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False

    def is_open(self) -> bool:
        """Return whether turns are refused right now (no side effects)."""
        return (
            self.opened_at is not None
            and not self._probing
            and time.monotonic() - self.opened_at < self._retry_after()
        )

    def allow(self) -> bool:
        """Return whether a model call may go ahead; starts the probe when due."""
        if self.opened_at is None or self._probing:
            return True
        if time.monotonic() - self.opened_at >= self._retry_after():
            self._probing = True
            return True
        return False

    def record_failure(self) -> bool:
        """Count a failed turn; return True when this one opened the breaker."""
        self.failures += 1
        self._probing = False
        if self.failures < self._threshold:
            return False
        newly = self.opened_at is None
        self.opened_at = time.monotonic()
        return newly

    def record_success(self) -> None:
        """Close the breaker."""
        self.failures = 0
        self.opened_at = None
        self._probing = False


class ShackletonAgent(Agent):
    """The assistant of one room."""

    def __init__(self, session: RoomSession, instructions: str, tools: list[Any]) -> None:
        """Make the agent; `session` decides whether a turn may reach the LLM."""
        super().__init__(instructions=instructions, tools=tools)
        self._room_session = session

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        """Skip the LLM while the circuit breaker is open; apologise at once instead.

        A room's conversation never ends, so its history is kept to the last
        HISTORY_ITEMS items: a day of turns must not grow every prompt (and the bill).
        """
        if self._room_session.breaker.is_open():
            self._room_session.refuse_turn()
            raise StopResponse
        realtime = self._room_session.engine.settings.mode == "realtime"
        if len(self.chat_ctx.items) > HISTORY_ITEMS and not realtime:
            await self.update_chat_ctx(self.chat_ctx.copy().truncate(max_items=HISTORY_ITEMS))
            turn_ctx.truncate(max_items=HISTORY_ITEMS)

    async def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[Any], model_settings: Any
    ) -> AsyncIterator[Any]:
        """Call the model unless the breaker is open (preemptive calls included)."""
        if not self._room_session.breaker.allow():
            return
        async for chunk in Agent.default.llm_node(self, chat_ctx, tools, model_settings):
            yield chunk


class RoomSession:
    """An AgentSession serving one room, with turn reports, a watchdog and a breaker."""

    def __init__(self, engine: VoiceEngine, room: str) -> None:
        """Prepare the session; `async_start` runs it."""
        self.engine = engine
        self.room = room
        # (user turn, tool) pairs: a fast agent can finish before its user item lands.
        self.tools_called: list[tuple[int, str]] = []
        self.turn = 0  # user turns so far
        self.session: AgentSession[Any] | None = None
        self._pending: TurnReport | None = None
        self.breaker = Breaker(
            engine.settings.limits.breaker_threshold, lambda: engine.breaker_retry_after
        )
        self._watchdog: asyncio.TimerHandle | None = None
        self._turn_failed_reported = False
        # A preemptive generation can fail before its user turn is committed.
        self._deferred_failure: str | None = None
        self._apologising = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._start_kwargs: dict[str, Any] = {}
        self._closing = False
        self.restarts = 0
        self.closed = asyncio.Event()
        self._stt_adapter: stt_mod.StreamAdapter | None = None
        self._vad: SharedVAD | None = None
        self._user_stopped_at: float | None = None
        self._answered = False  # whether the agent spoke since the user last did
        self._restarting = False
        self._restart_failures = 0
        self._rtc_room: rtc.Room | None = None

    async def async_start(
        self,
        *,
        audio_input: io.AudioInput | None = None,
        audio_output: io.AudioOutput | None = None,
        room: rtc.Room | None = None,
        participant_identity: str | None = None,
    ) -> None:
        """Start listening, on local audio or in a connected LiveKit room."""
        self._start_kwargs = {
            "audio_input": audio_input,
            "audio_output": audio_output,
            "room": room,
            "participant_identity": participant_identity,
        }
        engine = self.engine
        settings = engine.settings
        limits = settings.limits
        models = engine.models
        # One silero pass serves turn-taking and speech-to-text (see shared_vad.py).
        vad = self._vad = SharedVAD(engine.vad)
        stt_model = models.stt
        if stt_model is not None and not stt_model.capabilities.streaming:
            stt_model = self._stt_adapter = stt_mod.StreamAdapter(stt=stt_model, vad=vad.follower)
        llm_model = models.llm
        if isinstance(llm_model, ConversationAgentLLM):
            # The home's agent answers (and acts) for this room, a turn at a time.
            llm_model = llm_model.for_room(self.room, lambda: self.turn, self._record_tools)
        session: AgentSession[Any] = AgentSession(
            vad=vad,
            stt=stt_model or NOT_GIVEN,
            llm=llm_model,
            tts=models.tts or NOT_GIVEN,
            turn_handling=turn_handling(  # type: ignore[arg-type]
                settings.turn_taking,
                realtime=settings.mode == "realtime",
                preemptive=not isinstance(llm_model, ConversationAgentLLM),
            ),
            conn_options=SessionConnectOptions(
                stt_conn_options=connect_options(limits),
                llm_conn_options=connect_options(limits),
                tts_conn_options=connect_options(limits),
                # Provider faults end the turn, never the session: our breaker handles the
                # LLM's and TTS's, and an STT failure restarts the room (see `_on_error`).
                max_unrecoverable_errors=1_000_000,
            ),
            # Browsers and satellites cancel their own echo: barge-in works from word one.
            aec_warmup_duration=None,
            user_away_timeout=None,
        )
        self.session = session
        for event, handler in self._handlers():
            session.on(event, handler)
        if audio_input is not None:
            session.input.audio = audio_input
        if audio_output is not None:
            session.output.audio = audio_output
        if isinstance(llm_model, ConversationAgentLLM):
            tools, guide = [], ""  # a conversation agent brings its own
        else:
            specs = await engine.home.tools(self.room)
            tools = [_make_tool(self, spec) for spec in specs]
            guide = await engine.home.tool_guide(self.room) if specs else ""
        agent = ShackletonAgent(
            self, build_instructions(settings, engine.home.context(self.room), guide), tools
        )
        if room is not None:
            from livekit.agents.voice import room_io

            if self._rtc_room is None:  # a restarted session keeps the room's handler
                room.local_participant.register_rpc_method(INTERRUPT_RPC, self._on_interrupt_rpc)
            self._rtc_room = room

            await session.start(
                agent,
                room=room,
                room_options=room_io.RoomOptions(
                    participant_identity=participant_identity or NOT_GIVEN
                ),
                record=False,
            )
        else:
            await session.start(agent, record=False)

    def _handlers(self) -> list[tuple[Any, Callable[..., None]]]:
        return [
            ("agent_state_changed", self._on_agent_state),
            ("user_state_changed", self._on_user_state),
            ("conversation_item_added", self._on_item),
            ("function_tools_executed", self._on_tools),
            ("error", self._on_error),
            ("close", self._on_close),
        ]

    # --- the state machine ------------------------------------------------------

    def touch(self) -> None:
        """Note progress (a tool ran): the watchdog waits afresh."""
        if self._watchdog is not None:
            self._arm_watchdog()

    def _arm_watchdog(self) -> None:
        self._disarm_watchdog()
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(
            self.engine.settings.limits.turn_deadline, self._watchdog_fired
        )

    def _disarm_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _watchdog_fired(self) -> None:
        self._watchdog = None
        _LOGGER.warning(
            "Room %s: no answer within %.1f s", self.room, self.engine.settings.limits.turn_deadline
        )
        self.engine.home.report_error(
            self.room, "timeout", "the providers did not answer in time", recoverable=True
        )
        if self.session is not None:
            self._spawn(self.session.interrupt(force=True))
        self._turn_failed("timeout")

    def _on_agent_state(self, ev: AgentStateChangedEvent) -> None:
        if ev.new_state == "speaking":
            self._answered = True
        self.engine.home.report_state(self.room, ev.new_state)
        if ev.new_state == "thinking":
            self._turn_failed_reported = False
            self._arm_watchdog()
            return
        self._disarm_watchdog()
        if (
            ev.old_state == "thinking"
            and ev.new_state == "listening"
            and self._pending is not None
            and not self._answered
            and not self._apologising
            and not any(turn == self.turn for turn, _name in self.tools_called)
            # Not a barge-in: talking over a thinking agent also ends its thinking.
            and self.session is not None
            and self.session.user_state != "speaking"
        ):
            # The model answered with nothing (no words, no tool): the user would hear
            # silence, as if unheard. It is a failed turn like any other.
            self._turn_failed("llm_empty")

    def _on_user_state(self, ev: UserStateChangedEvent) -> None:
        if ev.new_state == "listening":
            self._user_stopped_at = ev.created_at
        if ev.new_state == "speaking":
            # A new user turn (what a spoken yes needs). Counted when speech starts: a
            # realtime model's transcript can arrive after it already acted on the words.
            self.turn += 1
            # The last turn's wait ends: this one is watched from its own commit.
            self._disarm_watchdog()
            self._answered = False
            # Its preemptive reply can fail before LiveKit says "thinking": the last
            # turn's failure report must not swallow this one's.
            self._turn_failed_reported = False
            # Still talking: LiveKit drops the preemptive reply and will generate anew.
            self._deferred_failure = None

    def _record_tools(self, names: list[str]) -> None:
        self.tools_called.extend((self.turn, name) for name in names)

    def _tool_names(self) -> list[str]:
        return list(dict.fromkeys(name for _turn, name in self.tools_called))

    def _on_tools(self, ev: FunctionToolsExecutedEvent) -> None:
        if self._pending is not None:
            self._pending.tools = self._tool_names()
        self.touch()

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage):
            return
        metrics = item.metrics
        if item.role == "user":
            self.tools_called = [
                (turn, name) for turn, name in self.tools_called if turn >= self.turn
            ]
            self._turn_failed_reported = False
            self._pending = TurnReport(
                room=self.room,
                user_text=item.text_content,
                end_of_utterance_delay=metrics.get("end_of_turn_delay"),
                transcription_delay=metrics.get("transcription_delay"),
            )
            if (why := self._deferred_failure) is not None:
                # Its preemptive generation already failed: this turn gets no answer.
                self._deferred_failure = None
                self._turn_failed(why)
            elif not self._answered:
                # Watch for the answer from the committed turn on, not only while
                # "thinking": a realtime model never thinks, and a preemptive reply that
                # stalled may never get there either. (A realtime transcript can also
                # arrive after the answer began: then there is none to wait for.)
                self._arm_watchdog()
            return
        if item.role != "assistant" or self._pending is None or self._apologising:
            return
        report, self._pending = self._pending, None
        report.agent_text = item.text_content
        report.llm_ttft = metrics.get("llm_node_ttft")
        report.tts_ttfb = metrics.get("tts_node_ttfb")
        report.end_to_end = metrics.get("e2e_latency")
        started = metrics.get("started_speaking_at")
        if report.end_to_end is None and started is not None and self._user_stopped_at:
            # Realtime models report no latency of their own: time it from the local
            # VAD's end of speech, as LiveKit does in pipeline mode.
            report.end_to_end = max(0.0, started - self._user_stopped_at)
        report.interrupted = item.interrupted
        report.tools = self._tool_names()
        self.breaker.record_success()
        self._restart_failures = 0
        self.engine.home.report_turn(report)

    def _on_error(self, ev: ErrorEvent) -> None:
        error = ev.error
        recoverable = bool(getattr(error, "recoverable", False))
        source = str(getattr(error, "type", "session"))
        message = str(getattr(error, "error", error))
        self.engine.home.report_error(self.room, source, message, recoverable=recoverable)
        if recoverable:
            if isinstance(getattr(error, "error", None), AnswerLost):
                # The realtime connection dropped mid-answer (providers._StallGuard);
                # LiveKit reconnects, and what was not said is lost: apologise for it.
                self._turn_failed(source)
            return
        if self.engine.settings.mode == "realtime" and not self._closing:
            # The realtime connection is gone for good, and LiveKit 1.5.16's own close
            # then fails half-way without a "close" event: restart the room ourselves.
            talking = self._pending is not None
            self._turn_failed(source, speak=False)
            self._spawn(self._async_restart(apologise=talking))
            return
        if source == "stt_error" and not self._closing:
            # The STT failed past its retries. LiveKit 1.8 only counts that against
            # `max_unrecoverable_errors`, which we lift for the LLM and TTS (the breaker
            # handles them), and retries the stream on its own: restart the room instead,
            # with a fresh session, and apologise for the words it lost.
            self._turn_failed(source, speak=False)
            self._spawn(self._async_restart(apologise=True))
            return
        self._turn_failed(source)

    def _on_close(self, ev: CloseEvent) -> None:
        self._disarm_watchdog()
        if ev.reason == CloseReason.ERROR and not self._closing:
            # LiveKit closed the session on an error (one `_on_error` did not restart the
            # room for: with our tolerance, none of the STT/LLM/TTS kinds); the room must
            # not go deaf.
            self.engine.home.report_error(self.room, "session", str(ev.error), recoverable=True)
            self._turn_failed("session", speak=False)
            self._spawn(self._async_restart(apologise=True))
            return
        self.engine.home.report_state(self.room, "idle")
        self.closed.set()

    async def _async_restart(self, *, apologise: bool) -> None:
        if self._restarting:
            return
        self._restarting = True
        try:
            old, self.session = self.session, None
            if old is not None:
                # What the failed session says while it closes is not this room's news.
                for event, handler in self._handlers():
                    old.off(event, handler)
            await self._aclose_session(old)
            self.restarts += 1
            # Back off while it keeps failing (a revoked key must not spin); a good turn
            # resets the count.
            self._restart_failures += 1
            if self._restart_failures > 1:  # the first restart is at once
                await asyncio.sleep(RESTART_BACKOFF.delay(self._restart_failures - 1))
            if self._closing:
                return
            self._apologising = False
            try:
                await self.async_start(**self._start_kwargs)
            except Exception as err:  # noqa: BLE001 - the room must not stay silent
                self.engine.home.report_error(
                    self.room, "session", f"restart failed: {err}", recoverable=True
                )
                self.session = None
                retry = True
            else:
                retry = False
                if apologise:
                    self.apologise("session restarted")
        finally:
            self._restarting = False
        if retry and not self._closing:
            self._spawn(self._async_restart(apologise=apologise))

    async def _aclose_session(self, session: AgentSession[Any] | None) -> None:
        if session is not None:
            _LOGGER.debug("Room %s: closing the session", self.room)
            try:
                await session.aclose()
            except Exception:  # noqa: BLE001 - LiveKit re-raises the provider's error
                _LOGGER.debug("Room %s: the failed session closed with an error", self.room)
            _LOGGER.debug("Room %s: the session is closed", self.room)
        if self._vad is not None:
            await self._vad.aclose()  # what a half-done close left running
            self._vad = None
        await self._aclose_stt_adapter()

    def _turn_failed(self, why: str, *, speak: bool = True) -> None:
        if self._turn_failed_reported:
            return
        if (
            speak
            and why == "llm_error"
            and self._pending is None
            and self.session is not None
            and self.session.agent_state == "listening"
        ):
            # A preemptive generation failed while the user may still be talking: the
            # turn it belongs to is not committed yet. Count it (and apologise) then.
            self._deferred_failure = why
            return
        self._turn_failed_reported = True
        if self.breaker.record_failure():
            self.engine.home.report_error(
                self.room,
                "breaker",
                f"{self.breaker.failures} turns failed in a row ({why})",
                recoverable=False,
            )
        self._report_failed_turn(why)
        if speak:
            self.apologise(why)

    def _report_failed_turn(self, why: str) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.error = why
            pending.tools = self._tool_names()
            self.engine.home.report_turn(pending)

    def refuse_turn(self) -> None:
        """Answer a turn with the apology while the breaker is open."""
        self._report_failed_turn("breaker open")
        self.apologise("breaker open")

    def announce(self, text: str, *, chime: bool = False, interrupt: bool = False) -> bool:
        """Say `text` in the room now (a reminder, a timer); False when nobody listens.

        `interrupt` cuts off what the assistant is saying; otherwise the announcement
        waits for it. Either way the user can talk over it. The text joins the chat
        context, so "what did you just say?" works.
        """
        session = self.session
        if session is None or self._restarting:
            return False
        try:
            if interrupt:
                self._spawn(session.interrupt(force=True))
            if chime:
                session.say(
                    "", audio=self.engine.chime_audio(), allow_interruptions=True,
                    add_to_chat_ctx=False,
                )  # fmt: skip
            if self.engine.settings.mode == "realtime":
                # A speech-to-speech model has no separate voice: it reads the text out.
                session.generate_reply(
                    instructions=f"Say this to the room, word for word: {text}",
                    allow_interruptions=True,
                )
            else:
                session.say(text, allow_interruptions=True, add_to_chat_ctx=True)
        except RuntimeError as err:  # a session closing or starting
            _LOGGER.debug("Room %s: cannot announce: %s", self.room, err)
            return False
        return True

    async def start_conversation(self, text: str, context: str | None) -> bool:
        """Speak first, then listen: the answer is a turn like any other.

        `context` (why the assistant is asking) goes into the chat context for the
        model, not into the room.
        """
        session = self.session
        if session is None or self._restarting:
            return False
        if context:
            agent = session.current_agent
            chat_ctx = agent.chat_ctx.copy()
            chat_ctx.add_message(role="system", content=f"Why you are asking: {context}")
            await agent.update_chat_ctx(chat_ctx)
        return self.announce(text)

    def apologise(self, why: str) -> None:
        """Say the apology from pre-rendered audio: the failing provider is not needed."""
        if self.session is None or self._apologising:
            return
        self._apologising = True
        _LOGGER.debug("Room %s: apologising (%s)", self.room, why)
        text = self.engine.settings.apology
        handle = self.session.say(
            text,
            audio=self.engine.apology_audio(),
            allow_interruptions=True,
            add_to_chat_ctx=False,
        )

        def done(_: object) -> None:
            self._apologising = False

        handle.add_done_callback(done)

    async def _aclose_stt_adapter(self) -> None:
        # The adapter listens to the shared STT model's metrics until closed.
        if self._stt_adapter is not None:
            await self._stt_adapter.aclose()
            self._stt_adapter = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def tell_clients_tool(self, name: str, result: Any, *, ok: bool) -> None:
        """Show the people in the room what a tool did (the card's small result cards)."""
        room = self._rtc_room
        if room is None or not room.isconnected():
            return
        payload = json.dumps(
            {"tool": name, "summary": tool_summary(name, result, ok=ok), "success": ok},
            ensure_ascii=False,
        )
        self._spawn(self._publish(room, payload))

    async def _publish(self, room: rtc.Room, payload: str) -> None:
        try:
            await room.local_participant.publish_data(payload, reliable=True, topic=TOOL_TOPIC)
        except Exception as err:  # noqa: BLE001 - a lost packet must not end a turn
            _LOGGER.debug("Room %s: tool result not sent: %s", self.room, err)

    async def _on_interrupt_rpc(self, data: rtc.RpcInvocationData) -> str:
        """Stop talking: someone tapped Interrupt on a card."""
        _LOGGER.debug("Room %s: %s interrupted the assistant", self.room, data.caller_identity)
        if self.session is not None:
            self.session.interrupt()
        return "ok"

    async def aclose(self) -> None:
        """End the session and everything it started."""
        self._closing = True
        self._disarm_watchdog()
        if self._rtc_room is not None:
            try:
                self._rtc_room.local_participant.unregister_rpc_method(INTERRUPT_RPC)
            except Exception:  # noqa: BLE001 - a room already gone has nothing to undo
                _LOGGER.debug("Room %s: the interrupt method was already gone", self.room)
        await self._aclose_session(self.session)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def chime_pcm(rate: int) -> bytes:
    """Return a soft two-note chime (E6 then A5, 0.35 s) as 16-bit mono PCM."""
    notes = []
    for freq in (1318.5, 880.0):
        t = np.arange(int(0.175 * rate)) / rate
        envelope = np.minimum(1.0, t / 0.01) * np.exp(-t * 12)  # quick attack, bell decay
        notes.append(0.25 * 32767 * envelope * np.sin(2 * np.pi * freq * t))
    return bytes(np.concatenate(notes).astype("<i2").tobytes())


def _frames(pcm: bytes, rate: int) -> list[rtc.AudioFrame]:
    """Cut mono PCM into 20 ms frames (the last one padded with silence)."""
    samples = rate // 50
    return [
        rtc.AudioFrame(pcm[i : i + samples * 2].ljust(samples * 2, b"\0"), rate, 1, samples)
        for i in range(0, len(pcm), samples * 2)
    ]


class VoiceEngine:
    """Runs a session per room for one home; models and VAD are shared between rooms."""

    def __init__(
        self,
        home: Home,
        settings: VoiceSettings,
        *,
        vad: vad_mod.VAD,
        models: Models,
        breaker_retry_after: float = 30.0,
    ) -> None:
        """Use prepared models; see `async_create` to build them."""
        self.home = home
        self.settings = settings
        self.vad = vad
        self.models = models
        self.breaker_retry_after = breaker_retry_after
        self.sessions: dict[str, RoomSession] = {}
        self._apology: list[rtc.AudioFrame] = []
        self._chime = _frames(chime_pcm(CHIME_RATE), CHIME_RATE)

    @classmethod
    async def async_create(
        cls,
        home: Home,
        settings: VoiceSettings,
        *,
        vad: vad_mod.VAD,
        http_client: Any = None,
        http_session: aiohttp.ClientSession | None = None,
        run_blocking: Callable[..., Any] | None = None,
    ) -> VoiceEngine:
        """Build the models (off the loop unless the host lends its HTTP clients)."""
        if http_client is None:
            loop = asyncio.get_running_loop()
            models = await loop.run_in_executor(
                None, build_models, settings, None, http_session, home
            )
        else:
            models = build_models(settings, http_client, http_session, home)
        try:
            await models.warm_up()
        except BaseException:
            await models.aclose()
            raise
        engine = cls(home, settings, vad=vad, models=models)
        await engine._async_load_apology()
        return engine

    async def _async_load_apology(self) -> None:
        pcm, rate = await asyncio.get_running_loop().run_in_executor(None, read_wav, APOLOGY_WAV)
        self._apology = _frames(pcm, rate)

    def apology_audio(self) -> AsyncIterator[rtc.AudioFrame]:
        """Return the apology's audio as a fresh stream."""

        async def frames() -> AsyncIterator[rtc.AudioFrame]:
            for frame in self._apology:
                yield frame

        return frames()

    async def async_start_session(
        self,
        room: str,
        *,
        audio_input: io.AudioInput | None = None,
        audio_output: io.AudioOutput | None = None,
        rtc_room: rtc.Room | None = None,
        participant_identity: str | None = None,
    ) -> RoomSession:
        """Start (or return) the session of a room."""
        if (existing := self.sessions.get(room)) is not None:
            return existing
        session = RoomSession(self, room)
        self.sessions[room] = session
        try:
            await session.async_start(
                audio_input=audio_input,
                audio_output=audio_output,
                room=rtc_room,
                participant_identity=participant_identity,
            )
        except BaseException:
            self.sessions.pop(room, None)
            await session.aclose()
            raise
        return session

    def announce(
        self, room: str, text: str, *, chime: bool = False, interrupt: bool = False
    ) -> bool:
        """Say `text` in `room`; return False when the room has no session."""
        session = self.sessions.get(room)
        return session is not None and session.announce(text, chime=chime, interrupt=interrupt)

    async def start_conversation(self, room: str, text: str, context: str | None) -> bool:
        """Open a conversation in `room`; return False when the room has no session."""
        session = self.sessions.get(room)
        return session is not None and await session.start_conversation(text, context)

    def chime_audio(self) -> AsyncIterator[rtc.AudioFrame]:
        """Return the pre-announcement chime as a fresh stream."""

        async def frames() -> AsyncIterator[rtc.AudioFrame]:
            for frame in self._chime:
                yield frame

        return frames()

    async def async_end_session(self, room: str) -> bool:
        """End a room's session; return whether there was one."""
        session = self.sessions.pop(room, None)
        if session is None:
            return False
        await session.aclose()
        return True

    def update_turn_taking(self, turn: TurnTaking) -> None:
        """Apply new turn-taking settings to new turns without restarting sessions."""
        self.settings = replace(self.settings, turn_taking=turn)
        update = getattr(self.vad, "update_options", None)
        if update is not None:
            update(**vad_options(turn))
        realtime_update = getattr(self.models.llm, "update_options", None)
        if self.settings.mode == "realtime" and realtime_update is not None:
            # Running realtime sessions take it too (the plugin sends session.update).
            realtime_update(turn_detection=realtime_turn_detection(turn))
        for room_session in self.sessions.values():
            if room_session.session is not None:
                room_session.session.update_options(
                    endpointing_opts={
                        "min_delay": turn.min_endpointing_delay,
                        "max_delay": turn.max_endpointing_delay,
                    }
                )

    async def aclose(self) -> None:
        """End every session and close the models' clients."""
        for room in list(self.sessions):
            await self.async_end_session(room)
        await self.models.aclose()
