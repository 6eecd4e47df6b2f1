"""An AI task entity per entry: HA's `ai_task.generate_data` answered by the entry's model.

Attachments (a camera's still, an image from the media browser) reach the model as
image parts, and a task's `structure` as a JSON-schema response format; the answer is
parsed and checked against that structure. The same model and bound as the camera tool
(vision.py): one request, no tools.
"""

from __future__ import annotations

import json
from typing import Any

from homeassistant.components import ai_task, conversation
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.util import slugify
import probatio

from .const import DOMAIN
from .entity import service_device_info
from .models import ShackletonConfigEntry
from .vision import TASK_SECONDS, Picture, async_ask, image_type, vision_provider
from .voice.settings import ProviderSettings

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: ShackletonConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """Add the AI task entity, when the entry's language model is one Shackleton asks itself."""
    if (provider := vision_provider(entry)) is not None:
        async_add_entities([ShackletonTaskEntity(entry, provider)])


class ShackletonTaskEntity(ai_task.AITaskEntity):
    """Generates data (text, or JSON of a given structure) from instructions and images."""

    _attr_has_entity_name = True
    _attr_translation_key = "tasks"
    _attr_supported_features = (
        ai_task.AITaskEntityFeature.GENERATE_DATA | ai_task.AITaskEntityFeature.SUPPORT_ATTACHMENTS
    )

    def __init__(self, entry: ShackletonConfigEntry, provider: ProviderSettings) -> None:
        """Serve `entry` with `provider`'s model."""
        self._provider = provider
        self._usage = entry.runtime_data.usage
        self._attr_unique_id = f"{entry.entry_id}_ai_task"
        self._attr_device_info = service_device_info(entry)

    async def _async_generate_data(
        self, task: ai_task.GenDataTask, chat_log: conversation.ChatLog
    ) -> ai_task.GenDataTaskResult:
        """Ask the model once; return its text, or its JSON checked against the structure."""
        # HA's own task prompt (and an API's prompt, had the task one) comes first.
        messages = [
            {"role": "system", "content": content.content}
            for content in chat_log.content
            if isinstance(content, conversation.SystemContent)
        ]
        messages.append(await self._async_user_message(task))
        response_format = (
            None if task.structure is None else _response_format(task.name, task.structure)
        )
        text = await async_ask(
            self.hass,
            self._provider,
            messages,
            response_format=response_format,
            count=self._usage.async_add,
            seconds=TASK_SECONDS,
        )
        chat_log.async_add_assistant_content_without_tools(
            conversation.AssistantContent(agent_id=self.entity_id, content=text)
        )
        data = text if task.structure is None else _structured(text, task.structure)
        return ai_task.GenDataTaskResult(conversation_id=chat_log.conversation_id, data=data)

    async def _async_user_message(self, task: ai_task.GenDataTask) -> dict[str, Any]:
        """Return the instructions with each attachment as an image part."""
        if not task.attachments:
            return {"role": "user", "content": task.instructions}
        parts: list[dict[str, Any]] = [{"type": "text", "text": task.instructions}]
        for attachment in task.attachments:
            if (kind := image_type(attachment.mime_type)) is None:
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="task_attachment_format",
                    translation_placeholders={
                        "attachment": attachment.media_content_id,
                        "format": attachment.mime_type,
                    },
                )
            # HA saved the attachment to a file; reading it is disk I/O.
            content = await self.hass.async_add_executor_job(attachment.path.read_bytes)
            parts.append(Picture(kind, content).as_part())
        return {"role": "user", "content": parts}


def _response_format(name: str, structure: probatio.Schema) -> dict[str, Any]:
    """Return a structure as the chat API's JSON-schema response format.

    Not strict: strict mode needs every field required, and a structure's fields are
    optional unless marked `required`; the answer is checked against it instead.
    """
    schema = probatio.to_openapi(
        structure, custom_serializer=llm.selector_serializer, openapi_version="3.1.0"
    )
    return {
        "type": "json_schema",
        "json_schema": {"name": slugify(name) or "data", "schema": schema, "strict": False},
    }


def _structured(text: str, structure: probatio.Schema) -> Any:
    """Return the model's JSON answer, checked (and coerced) by the task's structure."""
    # Models held to no schema (some local servers ignore it) often fence their JSON.
    fenced = text.removeprefix("```json").removeprefix("```").removesuffix("```")
    try:
        data = json.loads(fenced)
    except json.JSONDecodeError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN, translation_key="task_not_json"
        ) from err
    try:
        return structure(data)
    except probatio.Invalid as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="task_structure",
            translation_placeholders={"error": str(err)},
        ) from err
