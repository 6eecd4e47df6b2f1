"""Actions of Shackleton: ask, announce, start a conversation, rooms, and forgetting notes."""

from __future__ import annotations

import time
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
from homeassistant.helpers import config_validation as cv
import probatio

from .announcements import Announcement
from .assistants import default_assistant
from .const import (
    CONF_ANNOUNCE_NOBODY,
    CONF_ANNOUNCE_QUEUE_MINUTES,
    DEFAULT_OPTIONS,
    DOMAIN,
    MAX_TEXT_LENGTH,
    NOBODY_POLICIES,
    PRIORITY_HIGH,
    PRIORITY_NORMAL,
)
from .conversation import ShackletonConversationEntity
from .models import ShackletonConfigEntry
from .voice.settings import ROOM_NAME

# What is said aloud: an announcement, or the first words of a conversation.
MAX_SPOKEN_LENGTH = 1000
ATTR_CONFIG_ENTRY_ID = "config_entry_id"
ATTR_ROOM = "room"
SERVICE_START_SESSION = "start_session"
SERVICE_END_SESSION = "end_session"
SERVICE_FORGET = "forget"
SERVICE_ASK = "ask"
SERVICE_ANNOUNCE = "announce"
SERVICE_START_CONVERSATION = "start_conversation"
ATTR_TEXT = "text"
ATTR_CONTEXT = "context"
ATTR_CONVERSATION_ID = "conversation_id"
ATTR_LANGUAGE = "language"
ATTR_MESSAGE = "message"
ATTR_ROOMS = "rooms"
ATTR_REPHRASE = "rephrase"
ATTR_CHIME = "chime"
ATTR_PRIORITY = "priority"
ATTR_NOBODY = "when_nobody_listens"
ATTR_QUEUE_MINUTES = "queue_minutes"
ATTR_NOTE_ID = "note_id"
ATTR_ALL = "all"

SESSION_SCHEMA = probatio.Schema(
    {probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string, probatio.Required(ATTR_ROOM): cv.string}
)


def _error(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


def _entry(hass: HomeAssistant, call: ServiceCall) -> ShackletonConfigEntry:
    """Return the loaded entry an action is for; which one may be left out if only one."""
    if entry_id := call.data.get(ATTR_CONFIG_ENTRY_ID):
        entry: ShackletonConfigEntry | None = hass.config_entries.async_get_entry(entry_id)
        if entry is None or entry.domain != DOMAIN:
            raise _error("entry_not_found", entry_id=entry_id)
        if entry.state is not ConfigEntryState.LOADED:
            raise _error("entry_not_loaded", title=entry.title)
        return entry
    loaded = hass.config_entries.async_loaded_entries(DOMAIN)
    if len(loaded) != 1:
        raise _error("entry_required")
    return loaded[0]


def _room(call: ServiceCall) -> str:
    return _valid_room(str(call.data[ATTR_ROOM]))


def _valid_room(name: str) -> str:
    room = name.strip()
    if not ROOM_NAME.fullmatch(room):
        raise _error("invalid_room", room=_quoted(room))
    return room


def _quoted(value: str, limit: int = 64) -> str:
    """Return user input fit to quote in an error: a long one is cut, with an ellipsis."""
    return value if len(value) <= limit else f"{value[: limit - 1]}…"


def _text(call: ServiceCall, field: str, limit: int = MAX_TEXT_LENGTH) -> str:
    """Return a text field, refusing one that is blank or too long (before any model)."""
    text = str(call.data.get(field) or "").strip()
    if not text:
        raise _error("text_empty")
    if len(text) > limit:
        raise _error("text_too_long", length=str(len(text)), limit=str(limit))
    return text


def _known_room(entry: ShackletonConfigEntry, name: str) -> str:
    """Return a room the assistant has served (or serves now); anything else is a typo."""
    room = _valid_room(name)
    data = entry.runtime_data
    known = {*data.rooms.rooms, *data.voice.active_rooms}
    if room not in known:
        raise _error("unknown_room", room=room, rooms=", ".join(sorted(known)) or "-")
    return room


def _agent(entry: ShackletonConfigEntry) -> ShackletonConversationEntity:
    """Return the entry's first assistant's agent (each has its own for conversation.*)."""
    agent = entry.runtime_data.agents.get(default_assistant(entry).subentry_id)
    if agent is None or agent.entity_id is None:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="agent_unavailable",
            translation_placeholders={"title": entry.title},
        )
    return agent


