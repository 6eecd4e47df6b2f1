"""What an entry's providers did today and this month, and what that is estimated to cost.

The voice engine (in HA or in a worker) and the text agent report `Usage` deltas; the
meter adds each to the provider serving its stage, for the day and for the month, and
saves the totals (a restart in the same period goes on from them). At local midnight
the day's totals start again, on the 1st the month's: the sensors then show 0 with the
new `last_reset`, which is how HA's long-term statistics see a new cycle of a `total`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
import math
from typing import Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_change
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .config_flow import stage_provider, stages_in_use
from .const import (
    CONF_PRICE_LLM_INPUT,
    CONF_PRICE_LLM_OUTPUT,
    CONF_PRICE_REALTIME_AUDIO_INPUT,
    CONF_PRICE_REALTIME_AUDIO_OUTPUT,
    CONF_PRICE_STT_MINUTE,
    CONF_PRICE_TTS_CHARACTERS,
    DOMAIN,
    LOGGER,
    STAGE_LLM,
    STAGE_REALTIME,
    STAGE_STT,
    STAGE_TTS,
)
from .models import Observable, ShackletonConfigEntry
from .provider_catalog import PROVIDERS
from .storage import async_load_checked, check, checked
from .voice.home import Usage

STORAGE_VERSION: Final = 1
# Counts come several times a turn: write at most once a minute (and on unload/stop).
SAVE_DELAY: Final = 60
PERIOD_DAY: Final = "day"
PERIOD_MONTH: Final = "month"
PERIODS: Final = (PERIOD_DAY, PERIOD_MONTH)
# How the sensors name the providers (brand names: not translated).
PROVIDER_NAMES: Final = {"openai": "OpenAI", "groq": "Groq", "compatible": "OpenAI-compatible"}


@dataclass(frozen=True, slots=True)
class Counter:
    """One usage figure: the `Usage` field it adds up, its stage, and its price option."""

    key: str
    stage: str
    price_option: str
    # The price option is per this many units (1M tokens; 60 s for a per-minute price).
    price_per: float


COUNTERS: Final = (
    Counter("llm_input_tokens", STAGE_LLM, CONF_PRICE_LLM_INPUT, 1e6),
    Counter("llm_output_tokens", STAGE_LLM, CONF_PRICE_LLM_OUTPUT, 1e6),
    Counter("stt_seconds", STAGE_STT, CONF_PRICE_STT_MINUTE, 60.0),
    Counter("tts_characters", STAGE_TTS, CONF_PRICE_TTS_CHARACTERS, 1e6),
    Counter("realtime_audio_input_tokens", STAGE_REALTIME, CONF_PRICE_REALTIME_AUDIO_INPUT, 1e6),
    Counter("realtime_audio_output_tokens", STAGE_REALTIME, CONF_PRICE_REALTIME_AUDIO_OUTPUT, 1e6),
)


def usage_store(hass: HomeAssistant, entry_id: str) -> Store[dict[str, Any]]:
    """Return the store of an entry's usage totals."""
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.usage")


def counters_in_use(entry: ShackletonConfigEntry) -> dict[Counter, str]:
    """Return the counters of the entry's paid stages, with the provider of each.

    A stage run by HA's own engines or by local models has no provider bill to count.
    """
    used = stages_in_use(entry.data)
    counters: dict[Counter, str] = {}
    for counter in COUNTERS:
        if counter.stage in used:
            provider = stage_provider(entry.data, counter.stage)
            if PROVIDERS[provider].remote:
                counters[counter] = provider
    return counters


def period_keys(now: datetime) -> dict[str, str]:
    """Return the day and the month `now` (local time) falls in."""
    return {PERIOD_DAY: now.date().isoformat(), PERIOD_MONTH: f"{now:%Y-%m}"}


def period_start(period: str, key: str) -> datetime:
    """Return when a period began: local midnight of its day, or of its month's 1st."""
    day = date.fromisoformat(key if period == PERIOD_DAY else f"{key}-01")
    return dt_util.start_of_local_day(day)


