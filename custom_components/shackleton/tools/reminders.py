"""Reminders: kept in HA's Store, re-armed at start, said in the room they were set from.

"Remind me to call mom on Friday at 5" becomes a reminder with a due time in the home's
time zone. When it is due, the assistant says it in the room it was set from if a voice
session is running there; otherwise (or when it was set from text) it becomes a
persistent notification, so it is never lost. One missed while HA was down is delivered
at start, marked late. Every delivery also fires `shackleton_reminder`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from homeassistant.components import persistent_notification
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.helpers.event import async_track_point_in_time
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util, ulid as ulid_util
from homeassistant.util.json import JsonObjectType
import probatio

from ..const import DOMAIN, EVENT_REMINDER, LOGGER, REDACTED
from ..storage import (
    async_load_checked,
    async_remove_store,
    checked,
    from_saved,
    saved_time,
)
from .base import ADDS, READS, ShackletonTool

STORAGE_VERSION = 1
MAX_REMINDERS = 200


@dataclass(slots=True)
class Reminder:
    """Something to say at a time."""

    id: str
    text: str
    due: str  # ISO, with the zone
    user_id: str | None
    room: str | None


def _parse_reminders(data: Any) -> dict[str, Reminder]:
    reminders: dict[str, Reminder] = {}
    for index, item in enumerate(checked(data, {"reminders": list}, "data")["reminders"]):
        reminder = from_saved(Reminder, item, f"reminders[{index}]")
        saved_time(reminder.due, f"reminders[{index}].due")
        reminders[reminder.id] = reminder
    return reminders


class ReminderStore:
    """The reminders of one entry, each armed with an HA timer until delivered."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        say: Callable[[str | None, str], bool],
        show_text: Callable[[], bool] = lambda: False,
    ) -> None:
        """Use the entry's store; `say(room, text)` speaks into a room if it can.

        `show_text()` tells whether events may carry the reminder's words.
        """
        self._hass = hass
        self._show_text = show_text
        self._entry_id = entry_id
        self._say = say
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.reminders"
        )
        self.reminders: dict[str, Reminder] = {}
        self._timers: dict[str, CALLBACK_TYPE] = {}

    async def async_load(self) -> None:
        """Read the saved reminders and arm them (delivering any that came due meanwhile)."""
        self.reminders = await async_load_checked(self._store, _parse_reminders, "reminders") or {}
        for reminder in list(self.reminders.values()):
            self._arm(reminder)

    async def async_remove(self) -> None:
        """Delete the saved reminders (the entry is being removed)."""
        await async_remove_store(self._store)

    @callback
    def async_stop(self) -> None:
        """Disarm every timer (the entry unloads; the reminders stay saved)."""
        for cancel in self._timers.values():
            cancel()
        self._timers.clear()

    def _save(self) -> None:
        self._store.async_delay_save(
            lambda: {"reminders": [asdict(r) for r in self.reminders.values()]}, 0
        )

    def _arm(self, reminder: Reminder) -> None:
        # Saved by `add` as ISO with its zone, and checked again at load.
        due = dt_util.parse_datetime(reminder.due, raise_on_error=True)

        @callback
        def fire(_: datetime) -> None:  # HA passes the scheduled time, not the clock's
            self._timers.pop(reminder.id, None)
            self._deliver(reminder, late=dt_util.utcnow() - due > timedelta(minutes=1))

        self._timers[reminder.id] = async_track_point_in_time(self._hass, fire, due)

    @callback
    def _deliver(self, reminder: Reminder, *, late: bool) -> None:
        self.reminders.pop(reminder.id, None)
        self._save()
        spoken = self._say(reminder.room, f"Reminder: {reminder.text}")
        if not spoken:
            persistent_notification.async_create(
                self._hass,
                reminder.text
                + (f" (due {reminder.due[:16]}, while Home Assistant was off)" if late else ""),
                title="Reminder",
                notification_id=f"{DOMAIN}_reminder_{reminder.id}",
            )
        LOGGER.debug("Reminder %s delivered (%s)", reminder.id, "spoken" if spoken else "notified")
        self._hass.bus.async_fire(
            EVENT_REMINDER,
            {
                "entry_id": self._entry_id,
                "id": reminder.id,
                "text": reminder.text if self._show_text() else REDACTED,
                "due": reminder.due,
                "room": reminder.room,
                "delivered": "spoken" if spoken else "notification",
                "late": late,
            },
        )

    def add(self, text: str, due: datetime, user_id: str | None, room: str | None) -> Reminder:
        """Save and arm a reminder."""
        if len(self.reminders) >= MAX_REMINDERS:
            raise HomeAssistantError("Too many reminders are waiting; cancel some first.")
        reminder = Reminder(ulid_util.ulid_now(), text, due.isoformat(), user_id, room)
        self.reminders[reminder.id] = reminder
        self._save()
        self._arm(reminder)
        return reminder

    def cancel(self, reminder_id: str, user_id: str | None) -> Reminder | None:
        """Cancel a reminder the user may see; return it, or None."""
        reminder = self.reminders.get(reminder_id)
        if reminder is None or reminder.user_id not in (None, user_id):
            return None
        del self.reminders[reminder_id]
        if (cancel := self._timers.pop(reminder_id, None)) is not None:
            cancel()
        self._save()
        return reminder

    def visible(self, user_id: str | None) -> list[Reminder]:
        """Return the reminders a user may see, soonest first."""
        mine = [r for r in self.reminders.values() if r.user_id in (None, user_id)]
        return sorted(mine, key=lambda r: r.due)


