"""Hypothesis histories for the replay property tests, and a writer that lays
them out on disk as the replay CLI reads them.

A *history* is everything one `auditor replay` run sees: dump files (kcat `-J`
envelope files, some gzipped, and sometimes a plain event JSON-lines file), the
order they are given on the command line (a file may be given twice), and the
two authority tables (each present or absent).

Every dump line carries the generator's own label: `good` (with the event it
encodes and the trace id it should be correlated with), `bad` (with the
rejection reason the generator meant it to have) or `blank`. Lines of envelope
files that are valid envelopes carry their Kafka coordinates; a line that is
not a valid envelope has none (docs/semantics.md). In a plain file, lines
before the first JSON object are read as envelopes and labelled so. The
oracle works from these labels only; it never parses a line and never imports
the auditor.

Faults injected (per chat, at random): lost messages (item absent or holding
another id), duplicate sequences (an extra event of any type with a fresh id),
counter corruption (missing, behind; also benign "ahead"), sequence gaps
(persisted event dropped, with and without the item, authority items before and
after the dumped range), out-of-order persisted events (swaps), clock skew,
duplicate deliveries. Benign noise: producer retries (persisted, acked, delivered),
overlapping dump files, a plain file given twice, interleaving of chats across
topics and partitions, offset holes, traceparent headers (valid, malformed,
null, odd trailing names) and payload trace ids, unknown extra fields, blank
lines, null keys, timestamps with offsets and varying precision, counters for
chats that have nothing else, and bad records of every rejection reason.

Sizes stay small (at most 4 chats, sequences below 45) so that 200 examples
run in seconds.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

PERSISTED = "message_persisted"
ACKED = "message_acked"
DELIVERED = "message_delivered"
EVENT_TYPES = (PERSISTED, ACKED, DELIVERED)
TOPIC_BY_TYPE = {
    PERSISTED: "messages.persisted",
    ACKED: "messages.acked",
    DELIVERED: "messages.delivered",
}
SINGLE_TOPIC = "chat.events"

REASONS = (
    "invalid_envelope",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "invalid_field",
    "unknown_event_type",
)

CHAT_POOL = ("c1", "c2", "chat-3", "room/4", "chät-5", "c 6")
RECIPIENTS = ("u1", "u2", "u3")
GHOST_CHAT = "ghost"  # appears only in rejected records

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
BASE_US = int((datetime(2026, 1, 31, 10, 0, 0, tzinfo=timezone.utc) - EPOCH).total_seconds()) * 1_000_000
OFFSETS_MIN = (0, 0, 0, 120, -330, 345)


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Event:
    """What an accepted record says. Timestamps are microseconds since the epoch
    (exactly the instant the rendered text denotes)."""

    event_type: str
    chat_id: str
    sequence: int
    message_id: str
    created_at: int | None = None
    delivered_at: int | None = None
    recipient_id: str | None = None


@dataclass
class Line:
    """One line of a dump file, verbatim, with the generator's label."""

    text: str
    status: str  # "good" | "bad" | "blank"
    event: Event | None = None
    trace_id: str | None = None  # expected correlation id of a good line
    reason: str | None = None  # rejection reason of a bad line
    coord: tuple[str, int, int] | None = None  # envelope lines that are valid envelopes
    coordless: bool = False  # a plain-file line read as an envelope (before the first object line)


@dataclass
class DumpFile:
    name: str
    kind: str  # "envelope" | "plain"
    gz: bool
    lines: list[Line]


@dataclass
class History:
    files: list[DumpFile]
    order: list[int]  # indices into files, in command-line order (may repeat)
    messages: dict[str, dict[int, str]] | None  # None: no messages table
    counters: dict[str, int] | None  # None: no counters table
    delivery_window: int | None = None  # --delivery-window; None: not given (the default)

    def summary(self) -> str:
        out = []
        for i in self.order:
            f = self.files[i]
            out.append(f"--- {f.name} ({f.kind}{', gz' if f.gz else ''})")
            out.extend(f"  {ln.status:5} {ln.reason or ''} {ln.text}" for ln in f.lines)
        out.append(f"messages={self.messages!r}")
        out.append(f"counters={self.counters!r}")
        out.append(f"delivery_window={self.delivery_window!r}")
        return "\n".join(out)


