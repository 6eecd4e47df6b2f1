"""Calendar tools: list, create, move and delete events on calendars exposed to Assist.

Times are the home's: a time without a zone is in the home's time zone, and a date
alone means the whole day. The model turns "tomorrow at 10" into such a time from the
current date and time Shackleton gives it; the tools check what it sends.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from dateutil.rrule import rrulestr
from homeassistant.components.calendar import CalendarEntity, CalendarEvent
from homeassistant.components.calendar.const import DATA_COMPONENT, CalendarEntityFeature
from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.util import dt as dt_util
from homeassistant.util.json import JsonObjectType
import probatio

from .base import ADDS, READS, ShackletonTool

ASSISTANT = "conversation"
MAX_EVENTS = 50  # a spoken answer cannot use more


class CalendarToolError(HomeAssistantError):
    """A calendar request the model can fix (wrong name, past time, read-only...)."""


def _when(value: str, field: str) -> datetime | date:
    """Parse an ISO date or date-time; naive times are in the home's time zone."""
    text = value.strip()
    if len(text) == 10 and (day := dt_util.parse_date(text)) is not None:
        return day
    moment = dt_util.parse_datetime(text)
    if moment is None:
        raise CalendarToolError(
            f"{field} must be an ISO date (2026-05-01) or date and time "
            f"(2026-05-01T10:00), got {value!r}"
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt_util.get_default_time_zone())
    return moment


REPEAT_FREQUENCIES = {"DAILY", "WEEKLY", "MONTHLY", "YEARLY"}


def _repeat_rule(value: Any) -> str:
    """Check an RFC 5545 RRULE body ("FREQ=WEEKLY;BYDAY=TU") before a calendar sees it."""
    text = str(value).strip().removeprefix("RRULE:")
    parts = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
    if parts.get("FREQ") not in REPEAT_FREQUENCIES:
        raise probatio.Invalid(
            "repeat must be an RRULE with FREQ=DAILY, WEEKLY, MONTHLY or YEARLY, "
            f"e.g. FREQ=WEEKLY;BYDAY=TU, got {value!r}"
        )
    try:
        rrulestr(text)
    except (ValueError, TypeError) as err:
        raise probatio.Invalid(f"repeat is not a valid RRULE ({err}): {value!r}") from err
    return text


def _day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), dt_util.get_default_time_zone())


def _as_datetime(value: datetime | date) -> datetime:
    return value if isinstance(value, datetime) else _day_start(value)


def _label(calendar: CalendarEntity) -> str:
    """Return the name people see (entities named after their device have no own name)."""
    state = calendar.hass.states.get(calendar.entity_id) if calendar.hass else None
    return state.name if state is not None else calendar.entity_id


def _event_json(event: CalendarEvent, calendar: CalendarEntity) -> dict[str, Any]:
    def show(value: datetime | date) -> str:
        if isinstance(value, datetime):
            return dt_util.as_local(value).isoformat(timespec="minutes")
        return value.isoformat()

    shown: dict[str, Any] = {
        "calendar": _label(calendar),
        "summary": event.summary,
        "start": show(event.start),
        "end": show(event.end),
        "all_day": event.all_day,
    }
    if event.uid:
        shown["uid"] = event.uid
    if event.recurrence_id:
        # One occurrence of a repeating event: moving or deleting it needs both.
        shown["recurrence_id"] = event.recurrence_id
    if event.rrule:
        shown["repeat"] = event.rrule
    if event.location:
        shown["location"] = event.location
    if event.description:
        shown["description"] = event.description
    return shown


def exposed_calendars(hass: HomeAssistant) -> list[CalendarEntity]:
    """Return the calendar entities exposed to Assist."""
    component = hass.data.get(DATA_COMPONENT)
    if component is None:
        return []
    return [
        entity
        for entity in component.entities
        if async_should_expose(hass, ASSISTANT, entity.entity_id)
    ]


