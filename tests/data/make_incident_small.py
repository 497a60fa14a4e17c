"""Writes tests/data/incident-small: a hand-made incident with one of each finding.

Run once; the output is committed and `expected-report.json` was checked by
hand. Story: chat "alpha" is healthy but for a producer retry and a replayed
overlap; "bravo" lost a message (ack without item), had a publish gap and a
reordering; "charlie" got two ids at one sequence and its counter lags behind;
deliveries include a skewed clock and a duplicate; a few records are garbage.
"""

import gzip
import json
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "incident-small")
TS = "2026-01-31T10:00:0{}Z"


def trace(n):
    return f"00-{n:032x}-00f067aa0ba902b7-01"


def env(topic, partition, offset, payload, tp=None):
    d = {"topic": topic, "partition": partition, "offset": offset, "tstype": "create",
         "ts": 1769853600000 + offset, "broker": 1, "key": None,
         "payload": payload if isinstance(payload, str) else json.dumps(payload)}
    if isinstance(payload, dict):
        d["key"] = payload.get("chat_id")
    if tp:
        d["headers"] = ["traceparent", tp]
    return json.dumps(d)


def p(chat, seq, mid=None):
    return {"event_type": "message_persisted", "chat_id": chat, "sequence": seq,
            "message_id": mid or f"{chat}-{seq}", "created_at": TS.format(seq % 10), "sender_id": "u1"}


def a(chat, seq, mid=None):
    return {"event_type": "message_acked", "chat_id": chat, "sequence": seq,
            "message_id": mid or f"{chat}-{seq}", "acked_at": TS.format(seq % 10)}


def d(chat, seq, recipient, created, delivered):
    return {"event_type": "message_delivered", "chat_id": chat, "sequence": seq,
            "message_id": f"{chat}-{seq}", "recipient_id": recipient,
            "created_at": created, "delivered_at": delivered}


P, A, D = "messages.persisted", "messages.acked", "messages.delivered"
part1 = [
    env(P, 0, 0, p("alpha", 1), trace(1)), env(P, 0, 1, p("alpha", 2), trace(2)),
    env(P, 0, 2, p("alpha", 2), trace(3)),                      # producer retry: redelivered
    env(P, 0, 3, p("alpha", 3), trace(4)),
    env(P, 1, 0, p("bravo", 1), trace(5)), env(P, 1, 1, p("bravo", 3), trace(6)),
    env(P, 1, 2, p("bravo", 5), trace(7)), env(P, 1, 3, p("bravo", 4), trace(8)),  # out of order
    env(A, 0, 0, a("bravo", 6), trace(9)),                      # ack, no item: loss, gap (hole)
    env(P, 2, 0, p("charlie", 1), trace(10)), env(P, 2, 1, p("charlie", 2), trace(11)),
    env(P, 2, 2, p("charlie", 2, "charlie-2-dup"), trace(12)),  # duplicate sequence + loss
    env(P, 2, 3, p("charlie", 3), trace(13)),
    env(P, 2, 4, "{\"event_type\": \"message_persisted\""),     # truncated JSON: rejected
    env(P, 2, 5, {"event_type": "message_persisted", "chat_id": "charlie", "sequence": "4",
                  "message_id": "x", "created_at": TS.format(0), "sender_id": "u"}),  # bad sequence
]
part2 = [
    env(P, 0, 2, p("alpha", 2), trace(3)), env(P, 0, 3, p("alpha", 3), trace(4)),  # replayed overlap
    env(P, 0, 4, p("alpha", 4), trace(14)),
    "this line is not an envelope",
    env(D, 0, 0, d("alpha", 1, "u2", "2026-01-31T10:00:01Z", "2026-01-31T10:00:00.500Z"), trace(15)),
    env(D, 0, 1, d("alpha", 2, "u2", "2026-01-31T10:00:02Z", "2026-01-31T10:00:02.120Z"), trace(16)),
    env(D, 0, 2, d("alpha", 2, "u2", "2026-01-31T10:00:02Z", "2026-01-31T10:00:03Z"), trace(17)),
    env(D, 0, 3, {"event_type": "message_recalled", "chat_id": "alpha", "sequence": 1,
                  "message_id": "alpha-1"}),
]
messages = {"alpha": [1, 2, 3, 4], "bravo": [1, 2, 3, 4, 5], "charlie": [1, 2, 3]}
counters = {"alpha": 4, "bravo": 6, "charlie": 2}

os.makedirs(os.path.join(HERE, "export", "messages", "data"), exist_ok=True)
os.makedirs(os.path.join(HERE, "export", "chat_counters", "data"), exist_ok=True)
with gzip.open(os.path.join(HERE, "dump-1.kcat.json.gz"), "wt") as f:
    f.write("\n".join(part1) + "\n")
with open(os.path.join(HERE, "dump-2.kcat.json"), "w") as f:
    f.write("\n".join(part2) + "\n")
with gzip.open(os.path.join(HERE, "export", "messages", "data", "part-0.json.gz"), "wt") as f:
    for chat, seqs in messages.items():
        for s in seqs:
            f.write(json.dumps({"Item": {"chat_id": {"S": chat}, "sequence": {"N": str(s)},
                                         "message_id": {"S": f"{chat}-{s}"}, "sender_id": {"S": "u1"},
                                         "created_at": {"S": TS.format(s % 10)}}}) + "\n")
with gzip.open(os.path.join(HERE, "export", "chat_counters", "data", "part-0.json.gz"), "wt") as f:
    for chat, last in counters.items():
        f.write(json.dumps({"Item": {"chat_id": {"S": chat}, "last_sequence": {"N": str(last)}}}) + "\n")
