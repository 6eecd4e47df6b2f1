"""The voice engine: one LiveKit AgentSession per room, talking to a `Home`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
from livekit import rtc
from livekit.agents import Agent, AgentSession, llm, stt as stt_mod, vad as vad_mod
from livekit.agents.llm import StopResponse, ToolError, function_tool
from livekit.agents.types import NOT_GIVEN
from livekit.agents.voice import SpeechHandle, io
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
from .home import (
    QUESTION_PLAYOUT_SECONDS,
    Home,
    HomeContext,
    NobodyListening,
    QuestionPending,
    ToolCallError,
    ToolSpec,
    Usage,
)
from .local_audio import read_wav
from .providers import (
    AnswerLost,
    Models,
    Variant,
    build_models,
    connect_options,
    realtime_turn_detection,
)
from .recovery import Breaker, Recovery
from .settings import TurnTaking, VoiceSettings, persona
from .shared_vad import SharedVAD
from .turns import TurnTracker
from .usage import ModelUsage, RealtimeUsage

_LOGGER = logging.getLogger(__name__)
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
        session.turns.tool_called(spec.name)
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


class ShackletonAgent(Agent):
    """The assistant of one room."""

    def __init__(
        self,
        session: RoomSession,
        instructions: str,
        tools: list[Any],
        own: Variant = Variant(),  # noqa: B008 - an immutable tuple of Nones
    ) -> None:
        """Make the agent; `session` decides whether a turn may reach the LLM.

        `own` holds the room's assistant's language model and voice where they differ
        from the session's.
        """
        super().__init__(
            instructions=instructions,
            tools=tools,
            llm=own.llm or NOT_GIVEN,
            tts=own.tts or NOT_GIVEN,
        )
        self._room_session = session

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        """Skip the LLM while the circuit breaker is open; apologise at once instead.

        A room's conversation never ends, so its history is kept to the last
        HISTORY_ITEMS items: a day of turns must not grow every prompt (and the bill).
        A turn that answers a question the home asked (`RoomSession.ask`) is the
        home's, not the model's: it is handed over and gets no reply.
        """
        if self._room_session.take_answer(new_message.text_content):
            raise StopResponse
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
        """Call the model unless the breaker is open (preemptive calls included).

        Nor while the room is answering the home's question: a preemptive call on
        the answer's words would be paid for and thrown away.
        """
        if self._room_session.awaiting_answer or not self._room_session.breaker.allow():
            return
        async for chunk in Agent.default.llm_node(self, chat_ctx, tools, model_settings):
            yield chunk


class RoomSession:
    """An AgentSession serving one room: LiveKit's events drive its turns and recovery."""

    def __init__(self, engine: VoiceEngine, room: str) -> None:
        """Prepare the session; `async_start` runs it."""
        self.engine = engine
        self.room = room
        self.session: AgentSession[Any] | None = None
        self.turns = TurnTracker(room, engine.home.report_turn)
        self.recovery = Recovery(
            room,
            engine.home,
            breaker=Breaker(
                engine.settings.limits.breaker_threshold, lambda: engine.breaker_retry_after
            ),
            turn_deadline=lambda: engine.settings.limits.turn_deadline,
            on_timeout=self._on_timeout,
        )
        self.closed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._start_kwargs: dict[str, Any] = {}
        self._stt_adapter: stt_mod.StreamAdapter | None = None
        self._vad: SharedVAD | None = None
        self._rtc_room: rtc.Room | None = None
        # The home asked a question (`ask`): the room's next utterance answers it.
        self._answer: asyncio.Future[str] | None = None
        self._realtime_usage = RealtimeUsage(engine.report_usage)

    @property
    def turn(self) -> int:
        """Return the number of user turns so far."""
        return self.turns.turn

    @property
    def breaker(self) -> Breaker:
        """Return the circuit breaker of the room's model calls."""
        return self.recovery.breaker

    @property
    def restarts(self) -> int:
        """Return how many times the room's session was restarted."""
        return self.recovery.restarts

    @property
    def start_arguments(self) -> dict[str, Any]:
        """Return what the session was started with: its audio, or its LiveKit room."""
        return dict(self._start_kwargs)

    # --- starting: build the session, build the agent, attach the room ----------------

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
        llm_model = self._room_llm()
        session = self._build_session(llm_model, audio_input, audio_output)
        agent = await self._build_agent(conversation=isinstance(llm_model, ConversationAgentLLM))
        await self._attach(session, agent, room, participant_identity)

    def _room_llm(self) -> llm.LLM[Any] | llm.RealtimeModel:
        llm_model = self.engine.models.llm
        if isinstance(llm_model, ConversationAgentLLM):
            # The home's agent answers (and acts) for this room, a turn at a time.
            return llm_model.for_room(self.room, lambda: self.turns.turn, self.turns.tools_ran)
        return llm_model

    def _build_session(
        self,
        llm_model: llm.LLM[Any] | llm.RealtimeModel,
        audio_input: io.AudioInput | None,
        audio_output: io.AudioOutput | None,
    ) -> AgentSession[Any]:
        settings = self.engine.settings
        limits = settings.limits
        # One silero pass serves turn-taking and speech-to-text (see shared_vad.py).
        vad = self._vad = SharedVAD(self.engine.vad)
        session: AgentSession[Any] = AgentSession(
            vad=vad,
            stt=self._room_stt(vad) or NOT_GIVEN,
            llm=llm_model,
            tts=self.engine.models.tts or NOT_GIVEN,
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
        self._realtime_usage.restart()
        for event, handler in self._handlers():
            session.on(event, handler)
        if audio_input is not None:
            session.input.audio = audio_input
        if audio_output is not None:
            session.output.audio = audio_output
        return session

    def _room_stt(self, vad: SharedVAD) -> stt_mod.STT[Any] | None:
        stt_model = self.engine.models.stt
        if stt_model is not None and not stt_model.capabilities.streaming:
            # A batch STT transcribes what the shared VAD cut out.
            stt_model = self._stt_adapter = stt_mod.StreamAdapter(stt=stt_model, vad=vad.follower)
        return stt_model

    async def _build_agent(self, *, conversation: bool) -> ShackletonAgent:
        home = self.engine.home
        settings, context = self.engine.settings, home.context(self.room)
        if conversation:  # a conversation agent brings its own tools and persona
            return ShackletonAgent(self, build_instructions(settings, context), [])
        room_tools = await home.room_tools(self.room)
        tools = [_make_tool(self, spec) for spec in room_tools.specs]
        if (persona := room_tools.persona) is None:
            own = Variant()
        else:  # the room's assistant: its words, language, and its model and voice
            settings = replace(settings, instructions=persona.instructions)
            context = replace(context, language=persona.language)
            realtime = settings.mode == "realtime"
            own = (
                Variant()
                if realtime
                else self.engine.models.for_persona(persona.model, persona.voice)
            )
            self.engine.watch_usage(own)
        instructions = build_instructions(settings, context, room_tools.guide)
        return ShackletonAgent(self, instructions, tools, own)

    async def _attach(
        self,
        session: AgentSession[Any],
        agent: ShackletonAgent,
        room: rtc.Room | None,
        participant_identity: str | None,
    ) -> None:
        if room is None:
            await session.start(agent, record=False)
            return
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

    def _handlers(self) -> list[tuple[Any, Callable[..., None]]]:
        handlers: list[tuple[Any, Callable[..., None]]] = [
            ("agent_state_changed", self._on_agent_state),
            ("user_state_changed", self._on_user_state),
            ("conversation_item_added", self._on_item),
            ("function_tools_executed", self._on_tools),
            ("error", self._on_error),
            ("close", self._on_close),
        ]
        if self.engine.settings.mode == "realtime":
            # The room's own realtime session: its totals are this room's alone (usage.py).
            handlers.append(("session_usage_updated", self._realtime_usage.on_usage))
        return handlers

    # --- LiveKit's events: the turns --------------------------------------------------

    def touch(self) -> None:
        """Note progress (a tool ran): the watchdog waits afresh."""
        self.recovery.watchdog.touch()

    def _on_agent_state(self, ev: AgentStateChangedEvent) -> None:
        if ev.new_state == "speaking":
            self.turns.agent_spoke()
        self.engine.home.report_state(self.room, ev.new_state)
        if ev.new_state == "thinking":
            self.turns.thinking()
            self.recovery.watchdog.arm()
            return
        self.recovery.watchdog.disarm()
        if (
            ev.old_state == "thinking"
            and ev.new_state == "listening"
            and self.turns.is_unanswered()
            # Not a barge-in: talking over a thinking agent also ends its thinking.
            and self.session is not None
            and self.session.user_state != "speaking"
        ):
            # The model answered with nothing (no words, no tool): the user would hear
            # silence, as if unheard. It is a failed turn like any other.
            self._turn_failed("llm_empty")

    def _on_user_state(self, ev: UserStateChangedEvent) -> None:
        if ev.new_state == "listening":
            self.turns.user_stopped(ev.created_at)
        if ev.new_state == "speaking":
            self.turns.user_started()
            # The last turn's wait ends: this one is watched from its own commit.
            self.recovery.watchdog.disarm()

    def _on_tools(self, ev: FunctionToolsExecutedEvent) -> None:
        self.turns.tools_executed()
        self.touch()

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage):
            return
        if item.role == "user":
            self._on_user_item(item)
        elif item.role == "assistant" and self.turns.answer(
            item.text_content, item.metrics, interrupted=item.interrupted
        ):
            self.recovery.turn_succeeded()

    def _on_user_item(self, item: llm.ChatMessage) -> None:
        deferred = self.turns.user_committed(
            item.text_content,
            end_of_utterance_delay=item.metrics.get("end_of_turn_delay"),
            transcription_delay=item.metrics.get("transcription_delay"),
        )
        if deferred is not None:
            # Its preemptive generation already failed: this turn gets no answer.
            self._turn_failed(deferred)
        elif not self.turns.answered:
            # Watch for the answer from the committed turn on, not only while
            # "thinking": a realtime model never thinks, and a preemptive reply that
            # stalled may never get there either. (A realtime transcript can also
            # arrive after the answer began: then there is none to wait for.)
            self.recovery.watchdog.arm()

    def _turn_failed(self, why: str, *, speak: bool = True) -> None:
        # A preemptive generation that failed while the user may still be talking
        # belongs to a turn not committed yet: count it (and apologise) then.
        defer = (
            speak
            and why == "llm_error"
            and self.session is not None
            and self.session.agent_state == "listening"
        )
        if not self.turns.fail(why, defer=defer):
            return
        # The apology answers the turn: a watchdog still waiting for the model (it is
        # disarmed only when the agent speaks) would cut the apology off when it fires.
        self.recovery.watchdog.disarm()
        self.recovery.turn_failed(why)
        self.turns.report_failure(why)
        if speak:
            self.apologise(why)

    def refuse_turn(self) -> None:
        """Answer a turn with the apology while the breaker is open."""
        self.turns.report_failure("breaker open")
        self.apologise("breaker open")

    # --- LiveKit's events: faults -----------------------------------------------------

    def _on_timeout(self) -> None:
        if self.session is not None:
            self._spawn(self.session.interrupt(force=True))
        self._turn_failed("timeout")

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
        if self.engine.settings.mode == "realtime" and not self.recovery.closing:
            # The realtime connection is gone for good, and LiveKit 1.5.16's own close
            # then fails half-way without a "close" event: restart the room ourselves.
            talking = self.turns.pending is not None
            self._turn_failed(source, speak=False)
            self._spawn(self._async_restart(apologise=talking))
            return
        if source == "stt_error" and not self.recovery.closing:
            # The STT failed past its retries. LiveKit 1.8 only counts that against
            # `max_unrecoverable_errors`, which we lift for the LLM and TTS (the breaker
            # handles them), and retries the stream on its own: restart the room instead,
            # with a fresh session, and apologise for the words it lost.
            self._turn_failed(source, speak=False)
            self._spawn(self._async_restart(apologise=True))
            return
        self._turn_failed(source)

    def _on_close(self, ev: CloseEvent) -> None:
        self.recovery.watchdog.disarm()
        if ev.reason == CloseReason.ERROR and not self.recovery.closing:
            # LiveKit closed the session on an error (one `_on_error` did not restart the
            # room for: with our tolerance, none of the STT/LLM/TTS kinds); the room must
            # not go deaf.
            self.engine.home.report_error(self.room, "session", str(ev.error), recoverable=True)
            self._turn_failed("session", speak=False)
            self._spawn(self._async_restart(apologise=True))
            return
        self.engine.home.report_state(self.room, "idle")
        self.closed.set()

    # --- restarting -------------------------------------------------------------------

    async def _async_restart(self, *, apologise: bool) -> None:
        if await self.recovery.restart(self._stop_for_restart, self._start_again) and apologise:
            self.apologise("session restarted")

    async def _stop_for_restart(self) -> None:
        old, self.session = self.session, None
        if old is not None:
            # What the failed session says while it closes is not this room's news.
            for event, handler in self._handlers():
                old.off(event, handler)
        await self._aclose_session(old)

    async def _start_again(self) -> bool:
        self.turns.apology_done()  # the old session's apology went with it
        try:
            await self.async_start(**self._start_kwargs)
        except Exception as err:  # noqa: BLE001 - the room must not stay silent
            self.engine.home.report_error(
                self.room, "session", f"restart failed: {err}", recoverable=True
            )
            self.session = None
            return False
        return True

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

    async def _aclose_stt_adapter(self) -> None:
        # The adapter listens to the shared STT model's metrics until closed.
        if self._stt_adapter is not None:
            await self._stt_adapter.aclose()
            self._stt_adapter = None

    # --- speaking ---------------------------------------------------------------------

    def announce(self, text: str, *, chime: bool = False, interrupt: bool = False) -> bool:
        """Say `text` in the room now (a reminder, a timer); False when nobody listens.

        `interrupt` cuts off what the assistant is saying; otherwise the announcement
        waits for it. Either way the user can talk over it. The text joins the chat
        context, so "what did you just say?" works.
        """
        return self._speak(text, chime=chime, interrupt=interrupt) is not None

    def _speak(self, text: str, *, chime: bool, interrupt: bool) -> SpeechHandle | None:
        """Say `text` (after the chime); return its speech, or None when nobody listens."""
        session = self.session
        if session is None or self.recovery.restarting:
            return None
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
                return session.generate_reply(
                    instructions=f"Say this to the room, word for word: {text}",
                    allow_interruptions=True,
                )
            return session.say(text, allow_interruptions=True, add_to_chat_ctx=True)
        except RuntimeError as err:  # a session closing or starting
            _LOGGER.debug("Room %s: cannot announce: %s", self.room, err)
            return None

    async def async_refresh_agent(self) -> None:
        """Hand the room to its assistant as the home describes it now (a new choice)."""
        if self.session is None or isinstance(self.engine.models.llm, ConversationAgentLLM):
            return
        self.session.update_agent(await self._build_agent(conversation=False))

    async def start_conversation(
        self, text: str, context: str | None, *, chime: bool = False
    ) -> bool:
        """Speak first, then listen: the answer is a turn like any other.

        `context` (why the assistant is asking) goes into the chat context for the
        model, not into the room.
        """
        session = self.session
        if session is None or self.recovery.restarting:
            return False
        if context:
            agent = session.current_agent
            chat_ctx = agent.chat_ctx.copy()
            chat_ctx.add_message(role="system", content=f"Why you are asking: {context}")
            await agent.update_chat_ctx(chat_ctx)
        return self.announce(text, chime=chime)

    @property
    def awaiting_answer(self) -> bool:
        """Return whether the room's next utterance answers the home's question."""
        return self._answer is not None and not self._answer.done()

    def take_answer(self, text: str | None) -> bool:
        """Hand an utterance to the question waiting for it; False when none waits."""
        if not self.awaiting_answer or not text or self._answer is None:
            return False
        self._answer.set_result(text)
        return True

    async def ask(self, text: str, *, chime: bool, seconds: float) -> str | None:
        """Ask `text`; return what the room answers, heard but not answered by the model.

        The wait is `seconds` from the end of the question (an answer that talks over
        it counts too); None when nobody answered by then. Raises `NobodyListening`
        when the room has no session, `QuestionPending` while another question waits.
        """
        if self.awaiting_answer:
            raise QuestionPending(self.room)
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._answer = answer
        try:
            speech = self._speak(text, chime=chime, interrupt=False)
            if speech is None:
                raise NobodyListening(self.room)
            playout = asyncio.ensure_future(speech.wait_for_playout())
            either: set[asyncio.Future[Any]] = {answer, playout}
            try:
                # A question that never ends playing (its speech stuck) is bounded too.
                await asyncio.wait(
                    either,
                    timeout=QUESTION_PLAYOUT_SECONDS,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                playout.cancel()
            async with asyncio.timeout(seconds):
                return await answer
        except TimeoutError:
            return None
        finally:
            if self._answer is answer:  # a newer question keeps its own wait
                self._answer = None

    def apologise(self, why: str) -> None:
        """Say the apology from pre-rendered audio: the failing provider is not needed."""
        if self.session is None or not self.turns.start_apology():
            return
        _LOGGER.debug("Room %s: apologising (%s)", self.room, why)
        text = self.engine.settings.apology
        handle = self.session.say(
            text,
            audio=self.engine.apology_audio(),
            allow_interruptions=True,
            add_to_chat_ctx=False,
        )
        handle.add_done_callback(lambda _: self.turns.apology_done())

    # --- the room's clients and tasks -------------------------------------------------

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
        self.recovery.close()
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
        self._model_usage = ModelUsage(self.report_usage)
        self._model_usage.watch(models.stt, models.llm, models.tts)

    def watch_usage(self, variant: Variant) -> None:
        """Count a persona's own language model and voice like the shared ones."""
        self._model_usage.watch(variant.llm, variant.tts)

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

    async def async_refresh_room(self, room: str) -> None:
        """Give a room with a session its assistant as the home describes it now."""
        if (session := self.sessions.get(room)) is not None:
            await session.async_refresh_agent()

    async def start_conversation(
        self, room: str, text: str, context: str | None, *, chime: bool = False
    ) -> bool:
        """Open a conversation in `room`; return False when the room has no session."""
        session = self.sessions.get(room)
        return session is not None and await session.start_conversation(text, context, chime=chime)

    async def ask(self, room: str, text: str, *, chime: bool, seconds: float) -> str | None:
        """Ask `text` in `room` and return the answer; see `RoomSession.ask`."""
        session = self.sessions.get(room)
        if session is None:
            raise NobodyListening(room)
        return await session.ask(text, chime=chime, seconds=seconds)

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

    def report_usage(self, usage: Usage) -> None:
        """Hand what a provider did to the home; counting never fails a turn."""
        try:
            self.home.report_usage(usage)
        except Exception:  # noqa: BLE001 - a home that cannot count still gets its answer
            _LOGGER.warning("The home could not count %s", usage, exc_info=True)

    async def aclose(self) -> None:
        """End every session and close the models' clients."""
        for room in list(self.sessions):
            await self.async_end_session(room)
        self._model_usage.close()
        await self.models.aclose()
