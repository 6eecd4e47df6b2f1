"""The external worker's protocol: what Home Assistant and a worker say to each other.

Home Assistant's side (`worker_api.py`) and the worker's (`ha_link.py`) both import
this module, so every command, event, error code and message shape is written once,
and what one side encodes the other decodes with the function next to it. It imports
nothing from Home Assistant: the worker runs without it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
import dataclasses
from enum import StrEnum
import math
from typing import Any, Final, Literal, NotRequired, TypedDict

from .home import Persona, RoomTools, ToolSpec, TurnReport, Usage
from .settings import LiveKitServer, VoiceSettings, settings_from_dict

# Bumped when a command or a message changes shape; a worker of another version is told.
PROTOCOL: Final = 2
PREFIX: Final = "shackleton/worker"


class Command(StrEnum):
    """A command a worker sends; all but `connect` name the entry it is bound to."""

    CONNECT = "connect"
    TOOLS = "tools"
    CALL_TOOL = "call_tool"
    CONVERSE = "converse"
    TRANSCRIBE = "transcribe"
    SYNTHESIZE = "synthesize"
    REPORT = "report"
    ACK = "ack"

    @property
    def message_type(self) -> str:
        """Return the WebSocket message type, `shackleton/worker/<command>`."""
        return f"{PREFIX}/{self.value}"


class Event(StrEnum):
    """An event Home Assistant pushes on a worker's `connect` subscription."""

    SETTINGS = "settings"
    CLOSING = "closing"  # the entry unloads or reloads: reconnect later
    LEAVE = "leave"
    ANNOUNCE = "announce"
    START_CONVERSATION = "start_conversation"
    ASK = "ask"


class ReportKind(StrEnum):
    """What a `report` command tells Home Assistant about a room."""

    SESSION = "session"
    STATE = "state"
    TURN = "turn"
    ERROR = "error"
    USAGE = "usage"  # what the providers did: the entry's, so its room is ""


# Error codes. The first three are Home Assistant's own WebSocket codes (a test keeps
# them so); a worker cannot mend any of the fatal ones by retrying.
ERR_UNAUTHORIZED: Final = "unauthorized"
ERR_NOT_FOUND: Final = "not_found"
ERR_NOT_ALLOWED: Final = "not_allowed"
ERR_PROTOCOL_MISMATCH: Final = "protocol_mismatch"
ERR_NOT_LOADED: Final = "not_loaded"
ERR_TOOL: Final = "tool_error"  # a refusal for the model to read, not a fault
FATAL_CODES: Final = frozenset(
    {ERR_UNAUTHORIZED, ERR_NOT_FOUND, ERR_NOT_ALLOWED, ERR_PROTOCOL_MISMATCH}
)

# The sample rates `transcribe` takes: the ones HA's speech-to-text metadata knows.
AUDIO_RATES: Final = (8000, 11000, 16000, 18900, 22000, 32000, 37800, 44100, 48000)


def agent_name(entry_id: str) -> str:
    """Return the LiveKit agent name an entry's workers register under (explicit dispatch)."""
    return f"shackleton-{entry_id}"


class ToolSpecMessage(TypedDict):
    """A tool as JSON: the fields of `ToolSpec`."""

    name: str
    description: str
    parameters: dict[str, Any]


class PersonaMessage(TypedDict):
    """The assistant a room talks to."""

    instructions: str
    language: str
    model: str
    voice: str


class ToolsResult(TypedDict):
    """The result of `tools`."""

    tools: list[ToolSpecMessage]
    guide: str
    persona: NotRequired[PersonaMessage]


class CallToolResult(TypedDict):
    """The result of `call_tool`."""

    result: Any


class ConverseResult(TypedDict):
    """The result of `converse`: the agent's reply and the intents or tools it used."""

    speech: str
    tools: list[str]


class TranscribeResult(TypedDict):
    """The result of `transcribe`."""

    text: str


class SynthesizeResult(TypedDict):
    """The result of `synthesize`: the audio's file extension, and the audio in base64."""

    extension: str
    audio: str


class HomeMessage(TypedDict):
    """The home, as the settings event names it."""

    name: str
    time_zone: str


class LiveKitMessage(TypedDict):
    """The entry's LiveKit server, and the agent name its workers register under."""

    url: str
    api_key: str
    api_secret: str
    agent_name: str


class SettingsMessage(TypedDict):
    """The `settings` event: everything a worker needs to serve the entry."""

    protocol: int
    entry_id: str
    title: str
    home: HomeMessage
    voice: dict[str, Any]  # `dataclasses.asdict` of VoiceSettings
    livekit: LiveKitMessage | None


