"""Saved data that cannot be read, and restarts: the entry loads, and nothing is lost quietly.

Shackleton's stores use real files here, in a config folder of the test's own: phcc's
`hass` keeps every Store in memory, which can hold neither a broken file nor what a
crash leaves on disk. Home Assistant's own stores stay in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
import json
from pathlib import Path
import time
from typing import Any
from unittest.mock import patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import STORAGE_DIR, Store
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.shackleton.const import DOMAIN, EVENT_REMINDER
from custom_components.shackleton.voice.local_audio import (
    LocalAudioInput,
    LocalAudioOutput,
    read_wav,
)
from harness.fakes import ChatReply, FakeOpenAI

from .conftest import AUDIO, call_tool, wait_for

# Taken at import, before a test's hass puts its in-memory storage in their place.
REAL_IO = {
    name: getattr(Store, name) for name in ("_async_load", "_async_write_data", "async_remove")
}
# Saved words that must reach neither a repair issue nor the log.
PRIVATE = "Ada's locker code is 4711"
LATER = "2030-05-01T17:00:00+00:00"


@pytest.fixture
def hass_config_dir(hass_tmp_config_dir: str) -> str:
    """Give each test a config folder of its own, so its .storage files are its own."""
    return hass_tmp_config_dir


@pytest.fixture
def storage(hass: HomeAssistant) -> Iterator[Path]:
    """Let Shackleton's stores read and write real files; return the .storage folder."""

    def route(name: str) -> Callable[..., Any]:
        in_memory, real = getattr(Store, name), REAL_IO[name]

        def io(store: Store[Any], *args: Any) -> Any:
            return (real if store.key.startswith(f"{DOMAIN}.") else in_memory)(store, *args)

        return io

    with ExitStack() as stack:
        for name in REAL_IO:
            stack.enter_context(patch.object(Store, name, route(name)))
        yield Path(hass.config.path(STORAGE_DIR))


@pytest.fixture
def entry(
    hass: HomeAssistant, storage: Path, mock_config_entry: MockConfigEntry
) -> MockConfigEntry:
    """Add the entry, on real files; each test sets it up when its files are ready."""
    mock_config_entry.add_to_hass(hass)
    return mock_config_entry