def _find(
    hass: HomeAssistant, name: str | None, feature: CalendarEntityFeature | None
) -> list[CalendarEntity]:
    calendars = exposed_calendars(hass)
    if name:
        wanted = name.strip().casefold()
        calendars = [
            entity
            for entity in calendars
            if wanted in (entity.entity_id.casefold(), _label(entity).casefold())
        ]
        if not calendars:
            known = ", ".join(_label(entity) for entity in exposed_calendars(hass))
            raise CalendarToolError(f"No calendar called {name!r}. Calendars: {known or 'none'}")
    if feature is not None:
        writable = [c for c in calendars if (c.supported_features or 0) & feature]
        if not writable:
            names = ", ".join(_label(entity) for entity in calendars)
            raise CalendarToolError(f"Calendar {names} is read-only: it cannot be changed here.")
        calendars = writable
    return calendars


def _one(hass: HomeAssistant, name: str | None, feature: CalendarEntityFeature) -> CalendarEntity:
    calendars = _find(hass, name, feature)
    if len(calendars) > 1:
        names = ", ".join(_label(entity) for entity in calendars)
        raise CalendarToolError(f"Which calendar? {names}")
    return calendars[0]


class ListEventsTool(ShackletonTool):
    """What is on the calendars over a window."""

    name = "calendar_list_events"
    title = "List calendar events"
    annotations = READS
    description = (
        "List calendar events. Give the calendar's name, or none for all calendars. "
        "Give start and end as ISO dates or local date-times (the home's time zone); "
        "with neither, the next 24 hours."
    )
    parameters = probatio.Schema(
        {
            probatio.Optional("calendar"): str,
            probatio.Optional("start"): str,
            probatio.Optional("end"): str,
        }
    )

    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Return the events, earliest first."""
        args = tool_input.tool_args
        start = _as_datetime(_when(args["start"], "start")) if "start" in args else dt_util.now()
        if "end" in args:
            end_value = _when(args["end"], "end")
            # A date alone as the end means through that whole day.
            end = _as_datetime(end_value) + (
                timedelta(0) if isinstance(end_value, datetime) else timedelta(days=1)
            )
        else:
            end = start + timedelta(days=1)
        if end <= start:
            raise CalendarToolError("end must be after start")
        events: list[tuple[datetime, dict[str, Any]]] = []
        for calendar in _find(hass, args.get("calendar"), None):
            found = await calendar.async_get_events(hass, start, end)
            events.extend((_as_datetime(e.start), _event_json(e, calendar)) for e in found)
        events.sort(key=lambda pair: pair[0])
        return {
            "start": start.isoformat(timespec="minutes"),
            "end": end.isoformat(timespec="minutes"),
            "events": [shown for _, shown in events[:MAX_EVENTS]],
            "more": max(0, len(events) - MAX_EVENTS),
        }


def _span(args: dict[str, Any], default: timedelta) -> tuple[datetime | date, datetime | date]:
    start = _when(args["start"], "start")
    if "end" in args:
        end = _when(args["end"], "end")
        if isinstance(start, datetime) != isinstance(end, datetime):
            raise CalendarToolError("start and end must both be dates, or both date-times")
    elif isinstance(start, datetime):
        end = start + default
    else:
        end = start + timedelta(days=1)
    if end <= start:
        raise CalendarToolError("end must be after start")
    if _as_datetime(end) <= dt_util.now():
        raise CalendarToolError("That time is in the past. Ask the user when they meant.")
    return start, end


class CreateEventTool(ShackletonTool):
    """Add an event to a writable calendar."""

    name = "calendar_create_event"
    title = "Add a calendar event"
    annotations = ADDS
    description = (
        "Add an event. start (and optional end) are ISO dates for all-day events or local "
        "date-times; without end, events last an hour. Give the calendar's name unless "
        "only one calendar can take events. For a repeating event, repeat is an RRULE "
        "such as FREQ=WEEKLY;BYDAY=TU or FREQ=MONTHLY;COUNT=6."
    )
    parameters = probatio.Schema(
        {
            probatio.Required("summary"): probatio.All(str, probatio.Length(min=1, max=200)),
            probatio.Required("start"): str,
            probatio.Optional("end"): str,
            probatio.Optional("calendar"): str,
            probatio.Optional("description"): str,
            probatio.Optional("location"): str,
            probatio.Optional("repeat"): _repeat_rule,
        }
    )

    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Create the event and return it."""
        args = tool_input.tool_args
        calendar = _one(hass, args.get("calendar"), CalendarEntityFeature.CREATE_EVENT)
        start, end = _span(args, timedelta(hours=1))
        event: dict[str, Any] = {"summary": args["summary"], "dtstart": start, "dtend": end}
        for key in ("description", "location"):
            if args.get(key):
                event[key] = args[key]
        if args.get("repeat"):
            event["rrule"] = args["repeat"]
        await calendar.async_create_event(**event)
        calendar.async_write_ha_state()
        shown = CalendarEvent(
            start=start, end=end, summary=args["summary"], rrule=args.get("repeat")
        )
        return {"created": _event_json(shown, calendar)}