def _parse(data: Any) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    saved = checked(data, {"periods": dict, "counts": dict}, "usage")
    periods = {p: check(saved["periods"].get(p), str, f"usage.periods.{p}") for p in PERIODS}
    counts = {
        p: {
            # Tokens stay whole numbers across a restart.
            str(name): check(value, float, f"usage.counts.{p}.{name}")
            for name, value in check(saved["counts"].get(p, {}), dict, f"usage.counts.{p}").items()
        }
        for p in PERIODS
    }
    for key in periods.values():
        date.fromisoformat(key if len(key) == 10 else f"{key}-01")  # ValueError if not a date
    return periods, counts


def chat_usage(usage: Any) -> Usage | None:
    """Return the counts of a chat completion's `usage`; None when it has none (or junk)."""
    if usage is None:
        return None
    try:
        return Usage(
            llm_input_tokens=int(usage.prompt_tokens or 0),
            llm_output_tokens=int(usage.completion_tokens or 0),
        )
    except (AttributeError, TypeError, ValueError):
        LOGGER.warning("Usage not counted: %r", usage)
        return None


class UsageMeter(Observable):
    """An entry's usage totals per provider and counter, for today and this month."""

    def __init__(self, hass: HomeAssistant, entry: ShackletonConfigEntry) -> None:
        """Count for the entry's paid stages; `async_load` brings the saved totals."""
        super().__init__()
        self._hass = hass
        self._entry = entry
        self.counters = counters_in_use(entry)
        self._store = usage_store(hass, entry.entry_id)
        self._periods = period_keys(dt_util.now())
        self._counts: dict[str, dict[str, float]] = {period: {} for period in PERIODS}
        self._closed = False

    async def async_load(self) -> None:
        """Load the saved totals (kept if still in their period), then follow the clock."""
        if saved := await async_load_checked(self._store, _parse, "usage totals"):
            self._periods, self._counts = saved
        self._roll(dt_util.now())
        self._entry.async_on_unload(
            async_track_time_change(self._hass, self._on_midnight, hour=0, minute=0, second=0)
        )
        # A delayed save is written at HA's final write; a reload must not wait for it.
        self._entry.async_on_unload(self._async_save_now)

    async def _async_save_now(self) -> None:
        # Unloaded: what comes late (a stream still closing) must not save over the next.
        self._closed = True
        await self._store.async_save(self._data())

    def _data(self) -> dict[str, Any]:
        return {"periods": dict(self._periods), "counts": self._counts}

    @callback
    def _on_midnight(self, now: datetime) -> None:
        if self._roll(now):
            self._store.async_delay_save(self._data, SAVE_DELAY)
            self._notify()

    def _roll(self, now: datetime) -> bool:
        """Start the periods `now` is past; return whether one started."""
        rolled = False
        for period, key in period_keys(dt_util.as_local(now)).items():
            if self._periods.get(period) != key:
                self._periods[period] = key
                self._counts[period] = {}
                rolled = True
        return rolled

    @callback
    def async_add(self, usage: Usage) -> None:
        """Count what a provider did; a figure that is no count is logged and skipped."""
        if self._closed:
            return
        self._roll(dt_util.now())
        added = False
        for counter, provider in self.counters.items():
            amount = getattr(usage, counter.key, 0)
            if not amount:
                continue
            if not isinstance(amount, int | float) or not math.isfinite(amount) or amount < 0:
                LOGGER.warning(
                    "%s: usage %s=%r not counted", self._entry.title, counter.key, amount
                )
                continue
            name = f"{provider}/{counter.key}"
            for counts in self._counts.values():
                counts[name] = counts.get(name, 0) + amount
            added = True
        if added:
            self._store.async_delay_save(self._data, SAVE_DELAY)
            self._notify()

    def count(self, counter: Counter, period: str) -> float:
        """Return a counter's total in the current day or month."""
        return self._counts[period].get(f"{self.counters[counter]}/{counter.key}", 0)

    def last_reset(self, period: str) -> datetime:
        """Return when the current day or month began (its totals started from 0)."""
        return period_start(period, self._periods[period])

    def prices(self) -> dict[Counter, float]:
        """Return the prices set for the counters in use."""
        prices: dict[Counter, float] = {}
        for counter in self.counters:
            price = self._entry.options.get(counter.price_option)
            if price is not None:
                prices[counter] = float(price)
        return prices

    def cost(self, period: str) -> float:
        """Return the estimated cost of the period: each priced counter times its price."""
        return sum(
            self.count(counter, period) / counter.price_per * price
            for counter, price in self.prices().items()
        )
