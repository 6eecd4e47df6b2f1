"""Cameras as eyes: the camera tool and the AI task entity, on HA's real local_file cameras.

The cameras serve a PNG written by the test; the entry's language model is the fake
OpenAI-compatible server, which receives the picture and answers.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
import json
import os
from pathlib import Path
import struct
import time
from typing import Any
import zlib

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.shackleton import ai_task
from custom_components.shackleton.const import DOMAIN, EVENT_TOOL_CALL
from custom_components.shackleton.home_bridge import HassHome
from custom_components.shackleton.tools.cameras import SNAPSHOT_SECONDS
from custom_components.shackleton.vision import MODEL_SECONDS
from harness.fakes import ChatReply, FakeOpenAI

from .conftest import call_tool
from .readme_examples import async_run_example

AGENT = "conversation.shackleton_127_0_0_1"
FRONT_DOOR = "camera.front_door"
GARAGE = "camera.garage"
QUESTION = "Who is at the front door?"
RESPONSE_FILE = Path(__file__).parents[1] / ".scratch" / "generate_data_response.json"
# A bound's error may come this much after the bound itself (a loaded CI machine).
SLACK = 2.0


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """Return a PNG of one colour (written here: no binary file in the repository)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


DOOR_PICTURE = png(4, 3, (200, 120, 40))


async def add_camera(hass: HomeAssistant, title: str, path: Path) -> MockConfigEntry:
    """Set up HA's local_file camera `title` on the picture at `path`."""
    # HA 2026.10 names the camera by its `name` option, 2026.11 by the entry's title.
    options = {"name": title, "file_path": str(path)}
    entry = MockConfigEntry(domain="local_file", title=title, options=options)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@pytest.fixture
async def cameras(hass: HomeAssistant, tmp_path: Path) -> AsyncIterator[Path]:
    """Set up a front door camera exposed to Assist, and a garage camera that is not."""
    door = tmp_path / "front_door.png"
    door.write_bytes(DOOR_PICTURE)
    garage = tmp_path / "garage.png"
    garage.write_bytes(png(2, 2, (0, 0, 0)))
    entries = [await add_camera(hass, "Front door", door), await add_camera(hass, "Garage", garage)]
    assert hass.states.get(FRONT_DOOR) is not None
    assert hass.states.get(GARAGE) is not None
    async_expose_entity(hass, "conversation", FRONT_DOOR, True)
    async_expose_entity(hass, "conversation", GARAGE, False)
    yield door
    for entry in entries:
        await hass.config_entries.async_unload(entry.entry_id)


