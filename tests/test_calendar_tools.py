"""Calendar tools against HA's real local_calendar (writable) and holiday (read-only)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import call_tool

# HA 2025.4's holiday calendar keeps its midnight refresh timer after it is unloaded:
# the harness then reports a lingering timer that is not ours.
pytestmark = pytest.mark.parametrize("expected_lingering_timers", [True])

FAMILY = "calendar.family"
HOLIDAYS = "calendar.united_kingdom"


@pytest.fixture
async def calendars(hass: HomeAssistant, tmp_path: Path) -> AsyncIterator[None]:
    """Set up a local calendar and the UK's public holidays, both exposed to Assist."""
    await hass.config.async_set_time_zone("Europe/London")
    hass.config.config_dir = str(tmp_path)  # local_calendar keeps its .ics in .storage
    (tmp_path / ".storage").mkdir()
    entries = []
    for domain, title, data in (
        ("local_calendar", "Family", {"calendar_name": "Family", "storage_key": "family"}),
        ("holiday", "United Kingdom", {"country": "GB"}),
    ):
        entry = MockConfigEntry(domain=domain, title=title, data=data)
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        entries.append(entry)
    await hass.async_block_till_done()
    for entity_id in (FAMILY, HOLIDAYS):
        assert hass.states.get(entity_id) is not None
        async_expose_entity(hass, "conversation", entity_id, True)
    yield
    for entry in entries:
        await hass.config_entries.async_unload(entry.entry_id)


