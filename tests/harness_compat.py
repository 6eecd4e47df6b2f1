"""Let pytest-homeassistant-custom-component 0.13.375 (cut for HA 2026.10.4) load on 2026.11.

Loaded first (`-p tests.harness_compat` in pyproject.toml), before the harness's plugin:
- HA 2026.11 aliases `httpx` to `httpx2` when `homeassistant` is first imported, and
  refuses if `httpx` came first; the harness imports respx (and so httpx) before HA.
- Names the harness imports that HA 2026.11 moved, and the restore cache it fills
  (HA 2026.11 reads `last_states_by_entity_id`).
Goes when a harness release tracks HA 2026.11.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import homeassistant  # noqa: F401 - aliases httpx to httpx2 before anything imports it
from homeassistant.components import logger
from homeassistant.components.logger import helpers as logger_helpers
from homeassistant.helpers import restore_state as rs

if not hasattr(logger, "_clear_logger_overwrites"):
    # Moved to logger.helpers in 2026.11.
    logger._clear_logger_overwrites = logger_helpers._clear_logger_overwrites  # type: ignore[attr-defined]


def pytest_configure(config: Any) -> None:
    """Fix the harness's restore cache, once its plugin (imported in order) has loaded."""
    from pytest_homeassistant_custom_component import common

    if "last_states_by_entity_id" not in rs.RestoreStateData.__init__.__code__.co_names:
        return  # HA 2026.10 still reads the harness's `last_states`
    harness_restore_cache = common.mock_restore_cache

    def mock_restore_cache(hass: Any, states: Sequence[Any]) -> None:
        """Fill the restore cache where HA 2026.11 reads it (`last_states_by_entity_id`).

        The harness swaps in a new helper; HA's own, set up with the test's hass, is the
        one listening for registry entries, so it keeps its place and takes the states.
        """
        own = hass.data.get(rs.DATA_RESTORE_STATE)
        harness_restore_cache(hass, states)
        mocked = hass.data[rs.DATA_RESTORE_STATE]
        if own is not None:
            hass.data[rs.DATA_RESTORE_STATE] = own
        hass.data[rs.DATA_RESTORE_STATE].last_states_by_entity_id = mocked.last_states

    common.mock_restore_cache = mock_restore_cache