@dataclass
class Item:
    """A record before layout: where it goes and how to render it."""

    status: str  # "good" | "bad"
    chat: str | None = None
    event: Event | None = None
    payload: str | None = None  # payload text (envelope payload / plain line)
    headers: list | None = None  # kcat headers, None = absent
    header_trace: str | None = None  # trace id of a well-formed traceparent
    payload_trace: str | None = None  # payload trace_id
    key: str | None = None
    reason: str | None = None
    dest: str = "envelope"  # "envelope" | "plain" (bad records pick; good follow chat)
    env_variant: str | None = None  # invalid_envelope variant
    env_obj: object = None  # extra material for invalid envelopes


# --------------------------------------------------------------------------- pieces


def render_ts(us: int, offset_min: int, precision: int, zulu: bool, colon: bool = True) -> tuple[str, int]:
    """RFC 3339 text for `us` truncated to `precision` fraction digits, and the
    truncated instant. `colon=False` writes the offset as +HHMM, which the
    auditor accepts too (semantics.md, "Timestamps")."""
    unit = 10 ** (6 - precision)
    us -= us % unit
    local = (EPOCH + timedelta(microseconds=us)).astimezone(timezone(timedelta(minutes=offset_min)))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if precision:
        text += "." + f"{local.microsecond:06d}"[:precision]
    if offset_min == 0 and zulu:
        text += "Z"
    else:
        sign = "+" if offset_min >= 0 else "-"
        m = abs(offset_min)
        text += f"{sign}{m // 60:02d}{':' if colon else ''}{m % 60:02d}"
    return text, us


_TS_STYLE = st.tuples(st.sampled_from(OFFSETS_MIN), st.sampled_from((0, 3, 6, 6)), st.booleans(),
                      st.sampled_from((True, True, True, False)))


def _ts(draw, us: int) -> tuple[str, int]:
    return render_ts(us, *draw(_TS_STYLE))


EXTRAS = (
    {"schema_version": 2},
    {"producer": "durability-7"},
    {"attrs": {"priority": "high", "n": [1, 2]}},
    {"sequence_hint": "7"},
    {"ttl": None},
    {"labels": {"chat_id": 5}},
)


_TRACE = st.tuples(
    st.integers(1, 2**128 - 1),
    st.integers(1, 2**64 - 1),
    st.sampled_from(
        (
            "absent", "empty", "valid", "valid", "valid", "short", "zero", "version",
            "noflags", "nonhex", "garbage", "extra", "null", "odd",
        )
    ),
    st.sampled_from(("none", "none", "pair", "null_pair", "dangling")),
    st.one_of(
        st.none(),
        st.integers(1, 2**128 - 1).map(lambda n: f"{n:032x}"),
        st.integers(0, 9999).map(lambda n: f"req-{n}"),
    ),
)


_EXTRAS_STYLE = st.tuples(st.lists(st.sampled_from(EXTRAS), max_size=2), st.booleans())


