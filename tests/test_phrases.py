"""Calendar and reminder sentences for Assist-only homes, and their times."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.shackleton import phrases
from custom_components.shackleton.home_bridge import HassHome

LONDON = ZoneInfo("Europe/London")
# A Wednesday, 2 pm.
NOW = datetime(2026, 11, 25, 14, 0, tzinfo=LONDON)


@pytest.mark.parametrize(
    ("said", "due"),
    [
        ("Remind me to call mom at 5pm.", "2026-11-25T17:00"),
        ("Remind me to call mom at 5 p.m.", "2026-11-25T17:00"),
        ("Remind me to call mom at five.", "2026-11-25T17:00"),  # 5 am has passed
        ("Remind me to call mom at 9.", "2026-11-25T21:00"),
        ("Remind me to call mom at 9 am.", "2026-11-26T09:00"),  # tomorrow's
        ("Remind me to call mom at 11 pm.", "2026-11-25T23:00"),
        ("Remind me to call mom tomorrow at 9:30 am.", "2026-11-26T09:30"),
        ("Remind me to call mom on Friday at 5 pm.", "2026-11-27T17:00"),
        ("Remind me to call mom at 5 pm on Friday.", "2026-11-27T17:00"),
        ("Remind me to call mom on Wednesday at 9.", "2026-12-02T09:00"),  # next week's
        ("Remind me to call mom tonight at 8.", "2026-11-25T20:00"),
        ("Remind me to call mom in 10 minutes.", "2026-11-25T14:10"),
        ("Remind me to call mom in two hours.", "2026-11-25T16:00"),
        ("In 5 minutes remind me to call mom.", "2026-11-25T14:05"),
    ],
)
def test_reminder_times(said: str, due: str) -> None:
    """Whisper's ways of writing times all become the next such time, in the home's zone."""
    matched = phrases.match(said, NOW)
    assert matched is not None
    assert matched.tool == "reminder_set"
    assert matched.arguments == {"text": "call mom", "due": due}


@pytest.mark.parametrize(
    ("said", "day"),
    [
        ("What's on the calendar tomorrow?", "2026-11-26"),
        ("What is on my calendar today?", "2026-11-25"),
        ("What do I have on Friday?", "2026-11-27"),
        ("Anything on Monday?", "2026-11-30"),
    ],
)
def test_calendar_days(said: str, day: str) -> None:
    """A day name is the next such day; "today" and "tomorrow" are what they say."""
    matched = phrases.match(said, NOW)
    assert matched is not None
    assert (matched.tool, matched.arguments) == ("calendar_list_events", {"start": day, "end": day})


@pytest.mark.parametrize(
    "said", ["Turn on the kitchen light.", "Set a timer for 5 minutes.", "Remind me"]
)
def test_everything_else_is_left_to_assist(said: str) -> None:
    """Assist's own sentences are not ours."""
    assert phrases.match(said, NOW) is None


def test_answers() -> None:
    """Short answers, the way Assist gives them."""
    calendar = phrases.match("What's on the calendar tomorrow?", NOW)
    assert calendar is not None
    events = [
        {"summary": "Bin day", "all_day": True, "start": "2026-11-26"},
        {"summary": "Dentist", "all_day": False, "start": "2026-11-26T10:00+00:00"},
    ]
    assert phrases.answer(calendar, {"events": events}, NOW) == (
        "Tomorrow you have Bin day and Dentist at 10:00."
    )
    assert phrases.answer(calendar, {"events": []}, NOW) == (
        "There is nothing on the calendar tomorrow."
    )
    reminder = phrases.match("Remind me to call mom on Friday at 5 pm", NOW)
    assert reminder is not None
    assert phrases.answer(reminder, {}, NOW) == "I'll remind you to call mom on Friday at 17:00."


async def test_assist_gets_calendar_and_reminders(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, tmp_path: Path
) -> None:
    """Through Assist, in a real hass: a calendar question and a reminder, no model at all."""
    await hass.config.async_set_time_zone("Europe/London")
    hass.config.config_dir = str(tmp_path)
    (tmp_path / ".storage").mkdir()
    calendar = MockConfigEntry(
        domain="local_calendar", data={"calendar_name": "Family", "storage_key": "family"}
    )
    calendar.add_to_hass(hass)
    assert await hass.config_entries.async_setup(calendar.entry_id)
    await hass.async_block_till_done()
    async_expose_entity(hass, "conversation", "calendar.family", True)
    tomorrow = dt_util.now().date() + timedelta(days=1)
    await hass.services.async_call(
        "calendar",
        "create_event",
        {
            "entity_id": "calendar.family",
            "summary": "Dentist",
            "start_date_time": f"{tomorrow} 10:00:00",
            "end_date_time": f"{tomorrow} 11:00:00",
        },
        blocking=True,
    )
    home = HassHome(hass, loaded_entry)
    agent = "conversation.home_assistant"

    said, tools = await home.converse("kitchen", "What's on the calendar tomorrow?", agent)
    assert (said, tools) == ("Tomorrow you have Dentist at 10:00.", ["calendar_list_events"])

    asked = dt_util.now()
    said, tools = await home.converse("kitchen", "Remind me to call mom in 10 minutes.", agent)
    assert tools == ["reminder_set"]
    [reminder] = loaded_entry.runtime_data.reminders.reminders.values()
    assert reminder.text == "call mom"
    assert reminder.room == "kitchen"
    due = datetime.fromisoformat(reminder.due)
    assert timedelta(minutes=9) < due - asked < timedelta(minutes=11)
    # Late in the evening, ten minutes from now is tomorrow: the sentence says which.
    day = "today" if due.date() == asked.date() else "tomorrow"
    assert said == f"I'll remind you to call mom {day} at {due:%H:%M}."

    # Anything else is Assist's, which does not know this device.
    said, tools = await home.converse("kitchen", "Turn on the rocket.", agent)
    assert tools == []
    assert "rocket" in said.lower()
    assert await hass.config_entries.async_unload(calendar.entry_id)
