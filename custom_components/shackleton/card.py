"""The dashboard card: its file, registered with the frontend, and its token endpoint."""

from __future__ import annotations

from collections import defaultdict, deque
from datetime import timedelta
from hashlib import sha256
from http import HTTPStatus
import json
from pathlib import Path
import time
from typing import Any, Final

from aiohttp import web
from homeassistant.auth.models import User
from homeassistant.components.http import StaticPathConfig
from homeassistant.components.http.const import KEY_HASS_USER
from homeassistant.core import HomeAssistant
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView
from homeassistant.helpers.translation import async_get_exception_message
from homeassistant.util import dt as dt_util

from .const import (
    CARD_TOKEN_MAX_MINUTES,
    CARD_TOKEN_RATE,
    CARD_TOKEN_RATE_WINDOW,
    CONF_CARD_TOKEN_MINUTES,
    CONF_DASHBOARD_ROOMS,
    CONF_LIVEKIT_BROWSER_URL,
    DEFAULT_OPTIONS,
    DOMAIN,
    LOGGER,
)
from .models import ShackletonConfigEntry
from .voice.settings import ROOM_NAME, LiveKitServer

# The built card: a small module, and livekit-client as a chunk it imports on Connect.
CARD_DIR: Final = Path(__file__).parent / "frontend" / "dist"
CARD_FILE: Final = CARD_DIR / "shackleton-card.js"
CARD_BASE_URL: Final = f"/{DOMAIN}/card"
CARD_URL: Final = f"{CARD_BASE_URL}/shackleton-card.js"
TOKEN_URL: Final = f"/api/{DOMAIN}/token"


def identity_of(user_id: str) -> str:
    """Return the LiveKit identity of an HA user: stable, and not their name."""
    return f"ha-{user_id}"


async def async_register_card(hass: HomeAssistant) -> None:
    """Serve the card and load it on every dashboard: no manual resource step."""
    hass.http.register_view(TokenView())
    digest = await hass.async_add_executor_job(_digest, CARD_FILE)
    if digest is None:  # a checkout without the built bundle
        LOGGER.warning("The dashboard card is missing (%s): run `npm run build`", CARD_FILE)
        return
    # Chunk names carry their own hash; the module's URL carries the digest below.
    await hass.http.async_register_static_paths(
        [StaticPathConfig(CARD_BASE_URL, str(CARD_DIR), cache_headers=True)]
    )
    if "frontend" in hass.config.components:
        from homeassistant.components import frontend

        # The digest busts browser caches whenever the card changes.
        frontend.add_extra_js_url(hass, f"{CARD_URL}?v={digest}")


def _digest(path: Path) -> str | None:
    """Return a short hash of the file, or None if it is not there (blocking: executor)."""
    try:
        return sha256(path.read_bytes()).hexdigest()[:12]
    except FileNotFoundError:
        return None


# The card's error codes whose message the actions already have.
_SHARED_MESSAGES: Final = frozenset(
    {"invalid_room", "entry_required", "voice_disabled", "voice_unavailable"}
)


class CardTokenError(Exception):
    """A token request refused: an HTTP status, the card's error code, the message's values."""

    def __init__(self, status: HTTPStatus, code: str, **placeholders: str) -> None:
        """Keep what the refusal needs."""
        super().__init__(code)
        self.status = status
        self.code = code
        self.placeholders = placeholders

    @property
    def translation_key(self) -> str:
        """Return the key of the message in `exceptions`."""
        return self.code if self.code in _SHARED_MESSAGES else f"card_{self.code}"


class RateLimiter:
    """At most `rate` requests per key in any `window` seconds (a sliding log)."""

    def __init__(self, rate: int, window: float) -> None:
        """Start empty."""
        self._rate = rate
        self._window = window
        self._log: defaultdict[str, deque[float]] = defaultdict(deque)

    def retry_after(self, key: str, now: float | None = None) -> float:
        """Count a request; return 0 when allowed, else the seconds until it would be."""
        now = time.monotonic() if now is None else now
        log = self._log[key]
        while log and log[0] <= now - self._window:
            log.popleft()
        if len(log) >= self._rate:
            return log[0] + self._window - now
        log.append(now)
        return 0.0