def _trace(draw) -> tuple[list | None, str | None, str | None]:
    """(headers, trace id of a well-formed traceparent or None, payload trace_id)."""
    t, s, variant, other, ptrace = draw(_TRACE)
    tid = f"{t:032x}"
    sid = f"{s:016x}"
    headers: list | None
    header_trace = None
    value = {
        "short": f"00-{tid[:31]}-{sid}-01",
        "zero": f"00-{'0' * 32}-{sid}-01",
        "version": f"01-{tid}-{sid}-01",
        "noflags": f"00-{tid}-{sid}",
        "nonhex": f"00-{'g' + tid[1:]}-{sid}-01",
        "garbage": "not-a-traceparent",
        "extra": f"00-{tid}-{sid}-01-extra",
        "valid": f"00-{tid}-{sid}-01",
    }.get(variant)
    if variant == "absent":
        headers = None
    elif variant == "empty":
        headers = []
    elif variant == "null":  # a header with a null value (kcat writes those)
        headers = ["traceparent", None]
    elif variant == "odd":  # an odd trailing name is ignored
        headers = ["traceparent"]
    else:
        headers = ["traceparent", value]
        if variant == "valid":
            header_trace = tid
    if headers is not None and other == "pair":
        headers = ["content-type", "application/json", *headers]
    elif headers is not None and other == "null_pair":
        headers = ["x-empty", None, *headers]
    elif headers is not None and other == "dangling" and len(headers) % 2 == 0:
        headers = [*headers, "x-dangling"]
    return headers, header_trace, ptrace


_DUMPS_STYLE = st.tuples(st.booleans(), st.booleans())


def _dumps(draw, obj) -> str:
    compact, ascii_only = draw(_DUMPS_STYLE)
    return json.dumps(obj, ensure_ascii=ascii_only, separators=(",", ":") if compact else (", ", ": "))


_ACK_DELAY = st.integers(0, 50_000)
_NULL_KEY = st.sampled_from((False, False, True))


def good_item(
    draw,
    event_type: str,
    chat: str,
    seq: int,
    mid: str,
    *,
    created: int = BASE_US,
    delivered: int | None = None,
    recipient: str | None = None,
) -> Item:
    fields: dict = {"event_type": event_type, "chat_id": chat, "sequence": seq, "message_id": mid}
    c_us = d_us = None
    if event_type == PERSISTED:
        fields["created_at"], c_us = _ts(draw, created)
        fields["sender_id"] = f"s-{chat}"
    elif event_type == ACKED:
        fields["acked_at"], _ = _ts(draw, created + draw(_ACK_DELAY))
    else:
        fields["recipient_id"] = recipient
        fields["created_at"], c_us = _ts(draw, created)
        fields["delivered_at"], d_us = _ts(draw, delivered if delivered is not None else created)
    headers, header_trace, ptrace = _trace(draw)
    if ptrace is not None:
        fields["trace_id"] = ptrace
    extras, reverse = draw(_EXTRAS_STYLE)
    for extra in extras:
        fields.update(extra)
    if reverse:
        fields = dict(reversed(list(fields.items())))
    ev = Event(
        event_type, chat, seq, mid,
        created_at=c_us, delivered_at=d_us,
        recipient_id=recipient if event_type == DELIVERED else None,
    )
    return Item(
        status="good", chat=chat, event=ev, payload=_dumps(draw, fields),
        headers=headers, header_trace=header_trace, payload_trace=ptrace,
        key=None if draw(_NULL_KEY) else chat,
    )


BAD_TS = (
    "2026-01-31T10:00:00", "2026-01-31", "2026-01-31T10:00Z", "20260131T100000Z",
    "yesterday", "", "2026-02-30T10:00:00Z",
    "2026-01-31T25:00:00Z", 1769853600, "2026-01-31T10:00:00.123+02",
)

REQUIRED = {
    PERSISTED: ("event_type", "chat_id", "sequence", "message_id", "created_at", "sender_id"),
    ACKED: ("event_type", "chat_id", "sequence", "message_id", "acked_at"),
    DELIVERED: (
        "event_type", "chat_id", "sequence", "message_id",
        "recipient_id", "created_at", "delivered_at",
    ),
}

# invalid_envelope variants. Every line that is not a valid envelope has null
# coordinates and advances nothing (docs/semantics.md, dead-letter output);
# the second group still carries a well-formed topic/partition/offset (a fresh
# one) to make sure the auditor does not use it.
ENV_NO_COORDS = (
    "not_json", "array", "string", "number", "null_line",
    "topic_int", "topic_null", "partition_str", "partition_bool", "offset_float",
    "offset_str", "offset_float_integral", "no_topic", "no_partition", "no_offset",
)
ENV_WITH_COORDS = (
    "headers_object", "headers_nonstring", "headers_string",
    "key_int", "key_list", "payload_int", "payload_object", "payload_bool",
)


