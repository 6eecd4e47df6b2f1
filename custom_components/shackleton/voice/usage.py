"""What the providers did, read off LiveKit's usage metrics and handed to the home.

The pipeline's models (STT, LLM, TTS) are shared by every room of an engine, and each
emits `metrics_collected` on itself once per request: listening there counts each
request once. A session's own usage (`session_usage_updated`) would not: every room's
session listens to the same shared models, so N rooms would count every request N
times. A realtime model's requests come from each room's own realtime session, so for
them the session's running totals are the source (AgentSession's `metrics_collected` is
deprecated since LiveKit Agents 1.5: it warns on subscription).
"""

from __future__ import annotations

from collections.abc import Callable
import logging
from typing import Any

from livekit.agents import llm, stt, tts
from livekit.agents.metrics import LLMMetrics, STTMetrics, TTSMetrics
from livekit.agents.metrics.usage import LLMModelUsage
from livekit.agents.voice.events import SessionUsageUpdatedEvent

from .home import Usage

_LOGGER = logging.getLogger(__name__)


def usage_of(metrics: object) -> Usage | None:
    """Return the billable part of one request's metrics; None for other metrics."""
    if isinstance(metrics, LLMMetrics):
        return Usage(
            llm_input_tokens=int(metrics.prompt_tokens),
            llm_output_tokens=int(metrics.completion_tokens),
        )
    if isinstance(metrics, STTMetrics):
        return Usage(stt_seconds=float(metrics.audio_duration))
    if isinstance(metrics, TTSMetrics):
        return Usage(tts_characters=int(metrics.characters_count))
    return None


class ModelUsage:
    """Counts the shared pipeline models' requests, each once, until closed."""

    def __init__(self, report: Callable[[Usage], None]) -> None:
        """Hand each request's usage to `report` (the home's `report_usage`)."""
        self._report = report
        self._watched: list[Any] = []

    def watch(self, *models: object) -> None:
        """Listen to the models' own metrics; a realtime model has none (see RealtimeUsage)."""
        for model in models:
            # A model watched already (a persona's, shared by its rooms) counts once.
            if isinstance(model, llm.LLM | stt.STT | tts.TTS) and model not in self._watched:
                model.on("metrics_collected", self._on_metrics)
                self._watched.append(model)

    def _on_metrics(self, metrics: object) -> None:
        # Called inside LiveKit's request code: nothing here may fail a turn.
        try:
            usage = usage_of(metrics)
            if usage:
                self._report(usage)
        except Exception:  # noqa: BLE001 - a broken payload is skipped, never raised
            # The type only: a broken payload's repr can fail too, or be huge.
            _LOGGER.warning("Usage metrics not counted: %s", type(metrics).__name__, exc_info=True)

    def close(self) -> None:
        """Stop listening."""
        for model in self._watched:
            model.off("metrics_collected", self._on_metrics)
        self._watched.clear()


class RealtimeUsage:
    """Turns one session's running realtime totals into deltas for the home."""

    def __init__(self, report: Callable[[Usage], None]) -> None:
        """Hand each new delta to `report`."""
        self._report = report
        self._seen = (0, 0)

    def restart(self) -> None:
        """Count from zero again: a new AgentSession does."""
        self._seen = (0, 0)

    def on_usage(self, ev: SessionUsageUpdatedEvent) -> None:
        """Report the audio tokens the session's realtime model used since last time."""
        try:
            totals = (0, 0)
            for usage in ev.usage.model_usage:
                if isinstance(usage, LLMModelUsage):
                    totals = (
                        totals[0] + int(usage.input_audio_tokens),
                        totals[1] + int(usage.output_audio_tokens),
                    )
            seen, self._seen = self._seen, totals
            if totals[0] < seen[0] or totals[1] < seen[1]:
                seen = (0, 0)  # LiveKit started counting afresh
            delta = Usage(
                realtime_audio_input_tokens=totals[0] - seen[0],
                realtime_audio_output_tokens=totals[1] - seen[1],
            )
            if delta:
                self._report(delta)
        except Exception:  # noqa: BLE001 - a broken payload is skipped, never raised
            _LOGGER.warning("Realtime usage not counted", exc_info=True)
