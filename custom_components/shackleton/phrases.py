"""Shackleton's own sentences, for homes whose assistant is Assist with no language model.

Assist's intents cover devices, timers and lists; calendars and reminders are
Shackleton's tools, which a language model calls. So that a fully local assistant can
answer "what's on the calendar tomorrow?" and "remind me to call mom at 5", these few
sentences are matched first (with hassil, Assist's own matcher) and run those tools
through the Shackleton API: same exposure rules, same audit. Anything else goes to
Assist. English only, like the sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
import functools
import re
from typing import Any, Final

from hassil.intents import Intents
from hassil.recognize import recognize
from homeassistant.util import dt as dt_util

CALENDAR: Final = "ShackletonCalendar"
REMINDER: Final = "ShackletonReminder"
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SENTENCES: Final[dict[str, Any]] = {
    "language": "en",
    "intents": {
        CALENDAR: {
            "data": [
                {
                    "sentences": [
                        "what's on [my|the] calendar [for] {day}",
                        "what is on [my|the] calendar [for] {day}",
                        "what('s| is) on {day}",
                        "what do I have [on] {day}",
                        "[do I have] anything on {day}",
                    ]
                }
            ]
        },
        REMINDER: {
            "data": [
                {
                    "sentences": [
                        "remind me to {task} in {minutes} minute[s]",
                        "remind me to {task} in {hours} hour[s]",
                        "remind me to {task} [[on] {day}] at {hour}[:{minute}] [{meridiem}]",
                        "remind me to {task} at {hour}[:{minute}] [{meridiem}] [on] {day}",
                        "[on] {day} at {hour}[:{minute}] [{meridiem}] remind me to {task}",
                        "in {minutes} minute[s] remind me to {task}",
                    ]
                }
            ]
        },
    },
    "lists": {
        "task": {"wildcard": True},
        "minutes": {"range": {"from": 1, "to": 1440}},
        "hours": {"range": {"from": 1, "to": 72}},
        "hour": {"range": {"from": 0, "to": 23}},
        "minute": {"range": {"from": 0, "to": 59}},
        "meridiem": {"values": ["am", "pm"]},
        "day": {"values": ["today", "tonight", "tomorrow", *WEEKDAYS]},
    },
}


@dataclass(frozen=True, slots=True)
class Matched:
    """A sentence of ours: which tool to run with which arguments, and how to answer."""

    intent: str
    tool: str
    arguments: dict[str, Any]
    day: date | None = None
    when: datetime | None = None


@functools.cache
def _intents() -> Intents:
    return Intents.from_dict(SENTENCES)


def _normalise(text: str) -> str:
    """Make speech-to-text output matchable: "5 p.m." → "5 pm", no final full stop."""
    text = re.sub(r"\b([ap])\.\s?m\.?", r"\1m", text.strip(), flags=re.IGNORECASE)
    text = re.sub(r"(\d)(am|pm)\b", r"\1 \2", text, flags=re.IGNORECASE)
    return text.rstrip(".!?").strip()


def _day(name: str | None, now: datetime) -> date:
    if name in (None, "today", "tonight"):
        return now.date()
    if name == "tomorrow":
        return now.date() + timedelta(days=1)
    ahead = (WEEKDAYS.index(str(name)) - now.weekday()) % 7
    return now.date() + timedelta(days=ahead or 7)  # "on Monday" said on a Monday: next


def _at(values: dict[str, Any], now: datetime) -> datetime:
    """Return when "at 5", "at 5 pm", "tomorrow at 9:30" means, in the future."""
    hour, minute = int(values["hour"]), int(values.get("minute") or 0)
    meridiem = values.get("meridiem")
    if meridiem == "pm" and hour < 12:
        hour += 12
    elif meridiem == "am" and hour == 12:
        hour = 0
    day = _day(values.get("day"), now)
    when = datetime.combine(day, datetime.min.time(), now.tzinfo).replace(hour=hour, minute=minute)
    if meridiem is None and hour < 12 and values.get("day") == "tonight":
        when += timedelta(hours=12)
    if when > now:
        return when
    if meridiem is None and hour < 12 and when + timedelta(hours=12) > now:
        return when + timedelta(hours=12)  # "at 5" said at 2 pm: 5 pm
    return when + timedelta(days=1) if values.get("day") is None else when


def match(text: str, now: datetime | None = None) -> Matched | None:
    """Return our sentence in `text`, or None to leave it to Assist."""
    result = recognize(_normalise(text), _intents())
    if result is None:
        return None
    values = {name: entity.value for name, entity in result.entities.items()}
    now = now or dt_util.now()
    if result.intent.name == CALENDAR:
        day = _day(values["day"], now)
        return Matched(
            CALENDAR, "calendar_list_events", {"start": str(day), "end": str(day)}, day=day
        )
    task = str(values["task"]).strip()
    if "minutes" in values:
        when = now + timedelta(minutes=int(values["minutes"]))
    elif "hours" in values:
        when = now + timedelta(hours=int(values["hours"]))
    else:
        when = _at(values, now)
    when = when.replace(second=0, microsecond=0)
    due = when.replace(tzinfo=None).isoformat(timespec="minutes")
    return Matched(REMINDER, "reminder_set", {"text": task, "due": due}, when=when)


def _spoken_day(day: date, now: datetime) -> str:
    if day == now.date():
        return "today"
    if day == now.date() + timedelta(days=1):
        return "tomorrow"
    return f"on {day.strftime('%A')}"


def answer(matched: Matched, result: dict[str, Any], now: datetime | None = None) -> str:
    """Say what a tool did, the way Assist answers: short."""
    now = now or dt_util.now()
    if matched.intent == CALENDAR and matched.day is not None:
        when = _spoken_day(matched.day, now)
        events = result.get("events") or []
        if not events:
            return f"There is nothing on the calendar {when}."
        said = [
            event["summary"]
            if event.get("all_day")
            else f"{event['summary']} at {event['start'][11:16]}"
            for event in events
        ]
        listing = said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]
        return f"{when.capitalize()} you have {listing}."
    due = matched.when or now
    when = f"{_spoken_day(due.date(), now)} at {due.strftime('%H:%M')}"
    return f"I'll remind you to {matched.arguments['text']} {when}."
