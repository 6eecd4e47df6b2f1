"""The one interface between the voice engine and the home it serves."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final, Protocol


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call, described by a JSON schema."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Persona:
    """The assistant a room talks to: its instructions, language, model and voice."""

    instructions: str
    language: str
    # "": the engine's own language model / voice.
    model: str = ""
    voice: str = ""


@dataclass(frozen=True, slots=True)
class RoomTools:
    """The tools of one room, and what the model must know to use them well."""

    specs: list[ToolSpec]
    # Appended to the model's instructions; "" when there are no tools. For Home
    # Assistant: the LLM API's prompt (Assist's guidance, how spoken confirmations work),
    # which comes from the same API instance as the tools, hence one call for both.
    guide: str = ""
    # Who answers in the room (the tools are theirs); None: the engine's settings.
    persona: Persona | None = None


class ToolCallError(Exception):
    """A tool refused or failed; the message is for the model to recover from."""


# The longest a question the home asks a room may take to say; the wait for its
# answer starts after.
QUESTION_PLAYOUT_SECONDS: Final = 60.0


class NobodyListening(Exception):
    """The home asked a room a question, and the room has no session to ask it in."""


class QuestionPending(Exception):
    """The home asked a room a question while another one waits for its answer."""


@dataclass(frozen=True, slots=True)
class HomeContext:
    """What the assistant should know about where and when it is."""

    home_name: str
    language: str
    time_zone: str
    now: datetime
    user_name: str | None = None


@dataclass(slots=True)
class TurnReport:
    """The figures of one conversational turn (seconds; None when a stage did not run)."""

    room: str
    end_of_utterance_delay: float | None = None
    transcription_delay: float | None = None
    llm_ttft: float | None = None
    tts_ttfb: float | None = None
    end_to_end: float | None = None
    interrupted: bool = False
    tools: list[str] = field(default_factory=list)
    user_text: str | None = None
    agent_text: str | None = None
    error: str | None = None


@dataclass(slots=True)
class Usage:
    """Billable work the providers did since the last report (a delta, never a total).

    Counted from what each provider itself reported (LiveKit's usage metrics, the chat
    completion's `usage`); a stage that did not run reports 0.
    """

    llm_input_tokens: int = 0
    llm_output_tokens: int = 0
    stt_seconds: float = 0.0
    tts_characters: int = 0
    realtime_audio_input_tokens: int = 0
    realtime_audio_output_tokens: int = 0

    def __bool__(self) -> bool:
        """Return whether there is anything to count."""
        return any(getattr(self, usage.name) for usage in fields(self))


class Home(Protocol):
    """What the engine needs from the home: tools, context, and somewhere to report."""

    def context(self, room: str) -> HomeContext:
        """Return the current context for a room."""

    async def room_tools(self, room: str) -> RoomTools:
        """Return the tools the model may use in a room and the guide to using them."""

    async def call_tool(
        self, room: str, name: str, arguments: dict[str, Any], *, turn: int = 0
    ) -> Any:
        """Run a tool and return a JSON-serialisable result, or raise ToolCallError.

        `turn` numbers the room's user turns: a sensitive action confirmed in a later
        turn than it was asked in is what a spoken yes looks like to the home.
        """

    async def converse(
        self, room: str, text: str, agent_id: str, *, turn: int = 0
    ) -> tuple[str, list[str]]:
        """Hand a user's words to the home's conversation agent.

        Return its reply and the intents or tools it used (it runs them itself); a
        failure raises ToolCallError.
        """

    async def transcribe(self, engine: str, pcm: bytes, rate: int, language: str) -> str:
        """Transcribe mono 16-bit PCM with one of the home's speech-to-text engines.

        A failure raises ToolCallError.
        """

    async def synthesize(self, engine: str, text: str, language: str) -> tuple[str, bytes]:
        """Speak `text` with one of the home's text-to-speech engines.

        Return the audio's format (its file extension: wav, mp3…) and bytes; a failure
        raises ToolCallError.
        """

    def report_state(self, room: str, state: str) -> None:
        """Record the agent's state in a room (listening, thinking, speaking, idle)."""

    def report_turn(self, report: TurnReport) -> None:
        """Record a finished turn."""

    def report_error(self, room: str, source: str, message: str, *, recoverable: bool) -> None:
        """Record a provider or session fault."""

    def report_usage(self, usage: Usage) -> None:
        """Count what the providers did (the entry's, not a room's: models are shared)."""