def _user(llm_context: llm.LLMContext) -> str | None:
    return llm_context.context.user_id if llm_context.context else None


def _shown(reminder: Reminder) -> dict[str, Any]:
    return {"id": reminder.id, "text": reminder.text, "due": reminder.due[:16]}


class SetReminderTool(ShackletonTool):
    """Remind the user of something at a time."""

    name = "reminder_set"
    title = "Set a reminder"
    annotations = ADDS
    description = (
        "Set a reminder. due is a local date-time in the home's time zone "
        "(2026-05-01T17:00), worked out from the current date and time."
    )
    parameters = probatio.Schema(
        {
            probatio.Required("text"): probatio.All(str, probatio.Length(min=1, max=300)),
            probatio.Required("due"): str,
        }
    )

    def __init__(self, reminders: ReminderStore, room: str | None) -> None:
        """Set reminders in `store`, to be said in `room`."""
        self._reminders = reminders
        self._room = room

    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Save the reminder."""
        args = tool_input.tool_args
        due = dt_util.parse_datetime(args["due"].strip())
        if due is None:
            raise HomeAssistantError(
                f"due must be a local date and time like 2026-05-01T17:00, got {args['due']!r}"
            )
        if due.tzinfo is None:
            due = due.replace(tzinfo=dt_util.get_default_time_zone())
        if due <= dt_util.now():
            raise HomeAssistantError("That time has passed. Ask the user when they meant.")
        reminder = self._reminders.add(args["text"], due, _user(llm_context), self._room)
        return {
            "set": _shown(reminder),
            "said_in": self._room or "a notification",
        }


class ListRemindersTool(ShackletonTool):
    """The reminders still to come."""

    name = "reminder_list"
    title = "List reminders"
    annotations = READS
    description = "List the reminders still to come, soonest first."
    parameters = probatio.Schema({})

    def __init__(self, reminders: ReminderStore) -> None:
        """List from `reminders`."""
        self._reminders = reminders

    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Return the user's and the household's reminders."""
        return {"reminders": [_shown(r) for r in self._reminders.visible(_user(llm_context))]}


class CancelReminderTool(ShackletonTool):
    """Cancel a reminder."""

    name = "reminder_cancel"
    title = "Cancel a reminder"
    description = "Cancel a reminder, by the id reminder_list or reminder_set gave."
    parameters = probatio.Schema({probatio.Required("id"): str})

    def __init__(self, reminders: ReminderStore) -> None:
        """Cancel in `reminders`."""
        self._reminders = reminders

    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Cancel it, or say there is no such reminder."""
        cancelled = self._reminders.cancel(tool_input.tool_args["id"], _user(llm_context))
        if cancelled is None:
            raise HomeAssistantError("No such reminder. List the reminders first.")
        return {"cancelled": _shown(cancelled)}


def reminder_tools(reminders: ReminderStore, room: str | None) -> list[llm.Tool]:
    """Return the reminder tools for a room (None: a text conversation)."""
    return [
        SetReminderTool(reminders, room),
        ListRemindersTool(reminders),
        CancelReminderTool(reminders),
    ]
