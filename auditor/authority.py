"""The rank-1 authority as the engine sees it: a synchronous, read-only view.

DynamoDB is the source of truth for message existence and sequence integrity
(contract section 4). The engine never talks to DynamoDB itself: it asks an
`Authority` for facts, and adapters decide where those facts come from (a table
export loaded into memory here; a live table, fetched in batches ahead of the
engine, in `auditor.dynamo`).

An authority may lack either table. Without the messages table, message loss
cannot be decided and gaps are `unverified`; without the counters table,
counter corruption cannot be decided and `hi` is not raised. The engine reads
`has_messages` / `has_counters` and says so in the report rather than guessing.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Protocol


class Authority(Protocol):
    has_messages: bool
    has_counters: bool

    def message_id(self, chat_id: str, sequence: int) -> str | None:
        """The message_id of the item at (chat_id, sequence), or None if absent."""

    def items_of(self, chat_id: str) -> Mapping[int, str]:
        """The chat's items as sequence -> message_id (what `message_id` answers
        from). The engine keeps this per chat so its hot path is one `.get`."""

    def sequence_bounds(self, chat_id: str) -> tuple[int, int] | None:
        """Lowest and highest item sequence for the chat, or None without items."""

    def last_sequence(self, chat_id: str) -> int | None:
        """The counter item's `last_sequence`, or None when the item is missing."""

    def chat_ids(self) -> Iterable[str]:
        """Every chat that has at least one message item."""


class NoAuthority:
    """Neither table: every verdict that needs DynamoDB stays undecided."""

    has_messages = False
    has_counters = False

    def message_id(self, chat_id: str, sequence: int) -> str | None:
        return None

    def items_of(self, chat_id: str) -> Mapping[int, str]:
        return {}

    def sequence_bounds(self, chat_id: str) -> tuple[int, int] | None:
        return None

    def last_sequence(self, chat_id: str) -> int | None:
        return None

    def chat_ids(self) -> Iterable[str]:
        return ()


_NO_ITEMS: Mapping[int, str] = {}


class InMemoryAuthority:
    """Tables held as dicts: built from an export, a workload, or a test.

    `messages` maps chat_id -> {sequence: message_id}; `counters` maps chat_id ->
    last_sequence. Passing None for a table means the table is absent (not empty).
    """

    def __init__(
        self,
        messages: dict[str, dict[int, str]] | None = None,
        counters: dict[str, int] | None = None,
    ) -> None:
        self.has_messages = messages is not None
        self.has_counters = counters is not None
        self._messages = messages or {}
        self._counters = counters or {}
        self._bounds: dict[str, tuple[int, int]] = {}

    def message_id(self, chat_id: str, sequence: int) -> str | None:
        items = self._messages.get(chat_id)
        return items.get(sequence) if items else None

    def items_of(self, chat_id: str) -> Mapping[int, str]:
        return self._messages.get(chat_id) or _NO_ITEMS

    def sequence_bounds(self, chat_id: str) -> tuple[int, int] | None:
        bounds = self._bounds.get(chat_id)
        if bounds is None:
            items = self._messages.get(chat_id)
            if not items:
                return None
            bounds = self._bounds[chat_id] = (min(items), max(items))
        return bounds

    def last_sequence(self, chat_id: str) -> int | None:
        return self._counters.get(chat_id)

    def chat_ids(self) -> Iterable[str]:
        return (chat for chat, items in self._messages.items() if items)
