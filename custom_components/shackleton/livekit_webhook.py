"""LiveKit's webhook: join rooms by themselves when a person enters one with our prefix."""

from __future__ import annotations

from aiohttp import web
from homeassistant.components import webhook
from homeassistant.core import HomeAssistant, callback
from livekit import api

from .const import CONF_AUTO_JOIN_PREFIX, DOMAIN, LOGGER
from .models import ShackletonConfigEntry
from .voice.settings import ROOM_NAME, LiveKitServer


def webhook_id(entry_id: str) -> str:
    """Return the entry's webhook id; not a secret, as every call must be signed."""
    return f"{DOMAIN}_{entry_id}"


@callback
def async_register_webhook(
    hass: HomeAssistant, entry: ShackletonConfigEntry, server: LiveKitServer
) -> None:
    """Listen for LiveKit's webhook, signed with the server's key, until the entry unloads."""
    receiver = api.WebhookReceiver(api.TokenVerifier(server.api_key, server.api_secret))

    async def handle(hass: HomeAssistant, _webhook_id: str, request: web.Request) -> web.Response:
        body = await request.text()
        try:
            event = receiver.receive(body, request.headers.get("Authorization", ""))
        except Exception:  # noqa: BLE001 - livekit-api raises a bare Exception for a bad hash
            LOGGER.debug("Ignored a LiveKit webhook call without a valid signature")
            return web.Response(status=401)
        prefix = str(entry.options.get(CONF_AUTO_JOIN_PREFIX) or "")
        room = event.room.name
        if (
            event.event == "participant_joined"
            and prefix
            and room.startswith(prefix)
            and ROOM_NAME.fullmatch(room)
            and event.participant.kind != api.ParticipantInfo.Kind.AGENT
            and entry.runtime_data.runtime.voice_enabled
        ):
            LOGGER.debug("Joining room %s: %s came in", room, event.participant.identity)
            entry.runtime_data.voice.async_join_room(room)
        return web.Response(status=200)

    hook = webhook_id(entry.entry_id)
    webhook.async_register(
        hass, DOMAIN, f"{entry.title} (LiveKit)", hook, handle, allowed_methods=["POST"]
    )
    entry.async_on_unload(lambda: webhook.async_unregister(hass, hook))
