"""Each room as an Assist satellite: HA's announce, start_conversation and ask_question.

The room's own voice session speaks and listens (its TTS and STT, in the LiveKit room
or on local audio); HA's media players and pipelines take no part. HA's
`async_internal_*` methods are overridden because, as written, they synthesise every
message with the pipeline's TTS engine into a media URL before the satellite sees it
(and fail without one), and ask_question waits for the pipeline's STT: see
`homeassistant/components/assist_satellite/entity.py`, `_resolve_announcement_media_id`
and `_internal_on_pipeline_event`.
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.components.assist_pipeline import PipelineEvent
from homeassistant.components.assist_satellite import (
    AssistSatelliteAnswer,
    AssistSatelliteConfiguration,
    AssistSatelliteEntity,
    AssistSatelliteEntityDescription,
    AssistSatelliteEntityFeature,
    SatelliteBusyError,
)
from homeassistant.components.assist_satellite.const import PREANNOUNCE_URL
from homeassistant.components.assist_satellite.entity import AssistSatelliteState
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .const import DOMAIN, STATE_LISTENING, STATE_SPEAKING, STATE_THINKING
from .entity import RoomEntity, async_add_room_entities
from .models import ShackletonConfigEntry
from .voice.home import NobodyListening, QuestionPending

PARALLEL_UPDATES = 0
# The room's main entity: it takes the room device's name ("Shackleton … kitchen").
SATELLITE = AssistSatelliteEntityDescription(key="satellite", name=None)
# How long ask_question waits for an answer once the question has been said.
ANSWER_SECONDS: Final = 15.0

# The room's assistant state, as a satellite's; anything else (no session) is idle.
_SATELLITE_STATES: Final = {
    STATE_LISTENING: AssistSatelliteState.LISTENING,
    STATE_THINKING: AssistSatelliteState.PROCESSING,
    STATE_SPEAKING: AssistSatelliteState.RESPONDING,
}


async def async_setup_entry(
    hass: HomeAssistant, entry: ShackletonConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """Add each room's satellite."""
    async_add_room_entities(
        hass, entry, async_add_entities, lambda room: [RoomSatellite(entry, room, SATELLITE)]
    )


def _text(message: str | None, media_id: str | None) -> str:
    """Return what to say; a room speaks text, and plays no media of its own."""
    if media_id or not message or not message.strip():
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="satellite_text_only"
        )
    return message


class RoomSatellite(RoomEntity, AssistSatelliteEntity):
    """One room, for HA's satellite actions: spoken by the room's own voice session."""

    _attr_supported_features = (
        AssistSatelliteEntityFeature.ANNOUNCE | AssistSatelliteEntityFeature.START_CONVERSATION
    )

    async def async_added_to_hass(self) -> None:
        """Follow the room's assistant state."""
        await super().async_added_to_hass()
        self.async_on_remove(self.runtime.async_add_listener(self._async_follow_room))
        self._async_follow_room()

    @callback
    def _async_follow_room(self) -> None:
        state = self.runtime.room_state(self.room)
        self._set_state(_SATELLITE_STATES.get(state, AssistSatelliteState.IDLE))

    async def async_internal_announce(
        self,
        message: str | None = None,
        media_id: str | None = None,
        preannounce: bool = True,
        preannounce_media_id: str = PREANNOUNCE_URL,
    ) -> None:
        """Say `message` in the room, after Shackleton's chime (`preannounce`).

        Nobody there: the entry's no-listener option applies, as for the notify entity.
        """
        self.async_say(_text(message, media_id), chime=preannounce)

    async def async_internal_start_conversation(
        self,
        start_message: str | None = None,
        start_media_id: str | None = None,
        extra_system_prompt: str | None = None,
        preannounce: bool = True,
        preannounce_media_id: str = PREANNOUNCE_URL,
    ) -> None:
        """Speak first in the room, then listen: the answer is a turn of the room's agent.

        `extra_system_prompt` reaches the model as the reason for asking. Nobody there:
        the opening line follows the entry's no-listener option, as an announcement.
        """
        text = _text(start_message, start_media_id)
        voice = self.entry.runtime_data.voice
        if not await voice.async_start_conversation(
            self.room, text, extra_system_prompt, chime=preannounce
        ):
            self.async_say(text, chime=preannounce)

    async def async_internal_ask_question(
        self,
        question: str | None = None,
        question_media_id: str | None = None,
        preannounce: bool = True,
        preannounce_media_id: str = PREANNOUNCE_URL,
        answers: list[dict[str, Any]] | None = None,
    ) -> AssistSatelliteAnswer | None:
        """Ask in the room; return the answer heard (matched to `answers`), None if none.

        HA's action turns None into its own `no_answer` error. The answer is the home's:
        the room's model does not reply to it.
        """
        text = _text(question, question_media_id)
        try:
            heard = await self.entry.runtime_data.voice.async_ask(
                self.room, text, chime=preannounce, seconds=ANSWER_SECONDS
            )
        except NobodyListening as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="satellite_nobody_listening",
                translation_placeholders={"room": self.room},
            ) from err
        except QuestionPending as err:
            raise SatelliteBusyError(
                translation_domain=DOMAIN,
                translation_key="satellite_busy",
                translation_placeholders={"room": self.room},
            ) from err
        if heard is None:
            return None
        if not answers:
            return AssistSatelliteAnswer(id=None, sentence=heard)
        # HA's own matching (hassil, the answers' sentences as intents, slots as wildcards).
        return self._question_response_to_answer(heard, answers)

    @callback
    def async_get_configuration(self) -> AssistSatelliteConfiguration:
        """Return no wake words: a room's session listens whenever someone is in it."""
        return AssistSatelliteConfiguration(
            available_wake_words=[], active_wake_words=[], max_active_wake_words=0
        )

    async def async_set_configuration(self, config: AssistSatelliteConfiguration) -> None:
        """Refuse wake words: a room has none to set."""
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="satellite_no_wake_words"
        )

    def on_pipeline_event(self, event: PipelineEvent) -> None:
        """Ignore HA's pipeline events: no HA pipeline runs for a room."""