def bad_item(draw, chats: list[str], plain_ok: bool) -> Item:
    dest = "plain" if plain_ok and draw(st.booleans()) else "envelope"
    reasons = [r for r in REASONS if dest == "envelope" or r != "invalid_envelope"]
    reason = draw(st.sampled_from(reasons))
    etype = draw(st.sampled_from(EVENT_TYPES))
    chat = draw(st.sampled_from([*chats, GHOST_CHAT]))
    seq = draw(st.integers(1, 45))
    mid = f"bad.{draw(st.integers(0, 999))}"
    fields: dict = {"event_type": etype, "chat_id": chat, "sequence": seq, "message_id": mid}
    ts = "2026-01-31T10:00:00Z"
    if etype == PERSISTED:
        fields.update(created_at=ts, sender_id="s")
    elif etype == ACKED:
        fields.update(acked_at=ts)
    else:
        fields.update(recipient_id="u1", created_at=ts, delivered_at="2026-01-31T09:00:00Z")
    payload: str | None
    env_variant = None
    if reason == "missing_field":
        del fields[draw(st.sampled_from(REQUIRED[etype]))]
        payload = json.dumps(fields)
    elif reason == "invalid_field":
        options = [
            ("sequence", str(seq)), ("sequence", float(seq)), ("sequence", 0), ("sequence", -1),
            ("sequence", True), ("sequence", False), ("sequence", seq + 0.5),
            ("chat_id", ""), ("chat_id", 5), ("message_id", ""), ("message_id", 7),
            ("message_id", ["m"]), ("trace_id", 5), ("trace_id", {"id": "x"}), ("event_type", 3),
        ]
        if etype == PERSISTED:
            options += [("created_at", t) for t in BAD_TS] + [("sender_id", 5)]
        elif etype == ACKED:
            options += [("acked_at", t) for t in BAD_TS]
        else:
            options += [("recipient_id", 9)]
            options += [("created_at", t) for t in BAD_TS] + [("delivered_at", t) for t in BAD_TS]
        name, value = draw(st.sampled_from(options))
        fields[name] = value
        payload = json.dumps(fields)
    elif reason == "unknown_event_type":
        fields["event_type"] = draw(
            st.sampled_from(("message_read", "MESSAGE_PERSISTED", "message_persisted ", "", "message.persisted"))
        )
        payload = json.dumps(fields)
    elif reason == "invalid_json":
        choices: list = ["{not json", json.dumps(fields)[:-1], "{'event_type': 'message_acked'}", "message_persisted"]
        if dest == "envelope":
            choices += [None, ""]
        payload = draw(st.sampled_from(choices))
    elif reason == "not_an_object":
        payload = draw(st.sampled_from(["[1, 2]", '"message_persisted"', "42", "true", json.dumps([fields])]))
    else:  # invalid_envelope
        payload = json.dumps(fields)
        env_variant = draw(st.sampled_from(ENV_NO_COORDS + ENV_WITH_COORDS))
    return Item(
        status="bad", chat=chat, payload=payload, reason=reason, dest=dest,
        env_variant=env_variant, env_obj=fields, key=chat,
    )


