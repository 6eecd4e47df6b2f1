"""Recovery on its own: the restart loop, the breaker's report, the watchdog."""

from __future__ import annotations

import asyncio

import pytest

from custom_components.shackleton.voice import recovery as rec
from custom_components.shackleton.voice.recovery import Breaker, Recovery


class Home:
    """The one part of a home recovery uses: where errors are reported."""

    def __init__(self) -> None:
        """Record errors."""
        self.errors: list[tuple[str, str, bool]] = []

    def report_error(self, room: str, source: str, message: str, *, recoverable: bool) -> None:
        """Keep the error."""
        self.errors.append((source, message, recoverable))


def _recovery(home: Home, timeouts: list[int], deadline: float = 0.05) -> Recovery:
    return Recovery(
        "den",
        home,  # type: ignore[arg-type]
        breaker=Breaker(2, lambda: 30.0),
        turn_deadline=lambda: deadline,
        on_timeout=lambda: timeouts.append(1),
    )


async def test_restart_retries_with_backoff_until_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """A start that fails is tried again, backing off; a good turn makes it immediate."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(rec.asyncio, "sleep", sleep)
    home, timeouts = Home(), []
    recovery = _recovery(home, timeouts)
    results = iter([False, False, True])
    stops: list[int] = []

    async def stop() -> None:
        stops.append(1)

    async def start() -> bool:
        return next(results)

    assert await recovery.restart(stop, start)
    assert (recovery.restarts, len(stops)) == (3, 3)
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0
    assert 1.0 <= waits[1] <= 2.0
    assert not recovery.restarting
    # Without a good turn in between, the next restart backs off further.
    assert await recovery.restart(stop, lambda: _true())
    assert len(waits) == 3
    assert 2.0 <= waits[2] <= 4.0
    recovery.turn_succeeded()
    assert await recovery.restart(stop, lambda: _true())
    assert len(waits) == 3  # at once again


async def _true() -> bool:
    """Start successfully."""
    return True


async def test_restart_once_at_a_time_and_not_when_closing() -> None:
    """A second restart while one runs does nothing; a closing room is not restarted."""
    home, timeouts = Home(), []
    recovery = _recovery(home, timeouts)
    gate = asyncio.Event()

    async def stop() -> None:
        await gate.wait()

    first = asyncio.ensure_future(recovery.restart(stop, _true))
    await asyncio.sleep(0)
    assert not await recovery.restart(stop, _true)
    recovery.close()
    gate.set()
    assert not await first
    assert not await recovery.restart(stop, _true)


async def test_breaker_reported_when_it_opens_and_watchdog() -> None:
    """The breaker is reported once, when it opens; the watchdog fires once, then rests."""
    home, timeouts = Home(), []
    recovery = _recovery(home, timeouts)
    recovery.turn_failed("llm_error")
    assert home.errors == []
    recovery.turn_failed("llm_error")
    recovery.turn_failed("llm_error")
    assert home.errors == [("breaker", "2 turns failed in a row (llm_error)", False)]
    assert recovery.breaker.is_open()
    recovery.watchdog.arm()
    assert recovery.watchdog.armed
    await asyncio.sleep(0.1)
    assert timeouts == [1]
    assert not recovery.watchdog.armed
    assert home.errors[-1][0] == "timeout"
    recovery.watchdog.touch()
    assert not recovery.watchdog.armed  # touch only re-arms a waiting watchdog
    recovery.watchdog.arm()
    recovery.close()
    await asyncio.sleep(0.1)
    assert timeouts == [1]
