"""The LiveKit server: credential checks through livekit-api, and a self-healing link."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import aiohttp
from homeassistant.core import HassJob, HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_call_later
from livekit import api
from yarl import URL

from .const import LIVEKIT_HEALTH_INTERVAL, LIVEKIT_RETRY_MAX, LOGGER, VALIDATION_TIMEOUT
from .voice.settings import Backoff, LiveKitServer

if TYPE_CHECKING:
    from .models import ShackletonConfigEntry, ShackletonRuntime

LIVEKIT_SCHEMES: Final = ("ws", "wss", "http", "https")
# 2, 4, 8 ... 60 s, each jittered within its upper half.
_RETRY: Final = Backoff(initial=2.0, maximum=LIVEKIT_RETRY_MAX)


class LiveKitError(Exception):
    """A LiveKit check failed; `reason` is a translation key of the config flow."""

    reason = "cannot_connect"


class LiveKitCannotConnect(LiveKitError):
    """The server did not answer, or did not answer as LiveKit."""


class LiveKitInvalidAuth(LiveKitError):
    """The server refused the API key or secret."""

    reason = "invalid_auth"


class LiveKitInvalidUrl(LiveKitError):
    """The URL is not a ws(s)/http(s) URL with a host."""

    reason = "invalid_url"


def normalize_livekit_url(raw: str) -> str:
    """Return the URL trimmed of spaces and trailing slash, or raise LiveKitInvalidUrl."""
    raw = raw.strip()
    try:
        url = URL(raw)
    except ValueError as err:
        raise LiveKitInvalidUrl from err
    if url.scheme not in LIVEKIT_SCHEMES or not url.host or any(c.isspace() for c in raw):
        raise LiveKitInvalidUrl
    return str(url).rstrip("/")


async def async_check_livekit(
    session: aiohttp.ClientSession,
    url: str,
    api_key: str,
    api_secret: str,
) -> int:
    """List the server's rooms with a short timeout and return how many there are."""
    client = api.LiveKitAPI(
        url,
        api_key,
        api_secret,
        session=session,
        timeout=aiohttp.ClientTimeout(total=VALIDATION_TIMEOUT),
        failover=False,
    )
    try:
        response = await client.room.list_rooms(api.ListRoomsRequest())
    except api.TwirpError as err:
        if err.status in (401, 403) or err.code in (
            api.TwirpErrorCode.UNAUTHENTICATED,
            api.TwirpErrorCode.PERMISSION_DENIED,
        ):
            raise LiveKitInvalidAuth from err
        raise LiveKitCannotConnect from err
    except (aiohttp.ClientError, TimeoutError) as err:
        raise LiveKitCannotConnect from err
    return len(response.rooms)


class LiveKitLink:
    """Keeps `runtime.livekit_connected` true to the server, retrying with backoff and jitter.

    The voice worker reports room connections into the same runtime; this link covers
    the time no room is open, so the connectivity sensor is never stale.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ShackletonConfigEntry,
        runtime: ShackletonRuntime,
        server: LiveKitServer,
    ) -> None:
        """Prepare the link; nothing runs until `async_start`."""
        self._hass = hass
        self._entry = entry
        self._runtime = runtime
        self._server = server
        self._url = server.url
        self._failures = 0
        self._cancel_timer: Callable[[], None] | None = None
        self._job = HassJob(
            self._async_timer_fired, "shackleton livekit check", cancel_on_shutdown=True
        )

    async def async_first_check(self) -> None:
        """Check once during set-up; bad credentials raise, a dead server only logs."""
        await self._async_check(raise_auth=True)

    @callback
    def async_start(self) -> None:
        """Begin the periodic checks; they stop when the entry unloads."""
        self._entry.async_on_unload(self._async_stop)
        self._schedule()

    @callback
    def _async_stop(self) -> None:
        if self._cancel_timer is not None:
            self._cancel_timer()
            self._cancel_timer = None

    @callback
    def _schedule(self) -> None:
        failures = self._failures
        delay = _RETRY.delay(failures) if failures else LIVEKIT_HEALTH_INTERVAL
        self._cancel_timer = async_call_later(self._hass, delay, self._job)

    @callback
    def _async_timer_fired(self, _now: object) -> None:
        self._cancel_timer = None
        self._entry.async_create_background_task(
            self._hass, self._async_check_and_reschedule(), "shackleton livekit check"
        )

    async def _async_check_and_reschedule(self) -> None:
        if await self._async_check(raise_auth=False):
            self._schedule()

    async def _async_check(self, *, raise_auth: bool) -> bool:
        """Check the server; return whether checking should go on."""
        session = async_get_clientsession(self._hass)
        try:
            await async_check_livekit(
                session, self._url, self._server.api_key, self._server.api_secret
            )
        except LiveKitInvalidAuth:
            self._runtime.async_set_livekit(connected=False, error="invalid_auth")
            if raise_auth:
                raise
            LOGGER.error("LiveKit server %s refused the API key or secret", self._url)
            self._entry.async_start_reauth(self._hass)
            return False
        except LiveKitError as err:
            self._failures += 1
            if self._failures == 1:
                # Logged once per outage; the binary sensor carries the rest.
                LOGGER.warning(
                    "LiveKit server %s is unreachable (%s); voice rooms wait until it is back",
                    self._url,
                    err.__cause__ or err,
                )
            self._runtime.async_set_livekit(connected=False, error=err.reason)
            return True
        if self._failures:
            LOGGER.info("LiveKit server %s is reachable again", self._url)
        self._failures = 0
        self._runtime.async_set_livekit(connected=True, error=None)
        return True