def envelope_text(item: Item, coord: tuple[str, int, int] | None, draw) -> str:
    """The kcat -J line for an item (coord is None for coordinate-less variants)."""
    v = item.env_variant
    if v in ("not_json", "array", "string", "number", "null_line"):
        return {"not_json": '{"topic": "messages.persisted", "partition": 0,', "array": "[1, 2, 3]",
                "string": '"envelope"', "number": "42", "null_line": "null"}[v]
    topic, partition, offset = coord if coord is not None else ("messages.persisted", 0, 5)
    env: dict = {"topic": topic, "partition": partition, "offset": offset, "tstype": "create",
                 "ts": 1769853600000 + offset, "broker": 1}
    if item.headers is not None:
        env["headers"] = item.headers
    env["key"] = item.key
    env["payload"] = item.payload
    if v == "topic_int":
        env["topic"] = 7
    elif v == "topic_null":
        env["topic"] = None
    elif v == "partition_str":
        env["partition"] = str(partition)
    elif v == "partition_bool":
        env["partition"] = True
    elif v == "offset_float":
        env["offset"] = offset + 0.5
    elif v == "offset_str":
        env["offset"] = str(offset)
    elif v == "offset_float_integral":
        env["offset"] = float(offset)
    elif v == "no_topic":
        del env["topic"]
    elif v == "no_partition":
        del env["partition"]
    elif v == "no_offset":
        del env["offset"]
    elif v == "headers_object":
        env["headers"] = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    elif v == "headers_nonstring":
        env["headers"] = ["traceparent", 5]
    elif v == "headers_string":
        env["headers"] = "traceparent"
    elif v == "key_int":
        env["key"] = 5
    elif v == "key_list":
        env["key"] = ["c1"]
    elif v == "payload_int":
        env["payload"] = 5
    elif v == "payload_object":
        env["payload"] = item.env_obj
    elif v == "payload_bool":
        env["payload"] = True
    return _dumps(draw, env)


# --------------------------------------------------------------------------- chats


_DELIVERIES = st.lists(
    st.tuples(st.sampled_from(RECIPIENTS), st.sampled_from(("late", "late", "equal", "skew"))), max_size=3
)
_LATE = st.integers(1, 3_000_000)
_SKEW = st.integers(1, 2_000_000)
_JITTER = st.integers(0, 999_999)
_ITEM_MODE = st.sampled_from(("ok", "ok", "ok", "ok", "ok", "absent", "other"))
_N_PERSISTED = st.sampled_from((1, 1, 1, 1, 1, 0, 0, 2))
_N_ACKED = st.sampled_from((0, 1, 1, 1, 2))
_ONE_IN_7 = st.integers(0, 6)


