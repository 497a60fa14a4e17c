import orjson
import pytest

from auditor.errors import RecordRejected
from auditor.events import Delivered, Persisted, parse_event, trace_id_from_header

from .history import acked, delivered, persisted


def reason(value) -> str:
    with pytest.raises(RecordRejected) as exc:
        parse_event(value if isinstance(value, (bytes, type(None))) else orjson.dumps(value))
    return exc.value.reason


def test_valid_events_decode_to_typed_structs():
    event = parse_event(orjson.dumps(persisted("c", 3, extra_field={"ignored": True})))
    assert isinstance(event, Persisted) and (event.chat_id, event.sequence) == ("c", 3)
    d = parse_event(orjson.dumps(delivered("c", 3, delivered_at="2026-01-31T12:00:00+02:00")))
    assert isinstance(d, Delivered) and d.delivered_at.utcoffset().total_seconds() == 7200


@pytest.mark.parametrize("bad", ["7", 7.0, 0, -1, True, None])
def test_sequence_must_be_a_json_integer_at_least_one(bad):
    assert reason(persisted("c", 1) | {"sequence": bad}) == "invalid_field"


@pytest.mark.parametrize("value,expected", [
    (None, "invalid_json"),
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b'"text"', "not_an_object"),
    ({"chat_id": "c", "sequence": 1, "message_id": "m"}, "missing_field"),
    ({k: v for k, v in persisted("c", 1).items() if k != "sender_id"}, "missing_field"),
    ({k: v for k, v in acked("c", 1).items() if k != "acked_at"}, "missing_field"),
    (persisted("c", 1) | {"event_type": "message_deleted"}, "unknown_event_type"),
    (persisted("c", 1) | {"event_type": 3}, "invalid_field"),
    (persisted("c", 1) | {"chat_id": ""}, "invalid_field"),
    (persisted("c", 1) | {"message_id": 5}, "invalid_field"),
    (persisted("c", 1) | {"created_at": "yesterday"}, "invalid_field"),
    (persisted("c", 1) | {"created_at": "2026-01-31T10:00:00"}, "invalid_field"),  # no offset
    (persisted("c", 1) | {"created_at": "2026-01-31"}, "invalid_field"),
    (persisted("c", 1) | {"created_at": "2026-13-31T10:00:00Z"}, "invalid_field"),
    (persisted("c", 1) | {"trace_id": 7}, "invalid_field"),
    (delivered("c", 1) | {"recipient_id": None}, "invalid_field"),
])
def test_rejection_reasons(value, expected):
    assert reason(value) == expected


def test_traceparent_parsing():
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_from_header(f"00-{tid}-00f067aa0ba902b7-01") == tid
    assert trace_id_from_header(f"00-{'0' * 32}-00f067aa0ba902b7-01") is None
    assert trace_id_from_header("00-xyz") is None
    assert trace_id_from_header(None) is None
