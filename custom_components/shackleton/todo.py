"""What the assistant remembers, as a to-do list people can read and prune in HA's UI."""

from __future__ import annotations

from homeassistant.components.homeassistant.exposed_entities import (
    async_expose_entity,
    async_get_entity_settings,
)
from homeassistant.components.todo import TodoItem, TodoListEntity
from homeassistant.components.todo.const import TodoItemStatus, TodoListEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .entity import ShackletonEntity
from .models import ShackletonConfigEntry

PARALLEL_UPDATES = 0
ASSISTANT = "conversation"

MEMORY = EntityDescription(key="memory", translation_key="memory")


async def async_setup_entry(
    hass: HomeAssistant, entry: ShackletonConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """Add the memory list."""
    async_add_entities([MemoryList(entry, MEMORY)])


class MemoryList(ShackletonEntity, TodoListEntity):
    """Every note the assistant keeps; deleting an item makes it forget."""

    _attr_supported_features = (
        TodoListEntityFeature.CREATE_TODO_ITEM | TodoListEntityFeature.DELETE_TODO_ITEM
    )

    def __init__(self, entry: ShackletonConfigEntry, description: EntityDescription) -> None:
        """Show the entry's notes."""
        super().__init__(entry, description)
        self._notes = entry.runtime_data.notes

    async def async_added_to_hass(self) -> None:
        """Follow the notes; keep every user's notes away from Assist unless chosen."""
        await super().async_added_to_hass()
        if ASSISTANT not in async_get_entity_settings(self.hass, self.entity_id):
            # to-do lists are exposed by default; this one holds everyone's notes.
            async_expose_entity(self.hass, ASSISTANT, self.entity_id, False)
        self.async_on_remove(self._notes.async_add_listener(self.async_write_ha_state))

    @property
    def todo_items(self) -> list[TodoItem]:
        """Return the notes, oldest first."""
        return [
            TodoItem(summary=note.text, uid=note.id, status=TodoItemStatus.NEEDS_ACTION)
            for note in self._notes.notes.values()
        ]

    async def async_create_todo_item(self, item: TodoItem) -> None:
        """Remember something for the household, typed in HA's UI."""
        await self._notes.async_add(item.summary or "", None)

    async def async_delete_todo_items(self, uids: list[str]) -> None:
        """Forget the notes deleted in HA's UI."""
        await self._notes.async_delete(uids)