class AnnounceEvent(TypedDict):
    """Say something in a room; the worker acks `id` with whether someone heard it."""

    type: Literal[Event.ANNOUNCE]
    id: str
    room: str
    text: str
    chime: bool
    interrupt: bool


class StartConversationEvent(TypedDict):
    """Speak first in a room and listen; the worker acks `id`."""

    type: Literal[Event.START_CONVERSATION]
    id: str
    room: str
    text: str
    context: str | None
    chime: bool


class AskEvent(TypedDict):
    """Ask a question in a room; the worker acks `id` with the answer heard.

    The ack's `ok` is False when nobody is in the room; its `answer` is None when
    nobody answered within `seconds` of the question's end. The utterance that
    answers goes to Home Assistant only, not to the model.
    """

    type: Literal[Event.ASK]
    id: str
    room: str
    text: str
    chime: bool
    seconds: float


def tools_result(tools: RoomTools) -> ToolsResult:
    """Encode a room's tools, guide and persona for `tools`."""
    result: ToolsResult = {
        "tools": [
            {"name": spec.name, "description": spec.description, "parameters": spec.parameters}
            for spec in tools.specs
        ],
        "guide": tools.guide,
    }
    if (persona := tools.persona) is not None:
        result["persona"] = {
            "instructions": persona.instructions,
            "language": persona.language,
            "model": persona.model,
            "voice": persona.voice,
        }
    return result


def room_tools(result: Mapping[str, Any]) -> RoomTools:
    """Decode the result of `tools` (an older Home Assistant sends no persona)."""
    persona = result.get("persona")
    return RoomTools(
        [ToolSpec(**tool) for tool in result["tools"]],
        str(result["guide"]),
        None if persona is None else Persona(**persona),
    )


def encode_audio(data: bytes) -> str:
    """Return audio as the base64 text `transcribe` and `synthesize` carry."""
    return base64.b64encode(data).decode()


def decode_audio(text: str) -> bytes:
    """Return the audio of base64 text; binascii.Error (a ValueError) when it is not."""
    return base64.b64decode(text, validate=True)


_TURN_FIELDS: Final = frozenset(field.name for field in dataclasses.fields(TurnReport)) - {"room"}


def turn_fields(report: TurnReport) -> dict[str, Any]:
    """Encode a turn for a `turn` report (the room goes beside it)."""
    fields = dataclasses.asdict(report)
    del fields["room"]
    return fields


def turn_report(room: str, fields: Mapping[str, Any]) -> TurnReport:
    """Decode a `turn` report; fields this side does not know (a newer worker's) are dropped."""
    return TurnReport(room=room, **{k: v for k, v in fields.items() if k in _TURN_FIELDS})


_USAGE_FIELDS: Final = frozenset(field.name for field in dataclasses.fields(Usage))


def usage_fields(usage: Usage) -> dict[str, Any]:
    """Encode a `usage` report."""
    return dataclasses.asdict(usage)


def usage_report(fields: Mapping[str, Any]) -> Usage:
    """Decode a `usage` report; ValueError for a count that is not a number >= 0.

    Fields this side does not know (a newer worker's) are dropped.
    """
    known = {k: v for k, v in fields.items() if k in _USAGE_FIELDS}
    for name, value in known.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"usage {name} is not a count: {value!r}")
    return Usage(**known)


def settings_message(
    *,
    entry_id: str,
    title: str,
    home_name: str,
    time_zone: str,
    voice: VoiceSettings,
    livekit: LiveKitServer | None,
) -> SettingsMessage:
    """Encode what a worker needs: voice settings (secrets included), home, LiveKit server."""
    return {
        "protocol": PROTOCOL,
        "entry_id": entry_id,
        "title": title,
        "home": {"name": home_name, "time_zone": time_zone},
        "voice": dataclasses.asdict(voice),
        "livekit": None
        if livekit is None
        else {
            "url": livekit.url,
            "api_key": livekit.api_key,
            "api_secret": livekit.api_secret,
            "agent_name": agent_name(entry_id),
        },
    }


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerSettings:
    """What Home Assistant tells a worker: voice settings, the home, the LiveKit server."""

    voice: VoiceSettings
    home_name: str
    time_zone: str
    title: str
    livekit: LiveKitMessage | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> WorkerSettings:
        """Decode the `settings` event."""
        return cls(
            voice=settings_from_dict(data["voice"]),
            home_name=data["home"]["name"],
            time_zone=data["home"]["time_zone"],
            title=data.get("title", "Shackleton"),
            livekit=data.get("livekit"),
        )