def pictures(request: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Return the (MIME type, bytes) of every image part a chat request carries."""
    found = []
    for message in request["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else []:
            if part["type"] == "image_url":
                header, _, data = part["image_url"]["url"].partition(",")
                assert header.startswith("data:")
                assert header.endswith(";base64")
                found.append((header[5:].removesuffix(";base64"), base64.b64decode(data)))
    return found


@pytest.mark.usefixtures("cameras")
async def test_the_text_agent_answers_who_is_at_the_door(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """The agent calls the camera tool; the model gets the still, and its words come back."""
    audit = async_capture_events(hass, EVENT_TOOL_CALL)
    look = {"camera": "Front door", "question": QUESTION}
    fake_openai.chat_script = [
        ChatReply(tool_calls=[("camera_look", look)]),
        ChatReply("A courier in a red cap, holding a parcel."),
        ChatReply("A courier is at the front door with a parcel."),
    ]
    result = await conversation.async_converse(
        hass, text=QUESTION, conversation_id=None, context=Context(), language="en", agent_id=AGENT
    )
    speech = result.response.speech["plain"]["speech"]
    assert speech == "A courier is at the front door with a parcel."
    offered, vision, final = fake_openai.chat_requests
    assert "camera_look" in [tool["function"]["name"] for tool in offered["tools"]]
    assert "Garage" not in json.dumps(offered["tools"])  # not exposed: not even named
    # The picture itself, byte for byte, in one request (not streamed) to the entry's model.
    assert pictures(vision) == [("image/png", DOOR_PICTURE)]
    assert vision["model"] == "gpt-4.1-mini"
    assert not vision.get("stream")
    assert vision["messages"][1]["content"][0] == {"type": "text", "text": QUESTION}
    tool_result = json.loads(final["messages"][-1]["content"])
    assert tool_result["answer"] == "A courier in a red cap, holding a parcel."
    assert tool_result["camera"] == "Front door"
    assert [(e.data["tool"], e.data["outcome"]) for e in audit] == [("camera_look", "ok")]


@pytest.mark.usefixtures("cameras")
async def test_rooms_get_the_camera_tool_through_the_same_guarded_call(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """A voice room lists the tool (room_tools) and runs it as its tool calls run."""
    audit = async_capture_events(hass, EVENT_TOOL_CALL)
    home = HassHome(hass, loaded_entry)
    listed = await home.room_tools("kitchen")
    [spec] = [spec for spec in listed.specs if spec.name == "camera_look"]
    assert "Front door" in spec.description
    assert "Garage" not in spec.description
    assert set(spec.parameters["properties"]) == {"camera", "question"}
    fake_openai.chat_script = [ChatReply("Nobody; the porch is empty.")]
    data = await home.call_tool(
        "kitchen", "camera_look", {"camera": "front door", "question": QUESTION}, turn=1
    )
    assert data["answer"] == "Nobody; the porch is empty."
    assert pictures(fake_openai.chat_requests[-1]) == [("image/png", DOOR_PICTURE)]
    [event] = audit
    assert (event.data["tool"], event.data["room"], event.data["outcome"]) == (
        "camera_look",
        "kitchen",
        "ok",
    )


@pytest.mark.usefixtures("cameras")
async def test_an_unexposed_camera_is_unreachable_like_an_unknown_one(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """The garage camera exists but is not exposed: the answer is that of a made-up name."""
    answers = {}
    for name in ("Garage", GARAGE, "Attic"):
        with pytest.raises(HomeAssistantError) as err:
            await call_tool(hass, loaded_entry, "camera_look", camera=name, question="Open?")
        assert err.value.translation_key == "camera_unknown"
        answers[name] = str(err.value).replace(name, "NAME")
    assert answers["Garage"] == answers["Attic"] == answers[GARAGE]
    assert "Front door" in answers["Attic"]  # what it may use instead
    assert "arage" not in answers["Attic"]
    assert fake_openai.chat_requests == []  # no picture went anywhere


async def test_no_exposed_camera_no_tool(
    hass: HomeAssistant, tmp_path: Path, loaded_entry: MockConfigEntry
) -> None:
    """With cameras but none exposed to Assist, the tool is not offered at all."""
    picture = tmp_path / "porch.png"
    picture.write_bytes(DOOR_PICTURE)
    await add_camera(hass, "Porch", picture)
    listed = await HassHome(hass, loaded_entry).room_tools("kitchen")
    assert "camera_look" not in [spec.name for spec in listed.specs]


@pytest.fixture
def slow_camera_file(tmp_path: Path) -> Iterator[Path]:
    """Return a FIFO nobody writes to: reading it blocks, like a hung camera."""
    fifo = tmp_path / "hung.png"
    os.mkfifo(fifo)
    yield fifo
    # Free the executor thread still waiting to open it, so hass can stop.
    with suppress(OSError):  # nobody was waiting
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.usefixtures("cameras")
async def test_a_hung_or_broken_camera_fails_clearly_within_its_bound(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
    slow_camera_file: Path,
    tmp_path: Path,
) -> None:
    """A camera that never answers gives up after SNAPSHOT_SECONDS; a broken one at once."""
    await add_camera(hass, "Hung", slow_camera_file)
    async_expose_entity(hass, "conversation", "camera.hung", True)
    started = time.monotonic()
    with pytest.raises(HomeAssistantError) as hung:
        await call_tool(hass, loaded_entry, "camera_look", camera="Hung", question="Anyone?")
    elapsed = time.monotonic() - started
    assert hung.value.translation_key == "camera_timeout"
    assert SNAPSHOT_SECONDS <= elapsed < SNAPSHOT_SECONDS + SLACK
    assert f"within {SNAPSHOT_SECONDS:g} seconds" in str(hung.value)

    broken = tmp_path / "broken.png"
    broken.write_bytes(DOOR_PICTURE)
    await add_camera(hass, "Broken", broken)
    async_expose_entity(hass, "conversation", "camera.broken", True)
    broken.unlink()  # the camera's file is gone: HA's local_file camera fails
    with pytest.raises(HomeAssistantError) as failed:
        await call_tool(hass, loaded_entry, "camera_look", camera="Broken", question="Anyone?")
    assert failed.value.translation_key == "camera_failed"
    assert "Broken" in str(failed.value)
    assert fake_openai.chat_requests == []


@pytest.mark.usefixtures("cameras")
@pytest.mark.parametrize(
    ("fault", "key"),
    [("hang", "provider_timeout"), ("500", "provider_server"), ("empty", "provider_empty")],
)
async def test_a_model_fault_is_a_clear_error_within_the_bound(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
    fault: str,
    key: str,
) -> None:
    """A hung model is given up after MODEL_SECONDS; a failing one says how it failed."""
    fake_openai.chat_script = [ChatReply("unused", fault=fault)]
    started = time.monotonic()
    with pytest.raises(HomeAssistantError) as err:
        await call_tool(hass, loaded_entry, "camera_look", question=QUESTION)
    elapsed = time.monotonic() - started
    assert err.value.translation_key == key
    assert elapsed < MODEL_SECONDS + SLACK
    if fault == "hang":
        assert elapsed >= MODEL_SECONDS
        assert f"within {MODEL_SECONDS:g} seconds" in str(err.value)
    assert pictures(fake_openai.chat_requests[0]) == [("image/png", DOOR_PICTURE)]


@pytest.fixture
async def tasks_entry(hass: HomeAssistant, mock_config_entry: MockConfigEntry) -> MockConfigEntry:
    """Load the entry titled as a user's first one, so its AI task entity is the README's."""
    mock_config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(mock_config_entry, title="Shackleton")
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    return mock_config_entry


@pytest.mark.usefixtures("cameras")
async def test_generate_data_with_a_camera_and_a_structure(
    hass: HomeAssistant, fake_openai: FakeOpenAI, tasks_entry: MockConfigEntry
) -> None:
    """The README's AI task: the still reaches the model, the JSON comes back as data.

    Its tokens count on the entry's usage sensors, as the text agent's do.
    """
    fake_openai.chat_script = [ChatReply('{"person": "a courier", "parcel": true}')]
    response = await async_run_example(hass, "camera-ai-task")
    assert response["data"] == {"person": "a courier", "parcel": True}
    assert response["conversation_id"]
    [request] = fake_openai.chat_requests
    assert pictures(request) == [("image/png", DOOR_PICTURE)]
    response_format = request["response_format"]
    assert response_format["type"] == "json_schema"
    schema = response_format["json_schema"]["schema"]
    assert set(schema["properties"]) == {"person", "parcel"}
    assert schema["properties"]["parcel"]["type"] == "boolean"
    assert set(schema["required"]) == {"person", "parcel"}
    [billed] = fake_openai.chat_usage
    for key, figure in (("input", "prompt_tokens"), ("output", "completion_tokens")):
        unique_id = f"{tasks_entry.entry_id}_openai_llm_{key}_tokens_month"
        sensor = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, unique_id)
        assert sensor is not None
        assert float(hass.states.get(sensor).state) == billed[figure]
    RESPONSE_FILE.parent.mkdir(exist_ok=True)
    RESPONSE_FILE.write_text(json.dumps(response, indent=2) + "\n")


@pytest.mark.usefixtures("cameras", "tasks_entry")
async def test_generate_data_text_and_answers_that_do_not_fit(
    hass: HomeAssistant, fake_openai: FakeOpenAI
) -> None:
    """No structure: the text itself; a structure the answer misses: a clear error."""
    fake_openai.chat_script = [
        ChatReply("Two cats on the mat."),
        ChatReply("not json at all"),
        ChatReply('{"person": "nobody"}'),
    ]

    async def generate(**extra: Any) -> Any:
        return await hass.services.async_call(
            "ai_task",
            "generate_data",
            {
                "entity_id": "ai_task.shackleton_ai_tasks",
                "task_name": "Describe",
                "instructions": "Describe the picture",
                "attachments": [
                    {
                        "media_content_id": f"media-source://camera/{FRONT_DOOR}",
                        "media_content_type": "image/png",
                    }
                ],
                **extra,
            },
            blocking=True,
            return_response=True,
        )

    described = await generate()
    assert described["data"] == "Two cats on the mat."
    assert "response_format" not in fake_openai.chat_requests[0]
    structure = {
        "person": {"required": True, "selector": {"text": None}},
        "parcel": {"required": True, "selector": {"boolean": None}},
    }
    for key in ("task_not_json", "task_structure"):
        with pytest.raises(HomeAssistantError) as err:
            await generate(structure=structure)
        assert err.value.translation_key == key
    state = hass.states.get("ai_task.shackleton_ai_tasks")
    assert state is not None


async def test_hung_model_in_an_ai_task_is_bounded(
    hass: HomeAssistant,
    tasks_entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An AI task has its own bound (TASK_SECONDS, 30 s: shortened here), then a clear error."""
    monkeypatch.setattr(ai_task, "TASK_SECONDS", 1.0)
    fake_openai.chat_script = [ChatReply("unused", fault="hang")]
    started = time.monotonic()
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "ai_task",
            "generate_data",
            {"entity_id": "ai_task.shackleton_ai_tasks", "task_name": "t", "instructions": "Hi"},
            blocking=True,
            return_response=True,
        )
    assert err.value.translation_key == "provider_timeout"
    assert 1.0 <= time.monotonic() - started < 1.0 + SLACK