def _chat(draw, chat: str, ci: int, messages: dict | None, counters: dict | None) -> list[Item]:
    """One chat's records in its own (per-partition) order; fills the authority."""
    base = draw(st.integers(0, 12))
    n = draw(st.integers(1, 8))
    items: dict[int, str] = {}
    stream: list[Item] = []
    retries: list[tuple[Item, Item]] = []  # (original, copy)

    def deliveries(seq, mid, created):
        out = []
        for recipient, mode in draw(_DELIVERIES):
            if mode == "late":
                d = created + draw(_LATE)
            elif mode == "equal":
                d = created
            else:
                d = created - draw(_SKEW)
            out.append(good_item(draw, DELIVERED, chat, seq, mid, created=created, delivered=d, recipient=recipient))
        return out

    # authority items before the dumped range (history the dump does not cover)
    if draw(st.integers(0, 5)) == 0:
        for seq in range(max(1, base - 1), base + 1):
            items[seq] = f"m{ci}.{seq}"
    for seq in range(base + 1, base + n + 1):
        mid = f"m{ci}.{seq}"
        created = BASE_US + seq * 1_000_000 + draw(_JITTER)
        item_mode = draw(_ITEM_MODE)
        if item_mode == "ok":
            items[seq] = mid
        elif item_mode == "other":
            items[seq] = f"{mid}.auth"
        n_p = draw(_N_PERSISTED)
        n_a = draw(_N_ACKED)
        if n_p:
            it = good_item(draw, PERSISTED, chat, seq, mid, created=created)
            stream.append(it)
            if n_p == 2:
                retries.append((it, it))
        if n_a:
            it = good_item(draw, ACKED, chat, seq, mid, created=created)
            stream.append(it)
            if n_a == 2:
                retries.append((it, it))
        ds = deliveries(seq, mid, created)
        stream.extend(ds)
        if ds and draw(_ONE_IN_7) == 0:
            retries.append((ds[0], ds[0]))  # a delivered record published twice
    # authority items after the dumped range (lag: allocated, committed, not yet published)
    for seq in range(base + n + 1, base + n + 1 + draw(st.integers(0, 2))):
        items[seq] = f"m{ci}.{seq}"
    # duplicate sequences: a second message id at a sequence, in any event type
    for j in range(draw(st.integers(0, 2))):
        seq = draw(st.integers(base + 1, base + n + 2))
        etype = draw(st.sampled_from(EVENT_TYPES))
        created = BASE_US + seq * 1_000_000
        mid = f"x{ci}.{seq}.{j}"
        it = good_item(draw, etype, chat, seq, mid, created=created,
                       delivered=created + 1000, recipient=draw(st.sampled_from(RECIPIENTS)))
        stream.insert(draw(st.integers(0, len(stream))), it)
    # producer retries: the same payload again, later
    for original, copy in retries:
        idx = stream.index(original)
        stream.insert(draw(st.integers(idx + 1, len(stream))), copy)
    # reordering within the chat (out-of-order persisted events among others)
    if stream:
        for i, j in draw(st.lists(st.tuples(st.integers(0, len(stream) - 1), st.integers(0, len(stream) - 1)),
                                  max_size=3)):
            stream[i], stream[j] = stream[j], stream[i]

    if messages is not None and items:
        messages[chat] = items
    if counters is not None:
        seqs = [it.event.sequence for it in stream] + list(items if messages is not None else ())
        top = max(seqs) if seqs else base + n
        mode = draw(st.sampled_from(("ok", "ok", "ok", "ok", "missing", "behind", "ahead")))
        if mode == "ok":
            counters[chat] = top
        elif mode == "behind":
            counters[chat] = draw(st.integers(0, max(0, top - 1)))
        elif mode == "ahead":
            counters[chat] = top + draw(st.integers(1, 3))
    return stream


# --------------------------------------------------------------------------- histories


def stable_partition(chat: str, partitions: int) -> int:
    return sum(chat.encode("utf-8")) % partitions