class TokenView(HomeAssistantView):
    """Give a signed-in HA user a short-lived token for one LiveKit room, and call the agent."""

    url = TOKEN_URL
    name = f"api:{DOMAIN}:token"
    requires_auth = True

    def __init__(self) -> None:
        """Rate-limit per HA user across every entry."""
        self._limiter = RateLimiter(CARD_TOKEN_RATE, CARD_TOKEN_RATE_WINDOW)

    async def post(self, request: web.Request) -> web.Response:
        """Answer `{room, config_entry_id?}` with `{url, token, room, identity, expires_at}`."""
        hass: HomeAssistant = request.app[KEY_HASS]
        user: User = request[KEY_HASS_USER]
        try:
            entry, server, room = await self._async_check(hass, user, request)
        except CardTokenError as err:
            return _refusal(err)
        options = {**DEFAULT_OPTIONS, **entry.options}
        ttl = timedelta(minutes=min(int(options[CONF_CARD_TOKEN_MINUTES]), CARD_TOKEN_MAX_MINUTES))
        identity = identity_of(user.id)
        token = server.room_token(room, identity, name=user.name or identity, ttl=ttl)
        entry.runtime_data.voice.async_join_room(room)
        LOGGER.debug("Card token for room %s given to %s", room, identity)
        return self.json(
            {
                "url": options[CONF_LIVEKIT_BROWSER_URL] or server.url,
                "token": token,
                "room": room,
                "identity": identity,
                "expires_at": (dt_util.utcnow() + ttl).isoformat(),
            }
        )

    async def _async_check(
        self, hass: HomeAssistant, user: User, request: web.Request
    ) -> tuple[ShackletonConfigEntry, LiveKitServer, str]:
        """Return the entry and room the request may have, or raise CardTokenError."""
        if wait := self._limiter.retry_after(user.id):
            raise CardTokenError(
                HTTPStatus.TOO_MANY_REQUESTS, "rate_limited", seconds=str(int(wait) + 1)
            )
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise CardTokenError(HTTPStatus.BAD_REQUEST, "invalid_room", room="")
        room = str(body.get("room") or "").strip()
        if not ROOM_NAME.fullmatch(room):
            raise CardTokenError(HTTPStatus.BAD_REQUEST, "invalid_room", room=room)
        entry, server = _entry(hass, body.get("config_entry_id"))
        allowed = {**DEFAULT_OPTIONS, **entry.options}[CONF_DASHBOARD_ROOMS]
        if not user.is_admin and room not in allowed:
            raise CardTokenError(HTTPStatus.FORBIDDEN, "room_not_allowed", room=room)
        data = entry.runtime_data
        if not data.runtime.voice_enabled:
            raise CardTokenError(
                HTTPStatus.SERVICE_UNAVAILABLE, "voice_disabled", title=entry.title
            )
        # An external entry has no engine here: its workers take the room from LiveKit's
        # dispatch, which the token asks for.
        if not await data.voice.async_ready():
            raise CardTokenError(
                HTTPStatus.SERVICE_UNAVAILABLE, "voice_unavailable", title=entry.title
            )
        return entry, server, room


def _entry(hass: HomeAssistant, entry_id: Any) -> tuple[ShackletonConfigEntry, LiveKitServer]:
    """Return the entry asked for, or the only loaded one with a LiveKit server, and it."""
    entries: list[tuple[ShackletonConfigEntry, LiveKitServer]] = [
        (entry, server)
        for entry in hass.config_entries.async_loaded_entries(DOMAIN)
        if (server := entry.runtime_data.voice.server) is not None
        and (not entry_id or entry.entry_id == entry_id)
    ]
    if not entries:
        raise CardTokenError(HTTPStatus.NOT_FOUND, "not_configured")
    if len(entries) > 1:
        raise CardTokenError(HTTPStatus.BAD_REQUEST, "entry_required")
    return entries[0]


def _refusal(err: CardTokenError) -> web.Response:
    message = async_get_exception_message(DOMAIN, err.translation_key, err.placeholders)
    headers = {}
    if err.code == "rate_limited":
        headers["Retry-After"] = err.placeholders["seconds"]
    return web.Response(
        status=err.status,
        text=json.dumps({"code": err.code, "message": message}),
        content_type="application/json",
        headers=headers,
    )
