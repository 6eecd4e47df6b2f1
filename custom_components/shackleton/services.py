"""Actions of Shackleton: voice sessions in LiveKit rooms, and forgetting notes."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.helpers import config_validation as cv
import voluptuous as vol

from .const import DOMAIN
from .models import ShackletonConfigEntry
from .voice.settings import ROOM_NAME

ATTR_CONFIG_ENTRY_ID = "config_entry_id"
ATTR_ROOM = "room"
SERVICE_START_SESSION = "start_session"
SERVICE_END_SESSION = "end_session"
SERVICE_FORGET = "forget"
ATTR_NOTE_ID = "note_id"
ATTR_ALL = "all"

SESSION_SCHEMA = vol.Schema(
    {vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string, vol.Required(ATTR_ROOM): cv.string}
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
    room = str(call.data[ATTR_ROOM]).strip()
    if not ROOM_NAME.fullmatch(room):
        raise _error("invalid_room", room=room)
    return room


async def _async_start_session(call: ServiceCall) -> None:
    entry = _entry(call.hass, call)
    room = _room(call)
    data = entry.runtime_data
    if not data.runtime.livekit_configured:
        raise _error("no_livekit_server", title=entry.title)
    if not data.runtime.voice_enabled:
        raise _error("voice_disabled", title=entry.title)
    if await data.voice.async_wait_ready() is None:
        raise _error("voice_unavailable", title=entry.title)
    data.voice.async_join_room(room)


async def _async_end_session(call: ServiceCall) -> None:
    entry = _entry(call.hass, call)
    room = _room(call)
    if not await entry.runtime_data.voice.async_leave_room(room):
        raise _error("no_session", room=room)


FORGET_SCHEMA = vol.Schema(
    {
        vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Exclusive(ATTR_NOTE_ID, "what"): vol.All(cv.ensure_list, [cv.string]),
        vol.Exclusive(ATTR_ALL, "what"): cv.boolean,
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
        SERVICE_FORGET,
        _async_forget,
        schema=FORGET_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