def _is_object_line(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@st.composite
def histories(draw) -> History:
    n_chats = draw(st.integers(1, 4))
    chats = draw(st.lists(st.sampled_from(CHAT_POOL), min_size=n_chats, max_size=n_chats, unique=True))
    authority = draw(st.sampled_from(("both", "both", "messages", "counters", "none")))
    messages: dict | None = {} if authority in ("both", "messages") else None
    counters: dict | None = {} if authority in ("both", "counters") else None
    streams = [_chat(draw, chat, ci, messages, counters) for ci, chat in enumerate(chats)]
    if counters is not None and draw(st.integers(0, 4)) == 0:
        counters["orphan"] = draw(st.integers(0, 9))  # a counter with no events and no items

    # interleave chats, preserving each chat's own order
    merged: list[Item] = []
    cursors = [0] * len(streams)
    total = sum(map(len, streams))
    picks = draw(st.lists(st.integers(0, len(streams) - 1), min_size=total, max_size=total))
    for p in picks:
        for k in range(len(streams)):
            s = (p + k) % len(streams)
            if cursors[s] < len(streams[s]):
                merged.append(streams[s][cursors[s]])
                cursors[s] += 1
                break

    use_plain = draw(st.integers(0, 2)) == 0
    plain_chats = set(draw(st.lists(st.sampled_from(chats), unique=True))) if use_plain else set()
    for _ in range(draw(st.integers(0, 6))):
        merged.insert(draw(st.integers(0, len(merged))), bad_item(draw, chats, use_plain))

    # ---- envelope records: topic, partition, offset
    topic_mode = draw(st.sampled_from(("by_type", "by_type", "single")))
    partitions = draw(st.integers(1, 3))
    next_offset: dict[tuple[str, int], int] = {}
    env_lines: list[Line] = []
    plain_lines: list[Line] = []
    topics = sorted(set(TOPIC_BY_TYPE.values())) if topic_mode == "by_type" else [SINGLE_TOPIC]
    for it in merged:
        to_plain = it.dest == "plain" if it.status == "bad" else it.chat in plain_chats
        if to_plain:
            if it.status == "good":
                plain_lines.append(Line(it.payload, "good", event=it.event, trace_id=it.payload_trace))
            else:
                plain_lines.append(Line(it.payload, "bad", reason=it.reason))
            continue
        if it.status == "good":
            topic = TOPIC_BY_TYPE[it.event.event_type] if topic_mode == "by_type" else SINGLE_TOPIC
            tp = (topic, stable_partition(it.chat, partitions))
        else:
            tp = (draw(st.sampled_from(topics)), draw(st.integers(0, partitions - 1)))
        has_coords = it.status == "good" or it.env_variant is None or it.env_variant in ENV_WITH_COORDS
        coord = None
        if has_coords:
            if tp not in next_offset:
                next_offset[tp] = draw(st.integers(0, 100))
            coord = (tp[0], tp[1], next_offset[tp])
            next_offset[tp] += draw(st.sampled_from((1, 1, 1, 1, 2, 5)))
        if it.status == "good":
            env = {"topic": tp[0], "partition": tp[1], "offset": coord[2], "tstype": "create",
                   "ts": 1769853600000 + coord[2], "broker": 1}
            if it.headers is not None:
                env["headers"] = it.headers
            env["key"] = it.key
            env["payload"] = it.payload
            text = _dumps(draw, env)
            env_lines.append(Line(text, "good", event=it.event,
                                  trace_id=it.header_trace or it.payload_trace, coord=coord))
        elif it.env_variant is None:
            env = {"topic": tp[0], "partition": tp[1], "offset": coord[2]}
            if draw(st.booleans()):
                env["headers"] = ["traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]
            env["key"] = it.key
            env["payload"] = it.payload
            env_lines.append(Line(_dumps(draw, env), "bad", reason=it.reason, coord=coord))
        else:
            env_lines.append(Line(envelope_text(it, coord, draw), "bad", reason="invalid_envelope"))

    # ---- envelope files: contiguous chunks. A chunk may hold no JSON object
    # at all (only garbage lines): "until such a line is met, lines are read
    # as envelopes", so its lines are still invalid envelopes.
    n_files = draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(0, len(env_lines)), min_size=n_files - 1, max_size=n_files - 1)))
    bounds = [0, *cuts, len(env_lines)]
    files: list[DumpFile] = []
    for i in range(n_files):
        chunk = env_lines[bounds[i]:bounds[i + 1]]
        for _ in range(draw(st.integers(0, 2)) if chunk else 0):
            chunk.insert(draw(st.integers(0, len(chunk))), Line("", "blank"))
        gz = draw(st.booleans())
        files.append(DumpFile(f"dump-{i}.kcat.jsonl{'.gz' if gz else ''}", "envelope", gz, chunk))
    order = list(range(len(files)))

    # ---- overlap: a second file repeating a range of lines
    if draw(st.integers(0, 2)) == 0:
        src = draw(st.integers(0, len(files) - 1))
        lines = [ln for ln in files[src].lines if ln.status != "blank"]
        if lines:
            a = draw(st.integers(0, len(lines) - 1))
            b = draw(st.integers(a + 1, len(lines)))
            gz = draw(st.booleans())
            files.append(DumpFile(f"overlap.kcat.jsonl{'.gz' if gz else ''}", "envelope", gz, lines[a:b]))
            order.insert(draw(st.integers(src + 1, len(order))), len(files) - 1)

    # ---- plain file (one partition: topic = its path, offset = line number)
    if use_plain:
        for _ in range(draw(st.integers(0, 2))):
            plain_lines.insert(draw(st.integers(0, len(plain_lines))), Line("", "blank"))
        # The kind is decided from the first JSON-object line, looking ahead, and
        # applies to every line; with no such line the file is read as envelopes.
        if not any(ln.status != "blank" and _is_object_line(ln.text) for ln in plain_lines):
            for ln in plain_lines:
                if ln.status != "blank":
                    ln.reason, ln.coordless = "invalid_envelope", True
        gz = draw(st.booleans())
        files.append(DumpFile(f"events.jsonl{'.gz' if gz else ''}", "plain", gz, plain_lines))
        pos = draw(st.integers(0, len(order)))
        order.insert(pos, len(files) - 1)
        if draw(st.integers(0, 3)) == 0:  # the same plain file given twice: all replayed
            order.insert(draw(st.integers(pos + 1, len(order))), len(files) - 1)

    # Mostly the default window, which these short histories never reach; else
    # one so small that repeats land on both sides of it.
    window = draw(st.sampled_from((None, None, 0, 1, 2, 3)))
    return History(files=files, order=order, messages=messages, counters=counters, delivery_window=window)