ASK_SCHEMA = probatio.Schema(
    {
        probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        probatio.Required(ATTR_TEXT): cv.string,
        probatio.Optional(ATTR_CONVERSATION_ID): cv.string,
        probatio.Optional(ATTR_CONTEXT): cv.string,
        probatio.Optional(ATTR_LANGUAGE): cv.string,
    }
)


async def _async_ask(call: ServiceCall) -> ServiceResponse:
    """Ask the assistant in text; answer with its reply, tool calls and conversation id."""
    text = _text(call, ATTR_TEXT)
    if ATTR_CONTEXT in call.data:
        _text(call, ATTR_CONTEXT)
    entry = _entry(call.hass, call)
    agent = _agent(entry)
    result, answer = await agent.async_ask(
        text,
        conversation_id=call.data.get(ATTR_CONVERSATION_ID),
        context=call.context,
        language=call.data.get(ATTR_LANGUAGE),
        extra_system_prompt=call.data.get(ATTR_CONTEXT),
    )
    speech = str(result.response.speech.get("plain", {}).get("speech", ""))
    if answer is None or answer.error is not None:
        error = answer.error if answer else None
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="ask_failed",
            translation_placeholders={"error": str(error) if error else speech},
        ) from error
    response: dict[str, Any] = {
        "response": speech,
        "conversation_id": result.conversation_id,
        "continue_conversation": result.continue_conversation,
        "tool_calls": [record.as_dict() for record in answer.tool_calls],
    }
    return response


ANNOUNCE_SCHEMA = probatio.Schema(
    {
        probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        probatio.Required(ATTR_MESSAGE): cv.string,
        probatio.Optional(ATTR_ROOMS): probatio.All(cv.ensure_list, [cv.string]),
        probatio.Optional(ATTR_REPHRASE, default=False): cv.boolean,
        probatio.Optional(ATTR_CHIME, default=False): cv.boolean,
        probatio.Optional(ATTR_PRIORITY, default=PRIORITY_NORMAL): probatio.In(
            [PRIORITY_NORMAL, PRIORITY_HIGH]
        ),
        probatio.Optional(ATTR_NOBODY): probatio.In(NOBODY_POLICIES),
        probatio.Optional(ATTR_QUEUE_MINUTES): probatio.All(
            probatio.Coerce(float), probatio.Range(min=1, max=1440)
        ),
    }
)


async def _async_message(
    entry: ShackletonConfigEntry, call: ServiceCall, message: str
) -> tuple[str, bool]:
    """Return the words to say, rephrased by the persona when asked (and when it can)."""
    if not call.data.get(ATTR_REPHRASE):
        return message, False
    agent = _agent(entry)
    rewritten = await agent.async_rewrite(message, call.hass.config.language)
    return (rewritten, True) if rewritten else (message, False)


async def _async_announce(call: ServiceCall) -> ServiceResponse:
    """Speak into rooms; say per room whether it was spoken, queued, notified or dropped."""
    message = _text(call, ATTR_MESSAGE, MAX_SPOKEN_LENGTH)
    entry = _entry(call.hass, call)
    rooms = [_known_room(entry, room) for room in call.data.get(ATTR_ROOMS, [])]
    options = {**DEFAULT_OPTIONS, **entry.options}
    policy = call.data.get(ATTR_NOBODY) or str(options[CONF_ANNOUNCE_NOBODY])
    minutes = call.data.get(ATTR_QUEUE_MINUTES) or float(options[CONF_ANNOUNCE_QUEUE_MINUTES])
    text, rephrased = await _async_message(entry, call, message)
    announcement = Announcement(
        text=text,
        chime=call.data[ATTR_CHIME],
        priority=call.data[ATTR_PRIORITY],
        expires_at=time.monotonic() + 60 * minutes,
    )
    outcomes = entry.runtime_data.voice.async_announce(rooms or None, announcement, policy)
    response: dict[str, Any] = {"message": text, "rephrased": rephrased, "rooms": outcomes}
    return response


