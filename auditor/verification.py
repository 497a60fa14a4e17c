"""Which claims to read from DynamoDB: the verification policy.

Reading every claimed (chat, sequence) is exact and costs one item read per
message; a policy trades that cost for when a verdict is taken. Whatever the
policy, an anomaly is always read: a sequence whose events carry two message
ids. Sequences not read are audited with the first id seen standing in for the
item, their claims undecided (no `durability_ack_sent_total`, no loss) until
the item is read: in replay that is at the latest before `finish`, so every
policy gives the same report. Live, a sequence that was never read and carries
one id is forgotten at its close without a verdict (auditor.horizon): reading
it then would cost what `all` costs.

DynamoDB cost per 1,000 messages (GetItem-equivalent reads in BatchGetItem,
items under 4 KB; strongly consistent = 1 RCU, eventually consistent = 0.5;
plus one counter read per chat, amortised away in busy chats):

| policy | items read per 1,000 messages | RCU, consistent | RCU, eventual |
|---|---|---|---|
| `all` | 1,000 | 1,000 | 500 |
| `sample` (rate r) | 1,000 r + anomalies | 1,000 r + a | (1,000 r + a) / 2 |
| `anomalies` | anomalies only (a) | a | a / 2 |

`a` is the number of sequences per 1,000 messages that carry two ids: zero in
a healthy system. Sampling is by a hash of (chat, sequence), so every
auditor instance picks the same keys and the sampled SLI is unbiased;
`anomalies` feeds the durability SLI no healthy denominator, so use `all` or
`sample` where the SLI matters.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterable

ALL, SAMPLE, ANOMALIES = "all", "sample", "anomalies"
MODES = (ALL, SAMPLE, ANOMALIES)
_SCALE = 1 << 32


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    mode: str = ALL
    sample_rate: float = 0.01  # for `sample`: the share of sequences read

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"verification mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not 0.0 < self.sample_rate <= 1.0:
            raise ValueError("sample rate must be in (0, 1]")

    @property
    def reads_everything(self) -> bool:
        return self.mode == ALL

    def sampled(self, chat_id: str, seq: int) -> bool:
        return zlib.crc32(f"{chat_id}\x00{seq}".encode()) < self.sample_rate * _SCALE

    def keys_to_read(self, admitted: Iterable, engine) -> set[tuple[str, int]]:
        """The (chat, sequence) keys of these admitted events to read now."""
        keys: set[tuple[str, int]] = set()
        if self.mode == ALL:
            return {(event.chat_id, event.sequence) for event, _ in admitted}
        first_in_batch: dict[tuple[str, int], str] = {}
        for event, _ in admitted:
            key = (event.chat_id, event.sequence)
            first = first_in_batch.setdefault(key, event.message_id)
            if (first != event.message_id
                    or engine.unverified(key[0], key[1], event.message_id)
                    or (self.mode == SAMPLE and self.sampled(*key))):
                keys.add(key)
        return keys
