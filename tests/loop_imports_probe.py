"""Run one voice turn in a fresh process the way HA does, and list loop-thread imports.

Run by `test_voice_support.py` in a subprocess: the test process has long imported
everything, so only a fresh interpreter shows what a first turn imports. Prints a JSON
list of modules imported on the main thread (the event loop) during the turn.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
import importlib
import json
from pathlib import Path
import sys
import threading
from typing import Any

from custom_components.shackleton.voice.loading import (
    ENGINE_MODULES,
    import_heavy,
    import_plugins,
)

AUDIO = Path(__file__).parent / "fixtures" / "audio"
_ARMED = False
LOOP_IMPORTS: list[str] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "import" and _ARMED and threading.current_thread() is threading.main_thread():
        LOOP_IMPORTS.append(str(args[0]))


_import_module = importlib.import_module


def _guarded_import_module(name: str, package: str | None = None) -> Any:
    """HA's loop guard's rule: `import_module` on the loop of a name not in sys.modules.

    A lazy package's relative `import_module(".chat", ...)` imports nothing (no audit
    event) when the module is loaded already, yet HA reports it as a blocking call.
    """
    on_loop = _ARMED and threading.current_thread() is threading.main_thread()
    if on_loop and name not in sys.modules:
        LOOP_IMPORTS.append(f"import_module({name!r}, {package!r})")
    return _import_module(name, package)


importlib.import_module = _guarded_import_module


class QuietHome:
    """A home with no tools that ignores reports (the probe watches imports only)."""

    def context(self, room: str) -> Any:
        """Return a fixed context."""
        from custom_components.shackleton.voice.home import HomeContext

        return HomeContext("Probe", "en", "UTC", datetime.now(UTC))

    async def room_tools(self, room: str) -> Any:
        """Offer no tools, and so nothing to guide."""
        from custom_components.shackleton.voice.home import RoomTools

        return RoomTools([], "")

    async def call_tool(
        self, room: str, name: str, arguments: dict[str, Any], *, turn: int = 0
    ) -> Any:
        """Never called."""
        raise NotImplementedError

    def report_state(self, room: str, state: str) -> None:
        """Ignore."""

    def report_turn(self, report: Any) -> None:
        """Ignore."""

    def report_error(self, room: str, source: str, message: str, *, recoverable: bool) -> None:
        """Ignore."""

    def report_usage(self, usage: Any) -> None:
        """Ignore."""


async def main() -> None:
    """Load like HA, then arm the audit hook for engine start-up and one turn."""
    global _ARMED  # noqa: PLW0603 - the hook is process-wide by nature
    # HA's package aliases httpx to httpx2 before anything imports httpx: the plugins'
    # `import httpx` gets httpx2 there, as in HA.
    await asyncio.to_thread(import_heavy, ("homeassistant",))
    await asyncio.to_thread(import_heavy)
    import_plugins()
    # Not tests.test_engine: pytest would import what a first request needs, hiding it.
    helpers = ("aiohttp", "httpx2", "harness.fakes")
    await asyncio.to_thread(import_heavy, (*ENGINE_MODULES, *helpers))

    import httpx2
    from livekit.plugins import silero

    from custom_components.shackleton.voice.engine import (
        VoiceEngine,
        vad_options,
    )
    from custom_components.shackleton.voice.local_audio import (
        LocalAudioInput,
        LocalAudioOutput,
        read_wav,
    )
    from custom_components.shackleton.voice.settings import ProviderSettings, VoiceSettings
    from harness.fakes import FakeOpenAI, start_app

    fake = FakeOpenAI(default_transcript="Turn on the kitchen light.")
    runner, fake.url = await start_app(fake.app())
    provider = ProviderSettings(
        kind="openai", model="gpt-4.1-mini", base_url=fake.base_url, api_key="sk-test"
    )
    settings = VoiceSettings(mode="pipeline", llm=provider, stt=provider, tts=provider)
    vad = await asyncio.to_thread(lambda: silero.VAD.load(**vad_options(settings.turn_taking)))
    clip = await asyncio.to_thread(read_wav, AUDIO / "turn_on_kitchen_light.wav")
    # HA lends its shared httpx2 client, built once at start-up (SSL set-up off the loop).
    client = await asyncio.to_thread(httpx2.AsyncClient)
    sys.addaudithook(_audit)
    _ARMED = True
    engine = await VoiceEngine.async_create(QuietHome(), settings, vad=vad, http_client=client)
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    await engine.async_start_session("probe", audio_input=mic, audio_output=speaker)
    await mic.play_silence(0.3)
    await mic.play_pcm(*clip)
    await asyncio.wait_for(speaker.wait_for_segment(1), 20)
    await engine.aclose()
    mic.close()
    _ARMED = False
    await client.aclose()
    await runner.cleanup()
    print(json.dumps(LOOP_IMPORTS))  # noqa: T201 - the test reads stdout


if __name__ == "__main__":
    asyncio.run(main())
