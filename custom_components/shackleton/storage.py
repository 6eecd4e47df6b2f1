"""Saved data that cannot be read: kept aside for the user, and the entry loads without it.

HA's `Store` already keeps aside a file that is not JSON at all, with its own repair
issue. What it returns or raises for JSON of the wrong shape (no envelope, a list where
we saved a dict, an item missing a field) would otherwise fail the entry's set-up, or
fail later, at a worse time. `async_load_checked` does for those what HA does for broken
JSON: the file is renamed aside, a repair issue names it, and the store starts empty.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
import os
import types
from typing import Any, Final, get_type_hints

from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER

# Longer errors are cut in the repair issue; they name paths and types, never saved values.
MAX_ERROR_CHARS: Final = 300

type Kind = type[Any] | types.UnionType


async def async_load_checked[T](
    store: Store[Any], parse: Callable[[Any], T], what: str
) -> T | None:
    """Return `parse` of the store's data; None when nothing is saved or it cannot be read.

    `what` names the data for the user, in the plural ("notes", "queued announcements").
    `parse` raises TypeError, KeyError, ValueError or AttributeError for data that is not
    what was saved; the file is then kept aside, and new data is saved as usual.
    """
    try:
        data = await store.async_load()
    except Exception as err:  # noqa: BLE001 - HA's Store raises KeyError, TypeError, its own errors
        await _async_keep_aside(store, what, err)
        return None
    if data is None:  # nothing saved yet, or broken JSON that HA itself kept aside
        return None
    try:
        return parse(data)
    except (TypeError, KeyError, ValueError, AttributeError) as err:
        await _async_keep_aside(store, what, err)
        return None


async def async_remove_store(store: Store[Any]) -> None:
    """Delete a store's file and its repair issues (its entry is being removed).

    A file kept aside stays where it is: it is the user's to delete.
    """
    await store.async_remove()
    prefix = _issue_prefix(store)
    for domain, issue_id in list(ir.async_get(store.hass).issues):
        if domain == DOMAIN and issue_id.startswith(prefix):
            ir.async_delete_issue(store.hass, DOMAIN, issue_id)


def check(value: object, kind: Kind, where: str) -> Any:
    """Return a saved value if it is of `kind`; raise TypeError naming `where` if not."""
    # A whole number edited in by hand (3 for 3.0) still counts as a float.
    if isinstance(value, kind) or (kind is float and type(value) is int):
        return value
    raise TypeError(f"{where} is {type(value).__name__}, not {_name(kind)}")


def checked(item: object, kinds: Mapping[str, Kind], where: str) -> dict[str, Any]:
    """Return the fields `kinds` names from a saved object, each checked for its type.

    Fields not named are ignored (a newer minor version may add some). Errors name the
    field and its type, never its value: saved text can be private.
    """
    saved: dict[str, Any] = check(item, dict, where)
    if missing := [name for name in kinds if name not in saved]:
        raise ValueError(f"{where} has no {', '.join(missing)}")
    return {name: check(saved[name], kind, f"{where}.{name}") for name, kind in kinds.items()}


def from_saved[T](cls: type[T], item: object, where: str) -> T:
    """Build the dataclass `cls` from a saved mapping of its fields, checked by type."""
    return cls(**checked(item, get_type_hints(cls), where))


def saved_time(value: object, where: str) -> datetime:
    """Return a saved ISO time with its zone (one without would fail every comparison)."""
    parsed = dt_util.parse_datetime(check(value, str, where))
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(f"{where} is not a date and time with a time zone")
    return parsed


def _name(kind: Kind) -> str:
    return kind.__name__ if isinstance(kind, type) else str(kind)


def _issue_prefix(store: Store[Any]) -> str:
    return f"storage_corrupt_{store.key}_"


async def _async_keep_aside(store: Store[Any], what: str, err: Exception) -> None:
    """Rename the store's file aside, say so in a repair issue, and log it."""
    hass = store.hass
    when = dt_util.utcnow().isoformat()
    path: str = store.path
    kept = f"{path}.corrupt.{when}"
    error = f"{type(err).__name__}: {err}"
    try:
        await hass.async_add_executor_job(os.rename, path, kept)
    except OSError as move_err:
        # Nothing on disk to keep (it never got there), or a disk that refuses: say so.
        kept = f"nowhere ({move_err.strerror})"
    LOGGER.error(
        "Could not read the saved %s in %s (%s); the file was kept as %s and they start empty",
        what,
        path,
        error,
        kept,
    )
    # One issue per occurrence: a second one is news, even if the first was dismissed.
    # Persistent, because the next start loads the new file without error.
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"{_issue_prefix(store)}{when}",
        is_fixable=False,
        is_persistent=True,
        severity=ir.IssueSeverity.WARNING,
        translation_key="storage_corrupt",
        translation_placeholders={
            "store": what,
            "path": path,
            "kept": kept,
            "error": error if len(error) <= MAX_ERROR_CHARS else f"{error[:MAX_ERROR_CHARS]}…",
        },
    )