# --------------------------------------------------------------------------- writer


@dataclass
class Layout:
    root: Path
    dump_paths: list[str]  # as given on the command line, parallel to History.order
    messages_dir: str | None
    counters_dir: str | None
    report: str
    dead_letter: str
    metrics: str
    argv: list[str] = field(default_factory=list)


def _write_lines(path: Path, lines: list[str], gz: bool) -> None:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)


def _write_export(root: Path, items: list[dict], split: int) -> None:
    """An "Export to S3" directory: manifests at the top, items under data/."""
    root.mkdir(parents=True)
    (root / "manifest-summary.json").write_text('{"version": "2020-06-30", "itemCount": %d}\n' % len(items))
    (root / "manifest-files.json").write_text('{"dataFileS3Key": "data/part-0.json.gz"}\n')
    parts: list[list[dict]] = [[] for _ in range(max(1, split))]
    for i, item in enumerate(items):
        parts[i % len(parts)].append(item)
    for i, part in enumerate(parts):
        sub = root / "data" / (f"shard-{i}" if i % 2 else "")
        _write_lines(sub / f"part-{i}.json.gz", [json.dumps({"Item": it}) for it in part], gz=True)


def write_history(h: History, root: Path) -> Layout:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in h.files:
        p = root / f.name
        _write_lines(p, [ln.text for ln in f.lines], f.gz)
        paths.append(str(p))
    dump_paths = [paths[i] for i in h.order]
    messages_dir = counters_dir = None
    if h.messages is not None:
        messages_dir = str(root / "export-messages")
        items = [
            {"chat_id": {"S": chat}, "sequence": {"N": str(seq)}, "message_id": {"S": mid},
             "sender_id": {"S": f"s-{chat}"}, "created_at": {"S": "2026-01-31T10:00:00Z"}}
            for chat, seqs in h.messages.items() for seq, mid in seqs.items()
        ]
        _write_export(Path(messages_dir), items, split=1 + len(items) % 3)
    if h.counters is not None:
        counters_dir = str(root / "export-counters")
        items = [{"chat_id": {"S": chat}, "last_sequence": {"N": str(n)}} for chat, n in h.counters.items()]
        _write_export(Path(counters_dir), items, split=1 + len(items) % 2)
    lay = Layout(root, dump_paths, messages_dir, counters_dir,
                 report=str(root / "report.json"), dead_letter=str(root / "dead-letter.jsonl"),
                 metrics=str(root / "metrics.prom"))
    argv = ["replay", *dump_paths]
    if messages_dir:
        argv += ["--messages-export", messages_dir]
    if counters_dir:
        argv += ["--counters-export", counters_dir]
    if h.delivery_window is not None:
        argv += ["--delivery-window", str(h.delivery_window)]
    argv += ["--report", lay.report, "--dead-letter", lay.dead_letter, "--metrics-out", lay.metrics]
    lay.argv = argv
    return lay
