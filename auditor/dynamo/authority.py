"""The authority read from live DynamoDB tables, for the synchronous engine.

The engine asks its questions synchronously; DynamoDB answers asynchronously.
`TableAuthority` bridges them with a cache that the adapter fills before the
engine needs it:

1. `prefetch(keys)`: after `engine.admit`, before `engine.apply`, fetch the
   item at every (chat, sequence) the verification policy chose that is not
   known yet. An absent item is remembered as None, so the engine can tell
   "absent" from "not read" (`complete` is False when the policy does not read
   every key). Counters are not read here: a counter verdict is taken at close
   or finish, on a counter read then.
2. `refresh(keys, chats)`: before the live consumer closes history
   (auditor.horizon), read these items and counters again, known or not:
   verdicts at close are taken on what the table says then, not when the
   first event arrived.
3. `forget(through)`: after the close, drop the cached items up to the closed
   sequence of each chat, so the cache holds the open window only. A later
   event for a closed sequence reads its item again.
   `release(chats)`: drop everything cached for chats the engines retired
   (`AuditEngine.retire`): no engine holds their item maps any more.
4. `prepare_finish(chats)`: before `engine.finish`, read every chat the table
   holds (Scan, ids only), then each chat's items in full (Query) and every
   counter afresh, so ranges, gap classifications and authority-only chats
   are decided exactly as from an export.

A read that cannot complete raises `AuthorityUnavailable` out of the fetch
(the reader has already retried with backoff): the batch is not applied, so
no verdict is ever taken on a missing answer.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ..authority import Authority


class TableAuthority(Authority):
    def __init__(self, reader, has_messages: bool = True, has_counters: bool = True,
                 complete: bool = True) -> None:
        self._reader = reader
        self.has_messages = has_messages
        self.has_counters = has_counters
        self.complete = complete  # True: every key the engine asks about was read
        # chat -> {sequence: message_id, or None where the item is absent}; a key
        # is known exactly when it is in here.
        self._items: dict[str, dict[int, str | None]] = {}
        self._counters: dict[str, int | None] = {}
        self._chat_ids: set[str] = set()

    # -- fetching (async, by the adapter) ------------------------------------

    async def prefetch(self, keys: set[tuple[str, int]]) -> None:
        if self.has_messages:
            items = self._items
            await self._fetch_items([key for key in keys if key[1] not in items.get(key[0], ())])

    async def refresh(self, keys: set[tuple[str, int]], chats: set[str]) -> None:
        if self.has_messages:
            await self._fetch_items(keys)
        if self.has_counters:
            await self._fetch_counters(chats)

    def forget(self, through: Mapping[str, int]) -> None:
        for chat_id, upto in through.items():
            items = self._items.get(chat_id)
            if items:  # in place: the engine holds this dict (`items_of`)
                for seq in [seq for seq in items if seq <= upto]:
                    del items[seq]

    def release(self, chat_ids: Iterable[str]) -> None:
        for chat_id in chat_ids:
            self._items.pop(chat_id, None)
            self._counters.pop(chat_id, None)

    async def prepare_finish(self, chat_ids: set[str]) -> None:
        if self.has_messages:
            self._chat_ids = await self._reader.scan_chat_ids()
            for chat in self._chat_ids | chat_ids:
                items = await self._reader.query_chat(chat)
                self._items.setdefault(chat, {}).update(items)
        if self.has_counters:
            await self._fetch_counters(chat_ids | self._chat_ids)

    async def _fetch_items(self, keys) -> None:
        if keys:
            found = await self._reader.get_messages(keys)
            for (chat, seq), message_id in found.items():
                self._items.setdefault(chat, {})[seq] = message_id

    async def _fetch_counters(self, chats) -> None:
        if chats:
            self._counters.update(await self._reader.get_counters(chats))

    # -- answering (sync, to the engine) -------------------------------------

    def message_id(self, chat_id: str, sequence: int) -> str | None:
        items = self._items.get(chat_id)
        return items.get(sequence) if items else None

    def items_of(self, chat_id: str) -> Mapping[int, str]:
        # The same dict that later fetches fill: the engine keeps a reference.
        return self._items.setdefault(chat_id, {})

    def sequence_bounds(self, chat_id: str) -> tuple[int, int] | None:
        present = [seq for seq, mid in self._items.get(chat_id, {}).items() if mid is not None]
        return (min(present), max(present)) if present else None

    def last_sequence(self, chat_id: str) -> int | None:
        return self._counters.get(chat_id)

    def chat_ids(self) -> Iterable[str]:
        return (chat for chat in self._chat_ids if self.sequence_bounds(chat))
