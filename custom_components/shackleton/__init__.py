"""Shackleton: a real-time LiveKit voice assistant for Home Assistant."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers import (
    config_validation as cv,
    device_registry as dr,
    entity_registry as er,
    issue_registry as ir,
)

# Not `helpers.llm` as `llm`: importing our own llm.py (HA's tools platform) binds that
# name on this package, replacing the helper.
from homeassistant.helpers.llm import async_register_api
from homeassistant.helpers.typing import ConfigType

from .announcements import queue_store
from .assistants import assistant_subentry
from .card import async_register_card
from .const import (
    ASSISTANT_KEYS,
    CONF_CONFIRM_DOMAINS,
    DEFAULT_ASSISTANT,
    DOMAIN,
    ISSUE_NO_LIVEKIT,
    TURN_TAKING_OPTIONS,
    migrate_confirm_domains,
)
from .livekit_server import LiveKitInvalidAuth, LiveKitLink
from .livekit_webhook import async_register_webhook
from .models import ShackletonConfigEntry, ShackletonData, ShackletonRuntime
from .repairs import async_clear_all, async_clear_issue, async_raise_issue
from .room_devices import RoomDevices
from .services import async_setup_services
from .storage import async_remove_store
from .tools.api import ShackletonAPI
from .tools.notes import NoteStore, async_get_embedder
from .tools.reminders import ReminderStore
from .usage import UsageMeter, usage_store
from .voice_config import livekit_server
from .voice_manager import VoiceManager
from .worker_api import async_register_worker_api

PLATFORMS: list[Platform] = [
    Platform.AI_TASK,
    Platform.ASSIST_SATELLITE,
    Platform.BINARY_SENSOR,
    Platform.CONVERSATION,
    Platform.NOTIFY,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.TODO,
]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions and the dashboard card, which serve every entry."""
    async_setup_services(hass)
    async_register_worker_api(hass)
    await async_register_card(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: ShackletonConfigEntry) -> bool:
    """Set up Shackleton from a config entry."""
    server = livekit_server(entry)
    runtime = ShackletonRuntime(livekit_configured=server is not None)
    link: LiveKitLink | None = None
    if server is not None:
        async_clear_issue(hass, ISSUE_NO_LIVEKIT, entry.entry_id)
        link = LiveKitLink(hass, entry, runtime, server)
        try:
            # A refused key stops set-up and starts reauth. An unreachable server does
            # not: text, tools and announcements work without it, and the link retries.
            await link.async_first_check()
        except LiveKitInvalidAuth as err:
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN, translation_key="livekit_invalid_auth"
            ) from err
    else:
        async_raise_issue(
            hass, ISSUE_NO_LIVEKIT, entry.entry_id, ir.IssueSeverity.WARNING, {"title": entry.title}
        )

    voice = VoiceManager(hass, entry, runtime, server)
    await voice.async_load()
    api = ShackletonAPI.for_entry(hass, entry)
    notes = NoteStore(hass, entry.entry_id, async_get_embedder(hass))
    await notes.async_load()
    reminders = ReminderStore(hass, entry.entry_id, voice.announce, api.transcripts_allowed)
    await reminders.async_load()
    entry.async_on_unload(reminders.async_stop)
    rooms = RoomDevices(hass, entry, lambda room: room in voice.active_rooms)
    await rooms.async_load()
    usage = UsageMeter(hass, entry)
    await usage.async_load()
    entry.runtime_data = ShackletonData(
        runtime=runtime,
        voice=voice,
        api=api,
        notes=notes,
        reminders=reminders,
        rooms=rooms,
        usage=usage,
        link=link,
        options=dict(entry.options),
    )
    entry.async_on_unload(async_register_api(hass, api))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    if link is not None and server is not None:
        link.async_start()
        async_register_webhook(hass, entry, server)
    voice.async_start()
    entry.async_on_unload(entry.add_update_listener(_async_options_updated))
    return True


async def _async_options_updated(hass: HomeAssistant, entry: ShackletonConfigEntry) -> None:
    """Apply turn-taking changes live; anything else reloads the entry."""
    data = entry.runtime_data
    changed = {
        key
        for key in {*entry.options, *data.options}
        if entry.options.get(key) != data.options.get(key)
    }
    if (
        changed
        and changed <= TURN_TAKING_OPTIONS
        and data.voice.async_apply_options(dict(entry.options))
    ):
        data.options = dict(entry.options)
        return
    await hass.config_entries.async_reload(entry.entry_id)


async def async_migrate_entry(hass: HomeAssistant, entry: ShackletonConfigEntry) -> bool:
    """Bring an older entry up to date; a newer one (a downgrade) cannot load."""
    if entry.version > 2:
        return False
    if entry.version == 1 and entry.minor_version < 2:
        # 1.2: confirm-domain values became translation keys, which allow no dots.
        options = dict(entry.options)
        if CONF_CONFIRM_DOMAINS in options:
            options[CONF_CONFIRM_DOMAINS] = migrate_confirm_domains(
                list(options[CONF_CONFIRM_DOMAINS])
            )
        hass.config_entries.async_update_entry(entry, options=options, minor_version=2)
    if entry.version == 1:
        _async_migrate_to_assistants(hass, entry)
    return True


def _async_migrate_to_assistants(hass: HomeAssistant, entry: ShackletonConfigEntry) -> None:
    """2.1: the persona options become the entry's first assistant (a subentry).

    The agent keeps its entity id and history: its registry entry moves onto the
    assistant (its unique id becomes the subentry's, as new agents' are).
    """
    options = dict(entry.options)
    persona = {key: options.pop(key) for key in ASSISTANT_KEYS if key in options}
    subentry = assistant_subentry(entry.title, {**DEFAULT_ASSISTANT, **persona})
    hass.config_entries.async_add_subentry(entry, subentry)
    registry = er.async_get(hass)
    if agent := registry.async_get_entity_id("conversation", DOMAIN, entry.entry_id):
        registry.async_update_entity(
            agent, new_unique_id=subentry.subentry_id, config_subentry_id=subentry.subentry_id
        )
    hass.config_entries.async_update_entry(entry, options=options, version=2, minor_version=1)


async def async_unload_entry(hass: HomeAssistant, entry: ShackletonConfigEntry) -> bool:
    """Unload a config entry."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: ShackletonConfigEntry) -> None:
    """Remove what the entry left behind outside itself: repairs, notes, reminders, usage."""
    async_clear_all(hass, entry.entry_id)
    await NoteStore(hass, entry.entry_id, async_get_embedder(hass)).async_remove()
    await ReminderStore(hass, entry.entry_id, lambda room, text: False).async_remove()
    await RoomDevices(hass, entry, lambda room: False).async_remove_store()
    await async_remove_store(queue_store(hass, entry.entry_id))
    await async_remove_store(usage_store(hass, entry.entry_id))


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: ShackletonConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let the user delete a room's device, unless someone is talking in that room."""
    rooms = entry.runtime_data.rooms
    room = rooms.room_of(device)
    return room is not None and rooms.async_remove(room, remove_device=False)
