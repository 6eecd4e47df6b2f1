"""Announcements: said into the rooms where someone listens, else queued, notified or dropped.

The queue survives restarts: an announcement may wait for a room that comes back after
Home Assistant does (an external worker's, or a card's).
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import hashlib
import time
from typing import Any, Final

from homeassistant.components import persistent_notification
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.storage import Store
from homeassistant.util.ulid import ulid_now

from .const import (
    CONF_ANNOUNCE_QUEUE_MINUTES,
    DEFAULT_OPTIONS,
    DOMAIN,
    LOGGER,
    NOBODY_NOTIFY,
    NOBODY_QUEUE,
    PRIORITY_HIGH,
    PRIORITY_NORMAL,
)
from .storage import Kind, async_load_checked, check, checked


@dataclasses.dataclass(frozen=True, slots=True)
class Announcement:
    """Something to say into rooms; `room` and `expires_at` matter once it is queued."""

    text: str
    chime: bool = False
    priority: str = PRIORITY_NORMAL
    expires_at: float = 0.0  # time.monotonic()
    room: str | None = None
    id: str = dataclasses.field(default_factory=ulid_now)


def _digest(text: str) -> str:
    """Return a short name for a message (not a secret: it names a notification)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Say an announcement in a room now; False when nobody there can hear it.
type Say = Callable[[str, Announcement, bool], bool]


def queue_store(hass: HomeAssistant, entry_id: str) -> Store[list[dict[str, Any]]]:
    """Return the store of an entry's queued announcements."""
    return Store(hass, 1, f"{DOMAIN}.{entry_id}.announcements")


# The fields of a queued announcement as saved; "expires" is wall-clock time.
QUEUE_FIELDS: Final[dict[str, Kind]] = {
    "text": str,
    "chime": bool,
    "priority": str,
    "room": str | None,
    "id": str,
    "expires": float,
}


def _parse_queue(data: Any) -> list[dict[str, Any]]:
    items = check(data, list, "data")
    return [
        checked(item, QUEUE_FIELDS, f"announcements[{index}]") for index, item in enumerate(items)
    ]


class Announcer:
    """An entry's announcements: who hears them now, and what waits for whom."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        title: str,
        *,
        say: Say,
        active_rooms: Callable[[], list[str]],
    ) -> None:
        """Say through `say`; `active_rooms` are those with someone to hear."""
        self._hass = hass
        self._title = title
        self._say = say
        self._active_rooms = active_rooms
        self._queue: list[Announcement] = []
        self._store: Store[list[dict[str, Any]]] = queue_store(hass, entry_id)

    @property
    def queued(self) -> list[Announcement]:
        """Return the announcements waiting for someone to join."""
        return list(self._queue)

    @callback
    def async_announce(
        self, rooms: list[str] | None, announcement: Announcement, policy: str
    ) -> list[dict[str, Any]]:
        """Announce into `rooms` (None: every active room); return each room's outcome.

        A room with nobody in it gets the no-listener `policy`: drop (with a warning),
        queue until someone joins (within the announcement's TTL), or notify.
        """
        targets: list[str] = list(rooms) if rooms else self._active_rooms()
        interrupt = announcement.priority == PRIORITY_HIGH
        outcomes = [
            {"room": room, "outcome": "spoken"}
            for room in targets
            if self._say(room, announcement, interrupt)
        ]
        spoken = {outcome["room"] for outcome in outcomes}
        # No room at all: the next one to open.
        missed: list[str | None] = [room for room in targets if room not in spoken] or (
            [] if targets else [None]
        )
        if not missed:
            return outcomes
        if policy == NOBODY_QUEUE:
            self._queue += [dataclasses.replace(announcement, room=room) for room in missed]
            self._async_save()
        elif policy == NOBODY_NOTIFY:
            persistent_notification.async_create(
                self._hass,
                announcement.text,
                title=self._title,
                # By its words: the same message to several empty rooms at once (HA's
                # broadcast reaches every room's satellite) is one notification.
                notification_id=f"{DOMAIN}_announcement_{_digest(announcement.text)}",
            )
        else:
            LOGGER.warning(
                "%s: nobody heard the announcement in %s; it was dropped",
                self._title,
                ", ".join(room or "any room" for room in missed),
            )
        outcome = {NOBODY_QUEUE: "queued", NOBODY_NOTIFY: "notified"}.get(policy, "dropped")
        return outcomes + [{"room": room, "outcome": outcome} for room in missed]

    @callback
    def async_requeue(self, announcement: Announcement, options: dict[str, Any]) -> None:
        """Keep an announcement a worker did not get to say, for the room's next session."""
        minutes = float(
            options.get(CONF_ANNOUNCE_QUEUE_MINUTES, DEFAULT_OPTIONS[CONF_ANNOUNCE_QUEUE_MINUTES])
        )
        expires = max(announcement.expires_at, time.monotonic() + 60 * minutes)
        LOGGER.info(
            "%s: announcement %s was not said in %s yet; it waits for the room's next session",
            self._title,
            announcement.id,
            announcement.room,
        )
        self._queue.append(dataclasses.replace(announcement, expires_at=expires))
        self._async_save()

    @callback
    def async_deliver(self, room: str) -> None:
        """Say what was queued for `room` (or for any room) now that someone is there."""
        now = time.monotonic()
        keep: list[Announcement] = []
        for item in self._queue:
            if item.expires_at <= now:
                LOGGER.info("%s: a queued announcement expired unheard: %s", self._title, item.id)
            elif item.room not in (room, None) or not self._say(room, item, False):
                keep.append(item)
        if keep != self._queue:
            self._queue = keep
            self._async_save()

    async def async_load(self) -> None:
        """Take back the announcements queued before a restart (unexpired ones)."""
        stored = await async_load_checked(self._store, _parse_queue, "queued announcements") or []
        wall, mono = time.time(), time.monotonic()
        self._queue = [
            Announcement(
                text=item["text"],
                chime=item["chime"],
                priority=item["priority"],
                room=item["room"],
                id=item["id"],
                expires_at=mono + item["expires"] - wall,
            )
            for item in stored
            if item["expires"] > wall
        ]

    async def async_save(self) -> None:
        """Save the queue now (the entry unloads: a delayed save would be lost)."""
        await self._store.async_save(self._data())

    def _data(self) -> list[dict[str, Any]]:
        wall, mono = time.time(), time.monotonic()
        return [
            {
                "text": item.text,
                "chime": item.chime,
                "priority": item.priority,
                "room": item.room,
                "id": item.id,
                "expires": wall + item.expires_at - mono,  # wall clock: restarts keep it
            }
            for item in self._queue
        ]

    @callback
    def _async_save(self) -> None:
        self._store.async_delay_save(self._data, 1)
