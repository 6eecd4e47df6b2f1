"""A room's fault handling: the turn watchdog, the circuit breaker, restarts with backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import logging
import time

from .home import Home
from .settings import Backoff

_LOGGER = logging.getLogger(__name__)
RESTART_BACKOFF = Backoff(initial=1.0, maximum=60.0)


class Breaker:
    """Opens after consecutive failed turns; after a pause, lets one turn probe."""

    def __init__(self, threshold: int, retry_after: Callable[[], float]) -> None:
        """Open after `threshold` failures; probe after `retry_after()` seconds."""
        self._threshold = threshold
        self._retry_after = retry_after
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False

    def is_open(self) -> bool:
        """Return whether turns are refused right now (no side effects)."""
        return (
            self.opened_at is not None
            and not self._probing
            and time.monotonic() - self.opened_at < self._retry_after()
        )

    def allow(self) -> bool:
        """Return whether a model call may go ahead; starts the probe when due."""
        if self.opened_at is None or self._probing:
            return True
        if time.monotonic() - self.opened_at >= self._retry_after():
            self._probing = True
            return True
        return False

    def record_failure(self) -> bool:
        """Count a failed turn; return True when this one opened the breaker."""
        self.failures += 1
        self._probing = False
        if self.failures < self._threshold:
            return False
        newly = self.opened_at is None
        self.opened_at = time.monotonic()
        return newly

    def record_success(self) -> None:
        """Close the breaker."""
        self.failures = 0
        self.opened_at = None
        self._probing = False


class Watchdog:
    """Calls `fired` when a turn waits longer than `deadline()` seconds for its answer."""

    def __init__(self, deadline: Callable[[], float], fired: Callable[[], None]) -> None:
        """Wait `deadline()` seconds (read at each arming) before calling `fired`."""
        self._deadline = deadline
        self._fired = fired
        self._handle: asyncio.TimerHandle | None = None

    @property
    def armed(self) -> bool:
        """Return whether the watchdog is waiting."""
        return self._handle is not None

    def arm(self) -> None:
        """Start waiting afresh."""
        self.disarm()
        self._handle = asyncio.get_running_loop().call_later(self._deadline(), self._fire)

    def disarm(self) -> None:
        """Stop waiting."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def touch(self) -> None:
        """Note progress (a tool ran): a waiting watchdog waits afresh."""
        if self._handle is not None:
            self.arm()

    def _fire(self) -> None:
        self._handle = None
        self._fired()


class Recovery:
    """How one room recovers: a watchdog per turn, a breaker across turns, restarts.

    The room session decides what a fault means for the turn; this counts faults,
    reports them to the home, and paces the restarts.
    """

    def __init__(
        self,
        room: str,
        home: Home,
        *,
        breaker: Breaker,
        turn_deadline: Callable[[], float],
        on_timeout: Callable[[], None],
    ) -> None:
        """Recover `room`; `on_timeout` ends a turn the watchdog gave up on."""
        self.room = room
        self._home = home
        self.breaker = breaker
        self._turn_deadline = turn_deadline
        self._on_timeout = on_timeout
        self.watchdog = Watchdog(turn_deadline, self._timed_out)
        self.restarts = 0
        self.restarting = False
        self.closing = False
        self._restart_failures = 0

    def _timed_out(self) -> None:
        _LOGGER.warning("Room %s: no answer within %.1f s", self.room, self._turn_deadline())
        self._home.report_error(
            self.room, "timeout", "the providers did not answer in time", recoverable=True
        )
        self._on_timeout()

    def turn_failed(self, why: str) -> None:
        """Count a failed turn; report the breaker when this one opened it."""
        if self.breaker.record_failure():
            self._home.report_error(
                self.room,
                "breaker",
                f"{self.breaker.failures} turns failed in a row ({why})",
                recoverable=False,
            )

    def turn_succeeded(self) -> None:
        """Close the breaker; the next restart is at once again."""
        self.breaker.record_success()
        self._restart_failures = 0

    def close(self) -> None:
        """Stop watching and restarting: the room is closing."""
        self.closing = True
        self.watchdog.disarm()

    async def restart(
        self, stop: Callable[[], Awaitable[None]], start: Callable[[], Awaitable[bool]]
    ) -> bool:
        """Stop the session and start it again, until `start` succeeds or the room closes.

        Return whether this call restarted the session (not when one is already
        restarting, or the room closed meanwhile).
        """
        if self.restarting:
            return False
        self.restarting = True
        try:
            while not self.closing:
                await stop()
                self.restarts += 1
                # Back off while it keeps failing (a revoked key must not spin); a good
                # turn resets the count.
                self._restart_failures += 1
                if self._restart_failures > 1:  # the first restart is at once
                    await asyncio.sleep(RESTART_BACKOFF.delay(self._restart_failures - 1))
                if not self.closing and await start():
                    return True
            return False
        finally:
            self.restarting = False
