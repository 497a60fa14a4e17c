"""Deterministic synthetic workload: Kafka records plus the DynamoDB truth they imply.

One `WorkloadSpec` (with its seed) always yields the same records and the same
authority, so tests, benchmarks and demos can share it. Nothing here talks to
Kafka or AWS: records are plain tuples, the authority is computed.

Model. `messages` messages are spread over `chats` chats by a Zipf law (chat
rank k gets weight 1/(k+1)**zipf_s). Each chat's sequences are 1..n. Every
message yields one `message_persisted`, a `message_acked` with probability
`ack_ratio`, and one `message_delivered` per recipient. Events are emitted in
time order (publish, ack and delivery latencies interleave them), chat -> partition
by crc32 of the chat id, offsets increase per (topic, partition).

Faults (fractions of messages, except the counter_* ones: of active chats). Each
fault hits a distinct message, so their findings add up exactly (`expected`):
  loss                persisted + acked, but no item        -> message_loss
  duplicate_sequence  a second id at the same sequence is persisted + acked; the
                      item keeps the original               -> duplicate_sequence + message_loss
  gap                 item written, persisted event never published -> sequence_gap (publish_gap)
  out_of_order        persisted event published after the next one -> out_of_order
  clock_skew          one delivery with delivered_at < created_at   -> clock_skew
  duplicate_delivery  one delivery record sent twice         -> duplicate_delivery
  counter_behind      counter = highest sequence - 1         -> counter_corruption
  counter_missing     no counter item                        -> counter_corruption
  producer_retry      persisted record published twice      -> redelivered (count only)
  bad_record          an extra malformed record             -> rejected (count only)
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as _dt
import functools
import gzip
import heapq
import itertools
import json
import os
import random
import zlib
from typing import Iterable, Iterator, NamedTuple

PERSISTED, ACKED, DELIVERED = "message_persisted", "message_acked", "message_delivered"
MESSAGE_FAULTS = ("out_of_order", "loss", "duplicate_sequence", "gap", "clock_skew",
                  "duplicate_delivery", "producer_retry")
CHAT_FAULTS = ("counter_behind", "counter_missing")
BAD_KINDS = ("invalid_json", "not_an_object", "missing_field", "invalid_field", "unknown_event_type")
_EPOCH = _dt.datetime(2026, 1, 31, 10, 0, tzinfo=_dt.timezone.utc)
_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class WorkloadSpec:
    chats: int = 100
    messages: int = 1_000
    partitions: int = 4
    recipients_per_message: int = 2
    ack_ratio: float = 1.0
    zipf_s: float = 1.1
    loss: float = 0.0
    duplicate_sequence: float = 0.0
    gap: float = 0.0
    out_of_order: float = 0.0
    clock_skew: float = 0.0
    duplicate_delivery: float = 0.0
    counter_behind: float = 0.0
    counter_missing: float = 0.0
    producer_retry: float = 0.0
    bad_record: float = 0.0
    persisted_topic: str = "messages.persisted"
    acked_topic: str = "messages.acked"
    delivered_topic: str = "messages.delivered"
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.chats, self.messages, self.partitions) < 1 or self.recipients_per_message < 0:
            raise ValueError("chats, messages and partitions must be >= 1, recipients >= 0")
        if not all(0 <= getattr(self, f) <= 1 for f in MESSAGE_FAULTS + CHAT_FAULTS + ("bad_record", "ack_ratio")):
            raise ValueError("fault fractions and ack_ratio must be within [0, 1]")

    @property
    def records_per_message(self) -> float:
        """Expected records per message without faults (for sizing a dump)."""
        return 1 + self.ack_ratio + self.recipients_per_message


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes
    headers: list  # [(name, value bytes)], as aiokafka takes them
    payload: bytes


def chat_id(index: int) -> str:
    return f"chat_{index:06d}"


def message_id(spec: WorkloadSpec, chat: int, seq: int) -> str:
    """The server-assigned id of the original message at (chat, seq): a formula."""
    return f"m{spec.seed:x}-{chat:06d}-{seq:08d}"


@functools.lru_cache(maxsize=4096)
def _second(sec: int) -> str:
    return (_EPOCH + _dt.timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S")


def _ts(us: int) -> str:
    sec, frac = divmod(us, 1_000_000)
    return f"{_second(sec)}.{frac:06d}Z"


try:  # optional speed-up; the output bytes are the same (all strings here are ASCII)
    from orjson import dumps as _dumps
except ImportError:  # pragma: no cover
    def _dumps(obj: dict) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


class Workload:
    """The plan for one spec: per-chat message counts and where each fault lands.

    Memory is O(chats + faults), never O(messages): records are regenerated on
    each `records()` call from the same seeds.
    """

    def __init__(self, spec: WorkloadSpec) -> None:
        self.spec = spec
        weights = [1.0 / (k + 1) ** spec.zipf_s for k in range(spec.chats)]
        self._cum = list(itertools.accumulate(weights))
        self.counts = [0] * spec.chats
        for c in self._chat_stream():
            self.counts[c] += 1
        self._plan_faults()

    def _chat_stream(self) -> Iterator[int]:
        rng, left, pop = random.Random(self.spec.seed), self.spec.messages, range(self.spec.chats)
        while left > 0:
            n = min(left, _CHUNK)
            yield from rng.choices(pop, cum_weights=self._cum, k=n)
            left -= n

    def _plan_faults(self) -> None:
        spec, rng = self.spec, random.Random(f"{self.spec.seed}:faults")
        total = spec.messages
        self.injected = {f: round(getattr(spec, f) * total) for f in MESSAGE_FAULTS}
        active = [c for c, n in enumerate(self.counts) if n >= 2]
        self.injected.update({f: round(getattr(spec, f) * len(active)) for f in CHAT_FAULTS})
        self.injected["bad_record"] = round(spec.bad_record * total)
        if spec.recipients_per_message < 1 and (self.injected["clock_skew"] or self.injected["duplicate_delivery"]):
            raise ValueError("clock_skew and duplicate_delivery need recipients_per_message >= 1")
        prefix = [0] + list(itertools.accumulate(self.counts))
        self.faults: dict[tuple[int, int], str] = {}
        taken: set[tuple[int, int]] = set()
        wanted = [f for f in reversed(MESSAGE_FAULTS) for _ in range(self.injected[f])]
        tries = 0
        while wanted:  # rejection sampling: O(faults) memory, out_of_order placed first
            tries += 1
            if tries > 50 * total + 1000:
                raise ValueError(f"not enough messages for the requested faults ({len(wanted)} left)")
            idx = rng.randrange(total)
            c = bisect.bisect_right(prefix, idx) - 1
            key = (c, idx - prefix[c] + 1)
            if key in taken:
                continue
            if wanted[-1] == "out_of_order":  # needs a normal successor to be published after
                nxt = (c, key[1] + 1)
                if key[1] >= self.counts[c] or nxt in taken:
                    continue
                taken.add(nxt)
            taken.add(key)
            self.faults[key] = wanted.pop()
        picked = rng.sample(active, self.injected["counter_behind"] + self.injected["counter_missing"])
        self.counter_faults = {c: ("counter_behind" if i < self.injected["counter_behind"] else "counter_missing")
                               for i, c in enumerate(picked)}
        self.bad = set(rng.sample(range(total), self.injected["bad_record"]))
        self.lost = {k for k, f in self.faults.items() if f == "loss"}

    @property
    def expected(self) -> dict[str, int]:
        """Finding counts (report `counts`) that a correct auditor must produce."""
        i = self.injected
        return {"message_loss": i["loss"] + i["duplicate_sequence"],
                "duplicate_sequence": i["duplicate_sequence"],
                "counter_corruption": i["counter_behind"] + i["counter_missing"],
                "sequence_gap": i["gap"], "out_of_order": i["out_of_order"],
                "clock_skew": i["clock_skew"], "duplicate_delivery": i["duplicate_delivery"],
                "redelivered": i["producer_retry"], "rejected": i["bad_record"]}

    def partition_of(self, chat: int) -> int:
        return zlib.crc32(chat_id(chat).encode()) % self.spec.partitions

    def last_sequence(self, chat: int) -> int | None:
        n, fault = self.counts[chat], self.counter_faults.get(chat)
        if n == 0 or fault == "counter_missing":
            return None
        return n - 1 if fault == "counter_behind" else n

    def truth(self) -> tuple[dict[str, dict[int, str]], dict[str, int]]:
        """The authority materialised: messages {chat: {seq: id}}, counters {chat: last}."""
        messages, counters = {}, {}
        for c, n in enumerate(self.counts):
            items = {s: message_id(self.spec, c, s) for s in range(1, n + 1) if (c, s) not in self.lost}
            if items:
                messages[chat_id(c)] = items
            if (last := self.last_sequence(c)) is not None:
                counters[chat_id(c)] = last
        return messages, counters

    def authority(self, messages: bool = True, counters: bool = True) -> "WorkloadAuthority":
        return WorkloadAuthority(self, messages, counters)

    def records(self) -> Iterator[Record]:
        """Every Kafka record, in emission order. Regenerated identically on each call."""
        spec, rng = self.spec, random.Random(f"{self.spec.seed}:events")
        heap: list = []
        offsets: dict[tuple[str, int], int] = {}
        seqs = [0] * spec.chats
        pending: dict[int, tuple] = {}  # chat -> delayed persisted record (out_of_order)
        last_pub: dict[int, int] = {}
        tie = 0
        members = spec.recipients_per_message + 1

        def push(at: int, topic: str, part: int, key: bytes, headers: list, payload: bytes) -> None:
            nonlocal tie
            tie += 1
            heapq.heappush(heap, (at, tie, topic, part, key, headers, payload))

        def trace(tid: int) -> list:
            return [("traceparent", f"00-{tid:032x}-{rng.getrandbits(64) | 1:016x}-01".encode())]

        def drain(until: float) -> Iterator[Record]:  # everything due by `until`, offsets assigned
            while heap and heap[0][0] <= until:
                _, _, topic, part, key, headers, payload = heapq.heappop(heap)
                off = offsets[(topic, part)] = offsets.get((topic, part), -1) + 1
                yield Record(topic, part, off, key, headers, payload)

        now = 0  # microseconds since _EPOCH; about one message per millisecond
        for i, c in enumerate(self._chat_stream()):
            now += rng.randint(200, 1800)
            yield from drain(now)
            seqs[c] = s = seqs[c] + 1
            cid, part, fault = chat_id(c), self.partition_of(c), self.faults.get((c, s))
            key, mid, tid = cid.encode(), message_id(spec, c, s), rng.getrandbits(128) | 1
            base = {"chat_id": cid, "sequence": s, "message_id": mid}
            created = _ts(now)
            if i in self.bad:
                push(now, spec.persisted_topic, part, key, trace(tid), _bad(BAD_KINDS[i % len(BAD_KINDS)], cid, s))
            persisted = _dumps({"event_type": PERSISTED, **base, "created_at": created,
                                "sender_id": f"u{c}_{s % members}"})
            # The durability plane publishes a chat's events in sequence order.
            pub = last_pub[c] = max(now + rng.randint(300, 3000), last_pub.get(c, 0) + 1)
            headers = trace(tid)
            if fault == "out_of_order":
                pending[c] = (headers, persisted)
            elif fault != "gap":
                push(pub, spec.persisted_topic, part, key, headers, persisted)
                if c in pending:
                    push(pub, spec.persisted_topic, part, key, *pending.pop(c))
                if fault == "producer_retry":  # the same bytes again, a little later
                    push(pub + rng.randint(1000, 200_000), spec.persisted_topic, part, key, headers, persisted)
            claims = [(mid, tid)]
            if fault == "duplicate_sequence":
                dup_mid, dup_tid = mid + "x", rng.getrandbits(128) | 1
                claims.append((dup_mid, dup_tid))
                push(pub, spec.persisted_topic, part, key, trace(dup_tid),
                     _dumps({"event_type": PERSISTED, **base, "message_id": dup_mid, "created_at": created,
                             "sender_id": f"u{c}_{(s + 1) % members}"}))
            for j, (m, t) in enumerate(claims):
                if j or rng.random() < spec.ack_ratio:
                    at = pub + rng.randint(500, 20_000)
                    push(at, spec.acked_topic, part, key, trace(t), _dumps(
                        {"event_type": ACKED, **base, "message_id": m, "acked_at": _ts(at)}))
            if fault == "gap":
                continue
            for r in range(1, members):
                at = pub + rng.randint(2_000, 300_000)
                delivered = now - rng.randint(1_000, 500_000) if (fault == "clock_skew" and r == 1) else at
                event = {"event_type": DELIVERED, **base, "recipient_id": f"u{c}_{(s + r) % members}",
                         "created_at": created, "delivered_at": _ts(delivered)}
                push(at, spec.delivered_topic, part, key, trace(tid), _dumps(event))
                if fault == "duplicate_delivery" and r == 1:
                    again = at + rng.randint(100_000, 2_000_000)
                    push(again, spec.delivered_topic, part, key, trace(tid),
                         _dumps({**event, "delivered_at": _ts(again)}))
        yield from drain(float("inf"))


def _bad(kind: str, cid: str, seq: int) -> bytes:
    """A malformed record of the given rejection kind (docs/semantics.md)."""
    good = {"event_type": PERSISTED, "chat_id": cid, "sequence": seq, "message_id": f"bad-{cid}-{seq}",
            "created_at": _ts(0), "sender_id": "u0"}
    return {"invalid_json": _dumps(good)[:-7], "not_an_object": b'["message_persisted"]',
            "missing_field": _dumps({k: v for k, v in good.items() if k != "message_id"}),
            "invalid_field": _dumps({**good, "sequence": str(seq)}),
            "unknown_event_type": _dumps({**good, "event_type": "message_edited"})}[kind]


class WorkloadAuthority:
    """`auditor.authority.Authority` computed from a workload plan: O(chats + faults)."""

    def __init__(self, workload: Workload, messages: bool = True, counters: bool = True) -> None:
        self.w, self.has_messages, self.has_counters = workload, messages, counters
        self._chats = {chat_id(c): (c, n, message_id(workload.spec, c, 0)[:-8])
                       for c, n in enumerate(workload.counts)}

    def message_id(self, chat_id: str, sequence: int) -> str | None:
        entry = self._chats.get(chat_id) if self.has_messages else None
        if entry is None or not 0 < sequence <= entry[1] or (entry[0], sequence) in self.w.lost:
            return None
        return f"{entry[2]}{sequence:08d}"  # == message_id(spec, chat, sequence), faster

    def items_of(self, chat_id: str) -> "_ChatItems":
        return _ChatItems(self, chat_id)

    def sequence_bounds(self, chat_id: str) -> tuple[int, int] | None:
        entry = self._chats.get(chat_id) if self.has_messages else None
        if entry is None:
            return None
        (c, n, _), lost = entry, self.w.lost
        lo = next((s for s in range(1, n + 1) if (c, s) not in lost), None)
        hi = next((s for s in range(n, 0, -1) if (c, s) not in lost), None)
        return None if lo is None else (lo, hi)

    def last_sequence(self, chat_id: str) -> int | None:
        entry = self._chats.get(chat_id) if self.has_counters else None
        return None if entry is None else self.w.last_sequence(entry[0])

    def chat_ids(self) -> Iterable[str]:
        return (cid for cid in self._chats if self.sequence_bounds(cid)) if self.has_messages else ()


class _ChatItems:
    """One chat's items, computed on lookup: the `.get` the engine's hot path uses."""

    __slots__ = ("_authority", "_chat_id")

    def __init__(self, authority: WorkloadAuthority, chat_id: str) -> None:
        self._authority, self._chat_id = authority, chat_id

    def get(self, sequence: int, default: str | None = None) -> str | None:
        found = self._authority.message_id(self._chat_id, sequence)
        return default if found is None else found


def _open_w(path: str | os.PathLike):
    return gzip.open(path, "wb", compresslevel=3) if str(path).endswith(".gz") else open(path, "wb")


def write_kcat_dump(records: Iterable[Record], path: str | os.PathLike, ts_ms: int = 1769853600000) -> int:
    """Write `kcat -C -J` envelope lines (gzip when the path ends in .gz); returns the count.

    kcat's `ts` is synthetic (ts_ms plus the line number): the auditor ignores it.
    """
    n = 0
    with _open_w(path) as f:
        for n, (topic, part, off, key, headers, payload) in enumerate(records, 1):
            env = {"topic": topic, "partition": part, "offset": off, "tstype": "create", "ts": ts_ms + n,
                   "broker": 0, "headers": [x for h, v in headers for x in (h, v.decode())],
                   "key": key.decode(), "payload": payload.decode("utf-8", "replace")}
            f.write(_dumps(env) + b"\n")
    return n


def write_export(messages: dict[str, dict[int, str]] | None, counters: dict[str, int] | None,
                 messages_dir: str | os.PathLike | None, counters_dir: str | os.PathLike | None,
                 name: str = "export") -> None:
    """Write AWS "Export to S3" DynamoDB JSON: DIR/data/<name>.json.gz, one {"Item": ...} per line."""
    if messages is not None and messages_dir is not None:
        with _export_file(messages_dir, name) as f:
            for cid, items in messages.items():
                for seq, mid in items.items():
                    f.write(_dumps({"Item": {"chat_id": {"S": cid}, "sequence": {"N": str(seq)},
                                             "message_id": {"S": mid}, "sender_id": {"S": f"{cid}_sender"},
                                             "created_at": {"S": _ts(seq)}}}) + b"\n")
    if counters is not None and counters_dir is not None:
        with _export_file(counters_dir, name) as f:
            for cid, last in counters.items():
                f.write(_dumps({"Item": {"chat_id": {"S": cid}, "last_sequence": {"N": str(last)}}}) + b"\n")


def _export_file(directory: str | os.PathLike, name: str):
    data = os.path.join(directory, "data")
    os.makedirs(data, exist_ok=True)
    return gzip.open(os.path.join(data, f"{name}.json.gz"), "wb", compresslevel=3)