async def _start(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.state is ConfigEntryState.LOADED


async def _flush(hass: HomeAssistant) -> None:
    """Let the delayed saves land (the rooms' is the longest, 10 s)."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=11))
    await hass.async_block_till_done()


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.glob(f"{DOMAIN}.*")}


def _put(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(exist_ok=True)
    for path in folder.glob(f"{DOMAIN}.*"):
        path.unlink()
    for name, content in files.items():
        (folder / name).write_bytes(content)


async def _announce(hass: HomeAssistant, message: str, **data: Any) -> Any:
    return await hass.services.async_call(
        DOMAIN,
        "announce",
        {"message": message, "when_nobody_listens": "queue", **data},
        blocking=True,
        return_response=True,
    )


def _in_hours(hours: float) -> str:
    """Return a naive local time `hours` from now, as a model sends it."""
    return (dt_util.now() + timedelta(hours=hours)).replace(tzinfo=None).isoformat("T", "seconds")


@dataclass(frozen=True)
class Saved:
    """One of the entry's stores, with what it holds when right and when wrong."""

    name: str  # the last part of its key
    what: str  # as the repair issue names it
    good: Any
    wrong_shape: Any
    bad_item: Any

    def texts(self, data: Any) -> list[str]:
        """Return the words (or rooms) in the store's saved data."""
        if self.name == "rooms":
            return list(data)
        items = data if self.name == "announcements" else data[self.name]
        return [item["text"] for item in items]

    async def add(self, hass: HomeAssistant, entry: MockConfigEntry, text: str) -> None:
        """Add one, as a user would."""
        if self.name == "notes":
            await call_tool(hass, entry, "note_save", text=text)
        elif self.name == "reminders":
            await call_tool(hass, entry, "reminder_set", text=text, due=_in_hours(1))
        elif self.name == "rooms":
            entry.runtime_data.rooms.async_served(text)
        else:
            await _announce(hass, text)


NOTE = {"id": "01N", "text": PRIVATE, "user_id": None, "created": "2026-05-01T10:00:00+00:00"}
REMINDER = {"id": "01R", "text": PRIVATE, "due": LATER, "user_id": None, "room": None}
QUEUED = {"text": PRIVATE, "chime": False, "priority": "normal", "room": None, "id": "01A"}
STORES = [
    Saved(
        "notes",
        "notes",
        good={"notes": [NOTE]},
        wrong_shape={"notes": 5},
        bad_item={"notes": [{"id": "01N", "text": PRIVATE}]},
    ),
    Saved(
        "reminders",
        "reminders",
        good={"reminders": [REMINDER]},
        wrong_shape={"reminders": {"01R": PRIVATE}},
        bad_item={"reminders": [{**REMINDER, "due": "2030-05-01T17:00:00"}]},  # no zone
    ),
    Saved(
        "rooms",
        "rooms",
        good={"kitchen": LATER},
        wrong_shape=["kitchen"],
        bad_item={"kitchen": "yesterday"},
    ),
    Saved(
        "announcements",
        "queued announcements",
        good=[{**QUEUED, "expires": 4e9}],
        wrong_shape={"text": PRIVATE},
        bad_item=[{**QUEUED, "expires": "tomorrow"}],
    ),
]


def _envelope(key: str, data: Any, version: int = 1) -> bytes:
    return json.dumps({"version": version, "minor_version": 1, "key": key, "data": data}).encode()


FAULTS: dict[str, Callable[[Saved, str], bytes]] = {
    # What a power cut can leave: an empty file, or one of zeros.
    "empty": lambda saved, key: b"",
    "zeros": lambda saved, key: bytes(64),
    "truncated": lambda saved, key: _envelope(key, saved.good)[:-20],
    "no_envelope": lambda saved, key: json.dumps({"key": key, "data": saved.good}).encode(),
    # Saved by a newer Shackleton, then Home Assistant was restored from an older backup.
    "newer_version": lambda saved, key: _envelope(key, saved.good, version=2),
    "wrong_shape": lambda saved, key: _envelope(key, saved.wrong_shape),
    "bad_item": lambda saved, key: _envelope(key, saved.bad_item),
}
# Not JSON at all: Home Assistant's Store keeps these aside itself, with its own issue.
NOT_JSON = {"empty", "zeros", "truncated"}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("saved", STORES, ids=[saved.name for saved in STORES])
async def test_unreadable_storage_is_kept_aside_and_the_entry_loads(
    hass: HomeAssistant,
    storage: Path,
    entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
    caplog: pytest.LogCaptureFixture,
    saved: Saved,
    fault: str,
) -> None:
    """The entry loads empty; the file is kept as it was, a repair says where; new data saves."""
    key = f"{DOMAIN}.{entry.entry_id}.{saved.name}"
    path = storage / key
    bad = FAULTS[fault](saved, key)
    await hass.async_add_executor_job(_put, storage, {key: bad})

    await _start(hass, entry)

    kept = await hass.async_add_executor_job(lambda: list(storage.glob(f"{key}.corrupt.*")))
    assert len(kept) == 1
    assert await hass.async_add_executor_job(kept[0].read_bytes) == bad
    if fault in NOT_JSON:
        [issue] = [
            issue
            for (domain, issue_id), issue in issue_registry.issues.items()
            if domain == "homeassistant" and issue_id.startswith(f"storage_corruption_{key}_")
        ]
        assert issue.issue_domain == DOMAIN
        assert issue.translation_placeholders is not None
        assert issue.translation_placeholders["corrupt_path"] == str(kept[0])
    else:
        [issue] = [
            issue
            for (domain, issue_id), issue in issue_registry.issues.items()
            if domain == DOMAIN and issue_id.startswith(f"storage_corrupt_{key}_")
        ]
        assert issue.translation_key == "storage_corrupt"
        assert issue.severity is ir.IssueSeverity.WARNING
        assert issue.is_persistent
        assert not issue.is_fixable
        assert issue.translation_placeholders is not None
        placeholders = dict(issue.translation_placeholders)
        error = placeholders.pop("error")
        assert placeholders == {"store": saved.what, "path": str(path), "kept": str(kept[0])}
        assert error
        assert PRIVATE not in error
    assert PRIVATE not in caplog.text

    # It started empty, and what comes next is saved as usual.
    await saved.add(hass, entry, "hall" if saved.name == "rooms" else "The post came")
    await _flush(hass)
    written = json.loads(await hass.async_add_executor_job(path.read_bytes))
    assert written["version"] == 1
    assert saved.texts(written["data"]) == ["hall" if saved.name == "rooms" else "The post came"]


async def test_a_crash_loses_only_what_was_not_on_disk_yet(
    hass: HomeAssistant,
    storage: Path,
    entry: MockConfigEntry,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Home Assistant killed, and started again two hours later.

    Notes are written at once, reminders as soon as the loop turns, queued announcements
    within a second and rooms within ten: what is on disk comes back, and what changed in
    that last second (or ten) is lost. A reminder due while Home Assistant was down
    arrives at the start, marked late; an announcement whose queue time ran out
    meanwhile is dropped unheard.
    """
    await _start(hass, entry)
    delivered = async_capture_events(hass, EVENT_REMINDER)
    await call_tool(hass, entry, "note_save", text="The spare key is under the blue pot")
    bins = await call_tool(hass, entry, "reminder_set", text="Bins out", due=_in_hours(1))
    await call_tool(hass, entry, "reminder_set", text="Oven off", due=_in_hours(3))
    entry.runtime_data.rooms.async_served("hall")
    await _announce(hass, "The post came", rooms=["hall"], queue_minutes=240)
    await _announce(hass, "Dinner is ready", rooms=["hall"], queue_minutes=60)
    await _flush(hass)
    # Changed just before the crash: not on disk yet, so lost.
    entry.runtime_data.rooms.async_served("porch")
    await _announce(hass, "Too late to keep", rooms=["hall"], queue_minutes=240)
    # The crash: what is on disk now is all that the next start gets.
    on_disk = await hass.async_add_executor_job(_files, storage)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_add_executor_job(_put, storage, on_disk)

    freezer.tick(timedelta(hours=2))
    await _start(hass, entry)
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    data = entry.runtime_data
    assert [note.text for note in data.notes.notes.values()] == [
        "The spare key is under the blue pot"
    ]
    assert data.rooms.rooms == ["hall"]
    assert [item.text for item in data.voice.queued] == ["The post came"]
    assert [(event.data["id"], event.data["late"]) for event in delivered] == [
        (bins["set"]["id"], True)
    ]
    assert [reminder.text for reminder in data.reminders.reminders.values()] == ["Oven off"]
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=1, seconds=2))
    await hass.async_block_till_done()
    assert [event.data["late"] for event in delivered] == [True, False]
    assert data.reminders.reminders == {}


async def test_a_queued_announcement_survives_a_stop_and_is_said_when_someone_comes(
    hass: HomeAssistant,
    storage: Path,
    entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
) -> None:
    """Queued for an empty kitchen, then Home Assistant stops and starts: said on the join."""
    await _start(hass, entry)
    entry.runtime_data.rooms.async_served("kitchen")
    answer = await _announce(hass, "The washing is done", rooms=["kitchen"])
    assert answer["rooms"] == [{"room": "kitchen", "outcome": "queued"}]
    # Stopping saves the queue at once (unloading and HA's stop share VoiceManager.async_stop).
    assert await hass.config_entries.async_unload(entry.entry_id)
    on_disk = await hass.async_add_executor_job(_files, storage)
    queue = json.loads(on_disk[f"{DOMAIN}.{entry.entry_id}.announcements"])["data"]
    assert [(item["text"], item["room"]) for item in queue] == [("The washing is done", "kitchen")]

    await _start(hass, entry)
    manager = entry.runtime_data.voice
    assert [item.text for item in manager.queued] == ["The washing is done"]
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    await manager.async_start_local_session("kitchen", audio_input=mic, audio_output=speaker)
    await speaker.wait_for_segment(1)
    assert fake_openai.tts_inputs == ["The washing is done"]
    assert manager.queued == []
    mic.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    # Said once: the emptied queue is what the next start finds.
    on_disk = await hass.async_add_executor_job(_files, storage)
    assert json.loads(on_disk[f"{DOMAIN}.{entry.entry_id}.announcements"])["data"] == []


async def test_a_turn_in_progress_is_dropped_at_a_stop_and_the_next_start_serves_turns(
    hass: HomeAssistant,
    storage: Path,
    entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
) -> None:
    """Stopped while the model is thinking: the stop is not held up, the turn not resumed."""
    await _start(hass, entry)
    speech = await hass.async_add_executor_job(read_wav, AUDIO / "whats_the_time.wav")
    fake_openai.transcripts = ["Remember that the spare key is under the blue pot."]
    fake_openai.chat_script = [ChatReply(fault="hang")] * 2
    mic = LocalAudioInput()
    manager = entry.runtime_data.voice
    await manager.async_start_local_session(
        "kitchen", audio_input=mic, audio_output=LocalAudioOutput()
    )
    await mic.play_pcm(*speech)
    await wait_for(lambda: len(fake_openai.chat_requests) == 1)

    started = time.monotonic()
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert time.monotonic() - started < 3
    mic.close()
    await _start(hass, entry)
    data = entry.runtime_data
    assert data.voice.queued == []
    fake_openai.transcripts = ["What's the time?"]
    fake_openai.chat_script = [ChatReply("It is ten past six.")]
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    await data.voice.async_start_local_session("kitchen", audio_input=mic, audio_output=speaker)
    await mic.play_pcm(*speech)
    await speaker.wait_for_segment(1)
    # The new turn is answered; the one cut off is not sent again.
    assert fake_openai.tts_inputs == ["It is ten past six."]
    assert len(fake_openai.chat_requests) == 2
    mic.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_removing_the_entry_clears_its_storage_issues(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_config_entry: MockConfigEntry,
    issue_registry: ir.IssueRegistry,
) -> None:
    """The repair goes with the entry; without a file to keep aside, the repair says so."""
    key = f"{DOMAIN}.{mock_config_entry.entry_id}.notes"
    hass_storage[key] = {"version": 1, "key": key, "data": "oops"}  # held in memory only
    mock_config_entry.add_to_hass(hass)
    await _start(hass, mock_config_entry)
    [(issue_id, issue)] = [
        (issue_id, issue)
        for (domain, issue_id), issue in issue_registry.issues.items()
        if domain == DOMAIN and issue_id.startswith(f"storage_corrupt_{key}_")
    ]
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["kept"] == "nowhere (No such file or directory)"

    assert await hass.config_entries.async_remove(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, issue_id) is None
    assert key not in hass_storage