START_CONVERSATION_SCHEMA = probatio.Schema(
    {
        probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        probatio.Required(ATTR_ROOM): cv.string,
        probatio.Required(ATTR_MESSAGE): cv.string,
        probatio.Optional(ATTR_CONTEXT): cv.string,
        probatio.Optional(ATTR_REPHRASE, default=False): cv.boolean,
    }
)


async def _async_start_conversation(call: ServiceCall) -> ServiceResponse:
    """Speak first in a room, then listen for the answer."""
    message = _text(call, ATTR_MESSAGE, MAX_SPOKEN_LENGTH)
    entry = _entry(call.hass, call)
    room = _known_room(entry, call.data[ATTR_ROOM])
    text, rephrased = await _async_message(entry, call, message)
    if not await entry.runtime_data.voice.async_start_conversation(
        room, text, call.data.get(ATTR_CONTEXT)
    ):
        raise _error("nobody_in_room", room=room)
    return {"room": room, "message": text, "rephrased": rephrased}


async def _async_start_session(call: ServiceCall) -> None:
    entry = _entry(call.hass, call)
    room = _room(call)
    data = entry.runtime_data
    if not data.runtime.livekit_configured:
        raise _error("no_livekit_server", title=entry.title)
    if not data.runtime.voice_enabled:
        raise _error("voice_disabled", title=entry.title)
    # An external entry's workers wait for LiveKit's dispatch, which joining asks for.
    if not await data.voice.async_ready():
        raise _error("voice_unavailable", title=entry.title)
    data.voice.async_join_room(room)


async def _async_end_session(call: ServiceCall) -> None:
    entry = _entry(call.hass, call)
    room = _room(call)
    if not await entry.runtime_data.voice.async_leave_room(room):
        raise _error("no_session", room=room)


FORGET_SCHEMA = probatio.Schema(
    {
        probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        probatio.Exclusive(ATTR_NOTE_ID, "what"): probatio.All(cv.ensure_list, [cv.string]),
        probatio.Exclusive(ATTR_ALL, "what"): cv.boolean,
    }
)


async def _async_forget(call: ServiceCall) -> ServiceResponse:
    # Notes are every user's: only an administrator (or an automation) may wipe them.
    if call.context.user_id is not None:
        user = await call.hass.auth.async_get_user(call.context.user_id)
        if user is None or not user.is_admin:
            raise Unauthorized(context=call.context)
    entry = _entry(call.hass, call)
    notes = entry.runtime_data.notes
    if call.data.get(ATTR_ALL):
        gone = await notes.async_clear()
    elif note_ids := call.data.get(ATTR_NOTE_ID):
        if missing := set(note_ids) - set(notes.notes):
            raise _error("note_not_found", note_id=", ".join(sorted(missing)))
        gone = await notes.async_delete(note_ids)
    else:
        raise _error("forget_what")
    return {"forgotten": [{"id": note.id, "text": note.text} for note in gone]}


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions (once, for every entry)."""
    hass.services.async_register(
        DOMAIN, SERVICE_START_SESSION, _async_start_session, schema=SESSION_SCHEMA
    )
    hass.services.async_register(
        DOMAIN, SERVICE_END_SESSION, _async_end_session, schema=SESSION_SCHEMA
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_ASK,
        _async_ask,
        schema=ASK_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_ANNOUNCE,
        _async_announce,
        schema=ANNOUNCE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_START_CONVERSATION,
        _async_start_conversation,
        schema=START_CONVERSATION_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_FORGET,
        _async_forget,
        schema=FORGET_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