async def _family_events(hass: HomeAssistant, day: date) -> list[dict[str, Any]]:
    """Ask HA's own calendar service, not our tool, what the calendar holds."""
    start = datetime.combine(day, datetime.min.time(), dt_util.get_default_time_zone())
    response = await hass.services.async_call(
        "calendar",
        "get_events",
        {"entity_id": FAMILY, "start_date_time": start, "duration": {"days": 1}},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    return response[FAMILY]["events"]  # type: ignore[no-any-return,index]


@pytest.mark.usefixtures("calendars")
async def test_create_list_move_delete_in_the_homes_time_zone(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """A naive 10:00 is 10:00 in London; moving keeps the length; deleting removes it."""
    tomorrow = dt_util.now().date() + timedelta(days=1)
    created = await call_tool(
        hass,
        loaded_entry,
        "calendar_create_event",
        calendar="Family",
        summary="Dentist",
        start=f"{tomorrow}T10:00",
        location="High Street",
    )
    assert created["created"]["summary"] == "Dentist"
    [stored] = await _family_events(hass, tomorrow)
    start = dt_util.parse_datetime(stored["start"])
    assert start is not None
    assert start.astimezone(dt_util.get_default_time_zone()).hour == 10
    assert stored["location"] == "High Street"

    listed = await call_tool(
        hass, loaded_entry, "calendar_list_events", start=str(tomorrow), end=str(tomorrow)
    )
    [event] = [event for event in listed["events"] if event["calendar"] == "Family"]
    assert event["start"].startswith(f"{tomorrow}T10:00")
    assert event["end"].startswith(f"{tomorrow}T11:00")  # an hour by default

    await call_tool(
        hass,
        loaded_entry,
        "calendar_move_event",
        calendar="family",
        uid=event["uid"],
        start=f"{tomorrow}T14:30",
    )
    [moved] = await _family_events(hass, tomorrow)
    moved_start = dt_util.parse_datetime(moved["start"])
    moved_end = dt_util.parse_datetime(moved["end"])
    assert moved_start is not None
    assert moved_end is not None
    assert (moved_start.hour, moved_start.minute) == (14, 30)
    assert moved_end - moved_start == timedelta(hours=1)  # kept its length

    deleted = await call_tool(
        hass, loaded_entry, "calendar_delete_event", calendar="Family", uid=event["uid"]
    )
    assert deleted["deleted"]["summary"] == "Dentist"
    assert await _family_events(hass, tomorrow) == []


@pytest.mark.usefixtures("calendars")
async def test_one_occurrence_of_a_repeating_event_moves_or_goes_alone(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Bin day every week: moving or deleting one week leaves the other weeks alone."""
    first = dt_util.now().date() + timedelta(days=1)
    days = [first + timedelta(weeks=week) for week in range(3)]
    created = await call_tool(
        hass,
        loaded_entry,
        "calendar_create_event",
        calendar="Family",
        summary="Bin day",
        start=f"{first}T07:00",
        repeat="FREQ=WEEKLY;COUNT=3",
    )
    assert created["created"]["repeat"] == "FREQ=WEEKLY;COUNT=3"
    listed = await call_tool(
        hass, loaded_entry, "calendar_list_events", start=str(first), end=str(days[-1])
    )
    weeks = [event for event in listed["events"] if event["summary"] == "Bin day"]
    assert [event["start"][:10] for event in weeks] == [str(day) for day in days]
    assert len({event["uid"] for event in weeks}) == 1
    assert all(event["repeat"] == "FREQ=WEEKLY;COUNT=3" for event in weeks)

    second, third = weeks[1], weeks[2]
    await call_tool(
        hass,
        loaded_entry,
        "calendar_move_event",
        calendar="Family",
        uid=second["uid"],
        recurrence_id=second["recurrence_id"],
        start=f"{days[1]}T09:15",
    )
    await call_tool(
        hass,
        loaded_entry,
        "calendar_delete_event",
        calendar="Family",
        uid=third["uid"],
        recurrence_id=third["recurrence_id"],
    )

    def at(events: list[dict[str, Any]]) -> list[str]:
        times = [dt_util.parse_datetime(event["start"]) for event in events]
        return [dt_util.as_local(time).strftime("%H:%M") for time in times if time]

    assert at(await _family_events(hass, days[0])) == ["07:00"]  # untouched
    assert at(await _family_events(hass, days[1])) == ["09:15"]  # moved alone
    assert await _family_events(hass, days[2]) == []  # deleted alone


@pytest.mark.usefixtures("calendars")
async def test_all_calendars_are_listed_together(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Without a calendar name, every exposed calendar is read: holidays included."""
    year = dt_util.now().year + 1
    await call_tool(
        hass,
        loaded_entry,
        "calendar_create_event",
        summary="Pantomime",
        start=f"{year}-12-24T18:00",
        end=f"{year}-12-24T20:00",
        calendar="Family",
    )
    listed = await call_tool(
        hass,
        loaded_entry,
        "calendar_list_events",
        start=f"{year}-12-24",
        end=f"{year}-12-25",
    )
    summaries = [(event["calendar"], event["summary"]) for event in listed["events"]]
    assert ("Family", "Pantomime") in summaries
    assert ("United Kingdom", "Christmas Day") in summaries
    assert summaries.index(("Family", "Pantomime")) < summaries.index(
        ("United Kingdom", "Christmas Day")
    )

    async_expose_entity(hass, "conversation", HOLIDAYS, False)
    listed = await call_tool(
        hass, loaded_entry, "calendar_list_events", start=f"{year}-12-24", end=f"{year}-12-25"
    )
    assert {event["calendar"] for event in listed["events"]} == {"Family"}


@pytest.mark.usefixtures("calendars")
@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"calendar": "United Kingdom", "summary": "Party"}, "read-only"),
        ({"calendar": "Work", "summary": "Party"}, "No calendar called 'Work'"),
        ({"calendar": "Family", "summary": "Party", "start": "yesterday"}, "ISO date"),
        ({"calendar": "Family", "summary": "Party", "start": "2001-01-01T10:00"}, "in the past"),
        (
            {"calendar": "Family", "summary": "Party", "end": "2100-01-01T09:00"},
            "end must be after start",
        ),
        ({"calendar": "Family", "summary": ""}, "Invalid arguments"),
        ({"calendar": "Family", "summary": "Gym", "repeat": "every tuesday"}, "RRULE"),
        ({"calendar": "Family", "summary": "Gym", "repeat": "FREQ=WEEKLY;BYDAY=XX"}, "RRULE"),
    ],
)
async def test_bad_requests_get_clear_errors(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, args: dict[str, Any], error: str
) -> None:
    """Read-only calendars, unknown names, past or garbled times: errors the model can read."""
    request = {"start": "2100-01-01T10:00", **args}
    with pytest.raises(HomeAssistantError, match=error):
        await call_tool(hass, loaded_entry, "calendar_create_event", **request)
    assert await _family_events(hass, date(2100, 1, 1)) == []
