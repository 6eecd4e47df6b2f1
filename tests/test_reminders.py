"""Reminders: stored, re-armed after a restart, delivered (as a notification here)."""

from __future__ import annotations

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import persistent_notification
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.shackleton.const import EVENT_REMINDER

from .conftest import call_tool


def _local(delta: timedelta) -> str:
    """Return a naive local time string, as a model would send it."""
    return (dt_util.now() + delta).replace(tzinfo=None).isoformat(timespec="seconds")


async def test_due_reminder_becomes_a_notification_without_a_room(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Set from text (no room), a due reminder is a persistent notification and an event."""
    delivered = async_capture_events(hass, EVENT_REMINDER)
    shown = persistent_notification._async_get_or_create_notifications(hass)
    answer = await call_tool(
        hass, loaded_entry, "reminder_set", text="Call mom", due=_local(timedelta(hours=1))
    )
    assert answer["said_in"] == "a notification"
    listed = await call_tool(hass, loaded_entry, "reminder_list")
    assert [r["text"] for r in listed["reminders"]] == ["Call mom"]

    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=59))
    await hass.async_block_till_done()
    assert delivered == []
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=1, seconds=2))
    await hass.async_block_till_done()
    [event] = delivered
    assert event.data["delivered"] == "notification"
    assert event.data["late"] is False
    notice = shown[f"shackleton_reminder_{answer['set']['id']}"]
    assert notice["message"] == "Call mom"
    assert (await call_tool(hass, loaded_entry, "reminder_list"))["reminders"] == []


async def test_reminders_survive_a_restart_and_late_ones_still_arrive(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, freezer: FrozenDateTimeFactory
) -> None:
    """Saved across an unload; one due while unloaded is delivered at start, marked late."""
    delivered = async_capture_events(hass, EVENT_REMINDER)
    await call_tool(
        hass, loaded_entry, "reminder_set", text="Bins out", due=_local(timedelta(hours=1))
    )
    await call_tool(
        hass, loaded_entry, "reminder_set", text="Oven off", due=_local(timedelta(hours=3))
    )
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=2))
    await hass.async_block_till_done()
    assert delivered == []  # unloaded: nothing armed, nothing lost

    # Start again two hours later: "Bins out" is overdue, "Oven off" still to come.
    freezer.tick(timedelta(hours=2))
    assert await hass.config_entries.async_setup(loaded_entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    # Late, and its words kept out of the event (transcripts are off by default).
    assert [(e.data["text"], e.data["late"]) for e in delivered] == [("**REDACTED**", True)]
    listed = await call_tool(hass, loaded_entry, "reminder_list")
    assert [r["text"] for r in listed["reminders"]] == ["Oven off"]


async def test_bad_times_and_cancelling(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
) -> None:
    """Past or garbled times are refused; only the user who set it may cancel it."""
    with pytest.raises(HomeAssistantError, match="has passed"):
        await call_tool(
            hass, loaded_entry, "reminder_set", text="x", due=_local(-timedelta(hours=1))
        )
    with pytest.raises(HomeAssistantError, match="local date and time"):
        await call_tool(hass, loaded_entry, "reminder_set", text="x", due="Friday at 5")
    set_ = await call_tool(
        hass,
        loaded_entry,
        "reminder_set",
        user=hass_admin_user.id,
        text="Dentist",
        due=_local(timedelta(hours=1)),
    )
    reminder_id = set_["set"]["id"]
    with pytest.raises(HomeAssistantError, match="No such reminder"):
        await call_tool(
            hass, loaded_entry, "reminder_cancel", user=hass_read_only_user.id, id=reminder_id
        )
    assert (await call_tool(hass, loaded_entry, "reminder_list", user=hass_read_only_user.id))[
        "reminders"
    ] == []
    await call_tool(hass, loaded_entry, "reminder_cancel", user=hass_admin_user.id, id=reminder_id)
    delivered = async_capture_events(hass, EVENT_REMINDER)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=2))
    await hass.async_block_till_done()
    assert delivered == []
