"""Which modules the voice engine needs, and how to load them without stalling a loop.

Standard library only, so a host can import this before the voice packages exist.
Importing the LiveKit stack takes seconds; a host's event loop must not wait for it.
`import_heavy` runs in a worker thread; the plugins then register on the main thread,
which livekit-agents requires, quickly because their dependencies are already loaded.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from typing import Final

# Slow to import (seconds, and SSL/ONNX set-up): always in a worker thread.
# - openai.types.*: what livekit.plugins.openai would otherwise pull in while
#   registering (measured: 950 ms on the loop without them, 55 ms with).
# - openai.resources.*, openai.lib.streaming.chat: the client imports them on the first
#   request (`client.audio`, `client.chat`, the streamed chat completion, and the LLM's
#   prewarm `client.models.list()` at session start); since openai 3 `openai.resources`
#   itself imports nothing until asked. Once 0.47 s on the loop in the first turn.
# - anyio's asyncio backend and httpcore2's: httpx2 (under the openai client) loads them
#   on its first request, the TTS prewarm at session start: 80 ms on the loop.
# - livekit.rtc.resources: looked up by name when a session starts.
# - livekit.agents.llm.async_toolset: livekit-agents 1.8 imports it when an agent starts.
HEAVY_MODULES: Final = (
    "livekit.rtc",
    "livekit.rtc.resources",
    "livekit.agents",
    "livekit.agents.llm.async_toolset",
    "openai",
    "openai.resources.audio.audio",
    "openai.resources.chat.chat",
    "openai.resources.models",
    "openai.lib.streaming.chat",
    "openai.types.audio",
    "openai.types.beta.realtime",
    "openai.types.realtime",
    "onnxruntime",
    "numpy",
    "anyio._backends._asyncio",
    "httpcore2._backends.anyio",
)
# Register themselves with livekit-agents at import: main thread only.
PLUGIN_MODULES: Final = ("livekit.plugins.silero", "livekit.plugins.openai", "livekit.plugins.groq")
# The engine's own modules import livekit at the top: load them in a worker thread too.
ENGINE_MODULES: Final = (
    f"{__package__}.engine",
    f"{__package__}.rooms",
    f"{__package__}.local_models",
)

# A worker thread cannot be cancelled: after an unload mid-load it goes on importing.
# A later load must wait for it, or it would meet half-initialised openai modules.
_IMPORT_LOCK = threading.Lock()


def import_heavy(names: tuple[str, ...] = HEAVY_MODULES) -> None:
    """Import `names` (call from a worker thread); raises ImportError when one is missing."""
    with _IMPORT_LOCK:
        for name in names:
            importlib.import_module(name)
        _resolve_lazy_attributes("pydantic")
        # openai 3's resource packages import their classes on first access too.
        for name in [n for n in sys.modules if n.startswith("openai.resources.")]:
            _resolve_lazy_attributes(name)


def import_plugins() -> None:
    """Import the plugins (call on the main thread, after `import_heavy`)."""
    for name in PLUGIN_MODULES:
        if sys.modules.get(name) is None:
            # The import statement: HA reserves importlib.import_module on the loop for
            # modules already loaded. These take milliseconds once `import_heavy` ran.
            __import__(name)


def _resolve_lazy_attributes(name: str) -> None:
    """Resolve a package's lazily imported names now, off the loop.

    pydantic imports its public names on first access (`import_module` inside its
    `__getattr__`); the plugins touch some of them while registering. openai 3's resource
    packages do the same (`client.chat` on the first request): HA's loop guard reports
    the relative `import_module(".chat", ...)` even for a module already loaded.
    """
    module = sys.modules.get(name)
    for attribute in getattr(module, "__all__", ()):
        with contextlib.suppress(Exception):
            getattr(module, attribute)