async def _find_event(
    hass: HomeAssistant, calendar: CalendarEntity, uid: str, recurrence_id: str | None
) -> CalendarEvent:
    now = dt_util.now()
    for event in await calendar.async_get_events(
        hass, now - timedelta(days=30), now + timedelta(days=400)
    ):
        if event.uid == uid and (recurrence_id is None or event.recurrence_id == recurrence_id):
            return event
    raise CalendarToolError(f"No event with uid {uid!r} in {_label(calendar)}. List events first.")


class MoveEventTool(ShackletonTool):
    """Move an event to another time, keeping its length unless told otherwise."""

    name = "calendar_move_event"
    title = "Move a calendar event"
    description = (
        "Move an event (by the uid calendar_list_events gave, and its recurrence_id for "
        "one occurrence of a repeating event) to a new start; "
        "it keeps its length unless an end is given."
    )
    parameters = probatio.Schema(
        {
            probatio.Required("calendar"): str,
            probatio.Required("uid"): str,
            probatio.Optional("recurrence_id"): str,
            probatio.Required("start"): str,
            probatio.Optional("end"): str,
        }
    )

    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Move the event and return it."""
        args = tool_input.tool_args
        calendar = _one(hass, args["calendar"], CalendarEntityFeature.UPDATE_EVENT)
        event = await _find_event(hass, calendar, args["uid"], args.get("recurrence_id"))
        start, end = _span(args, event.end - event.start)  # type: ignore[operator]
        changed = {
            "summary": event.summary,
            "dtstart": start,
            "dtend": end,
            **({"description": event.description} if event.description else {}),
            **({"location": event.location} if event.location else {}),
        }
        await calendar.async_update_event(
            args["uid"], changed, recurrence_id=args.get("recurrence_id")
        )
        calendar.async_write_ha_state()
        moved = CalendarEvent(start=start, end=end, summary=event.summary, uid=event.uid)
        return {"moved": _event_json(moved, calendar)}


class DeleteEventTool(ShackletonTool):
    """Remove an event."""

    name = "calendar_delete_event"
    title = "Delete a calendar event"
    description = (
        "Delete an event, by the uid calendar_list_events gave; with its recurrence_id, "
        "only that occurrence of a repeating event."
    )
    parameters = probatio.Schema(
        {
            probatio.Required("calendar"): str,
            probatio.Required("uid"): str,
            probatio.Optional("recurrence_id"): str,
        }
    )

    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Delete the event and say which it was."""
        args = tool_input.tool_args
        calendar = _one(hass, args["calendar"], CalendarEntityFeature.DELETE_EVENT)
        event = await _find_event(hass, calendar, args["uid"], args.get("recurrence_id"))
        await calendar.async_delete_event(args["uid"], recurrence_id=args.get("recurrence_id"))
        calendar.async_write_ha_state()
        return {"deleted": _event_json(event, calendar)}


def calendar_tools(hass: HomeAssistant) -> list[llm.Tool]:
    """Return the calendar tools when a calendar is exposed to Assist."""
    if not exposed_calendars(hass):
        return []
    return [ListEventsTool(), CreateEventTool(), MoveEventTool(), DeleteEventTool()]
