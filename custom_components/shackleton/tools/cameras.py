"""The camera tool: a still from a camera exposed to Assist, described by the entry's model.

"Who is at the front door?": the voice or text agent names a camera and asks; the tool
takes a snapshot through HA's camera component and asks the entry's language model
(vision.py) about it, and the agent answers in its own words. Only cameras exposed to
Assist can be reached: any other name, unknown or not exposed, gets the same answer,
so nothing tells the model that an unexposed camera exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.core import HomeAssistant, State
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.util import dt as dt_util
from homeassistant.util.json import JsonObjectType
import probatio

from ..const import DOMAIN
from ..vision import Picture, async_ask, image_type, vision_provider
from .base import ShackletonTool

if TYPE_CHECKING:
    from ..models import ShackletonConfigEntry
    from ..voice.home import Usage
    from ..voice.settings import ProviderSettings

ASSISTANT = "conversation"
CAMERA = "camera"
# A still from a local camera takes well under a second; a cloud camera that needs
# longer would leave the model too little of the spoken turn (vision.py).
SNAPSHOT_SECONDS: Final = 2.0
LOOK_PROMPT = (
    "You see a still taken just now by the home's camera {camera} at {time}. Answer the "
    "question about it in one or two short sentences, in the language of the question. "
    "Say only what the picture shows; if it does not show enough to answer, say so."
)
# Reads the home, but sends a picture out to the model's provider.
LOOKS = llm.ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=True)


class CameraError(HomeAssistantError):
    """A camera the tool cannot use; the translated message tells the model why."""

    def __init__(self, key: str, **placeholders: str) -> None:
        """Name the translation (`camera_<key>`) and its placeholders."""
        super().__init__(
            translation_domain=DOMAIN,
            translation_key=f"camera_{key}",
            translation_placeholders=placeholders,
        )


def exposed_cameras(hass: HomeAssistant) -> list[State]:
    """Return the states of the camera entities exposed to Assist."""
    return [
        state
        for state in hass.states.async_all(CAMERA)
        if async_should_expose(hass, ASSISTANT, state.entity_id)
    ]


def find_camera(hass: HomeAssistant, name: str | None) -> State:
    """Return the exposed camera called `name` (its name or entity id; None: the only one)."""
    cameras = exposed_cameras(hass)
    if not cameras:
        raise CameraError("none")
    if name:
        wanted = name.strip().casefold()
        cameras = [c for c in cameras if wanted in (c.entity_id.casefold(), c.name.casefold())]
        if not cameras:
            # The same answer for a camera that does not exist and one not exposed.
            known = ", ".join(c.name for c in exposed_cameras(hass))
            raise CameraError("unknown", camera=name, cameras=known)
    if len(cameras) > 1:
        raise CameraError("which", cameras=", ".join(c.name for c in cameras))
    return cameras[0]


async def async_snapshot(hass: HomeAssistant, camera: State) -> Picture:
    """Return a still from `camera` within SNAPSHOT_SECONDS, as the model can take it."""
    if CAMERA not in hass.config.components:
        raise CameraError("failed", camera=camera.name)
    # Loaded already (the camera component is set up), so nothing imports on the loop.
    from homeassistant.components.camera import async_get_image

    bound = asyncio.timeout(SNAPSHOT_SECONDS)
    try:
        async with bound:
            # HA's own bound (whole seconds) is a backstop behind ours.
            image = await async_get_image(hass, camera.entity_id, timeout=10)
    except (TimeoutError, HomeAssistantError) as err:
        # A camera may swallow our cancellation and fail instead (HA 2026.10's own
        # `_async_get_image` does): it is still our bound that ended the wait.
        if isinstance(err, TimeoutError) or bound.expired():
            seconds = f"{SNAPSHOT_SECONDS:g}"
            raise CameraError("timeout", camera=camera.name, seconds=seconds) from err
        raise CameraError("failed", camera=camera.name) from err
    if (kind := image_type(image.content_type)) is None:
        raise CameraError("format", camera=camera.name, format=image.content_type)
    return Picture(kind, image.content)


class CameraLookTool(ShackletonTool):
    """Look through a camera and say what it shows."""

    name = "camera_look"
    title = "Look through a camera"
    annotations = LOOKS

    def __init__(
        self, provider: ProviderSettings, cameras: list[str], count: Callable[[Usage], None]
    ) -> None:
        """Ask `provider`'s model; `cameras` are the exposed cameras' names.

        `count` counts the model's tokens on the entry's usage sensors.
        """
        self._provider = provider
        self._count = count
        self.description = (
            "Take a picture now with one of the home's cameras and ask what it shows: "
            "who is at the door, whether the garage door is open, whether a parcel came. "
            f"Cameras: {', '.join(cameras)}. Give the camera's name and the question."
        )
        self.parameters = probatio.Schema(
            {
                probatio.Optional("camera"): str,
                probatio.Required("question"): probatio.All(str, probatio.Length(min=1, max=500)),
            }
        )

    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Return what the model sees in the camera's still."""
        args = tool_input.tool_args
        camera = find_camera(hass, args.get("camera"))
        picture = await async_snapshot(hass, camera)
        taken = dt_util.now().isoformat(timespec="seconds")
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": LOOK_PROMPT.format(camera=camera.name, time=taken)},
            {
                "role": "user",
                "content": [{"type": "text", "text": args["question"]}, picture.as_part()],
            },
        ]
        answer = await async_ask(hass, self._provider, messages, count=self._count)
        return {"camera": camera.name, "taken": taken, "answer": answer}


def camera_tools(hass: HomeAssistant, entry: ShackletonConfigEntry) -> list[llm.Tool]:
    """Return the camera tool while a camera is exposed and the entry's model can see."""
    cameras = exposed_cameras(hass)
    provider = vision_provider(entry)
    if not cameras or provider is None:
        return []
    names = [camera.name for camera in cameras]
    return [CameraLookTool(provider, names, entry.runtime_data.usage.async_add)]
