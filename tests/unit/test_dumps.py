import gzip

import orjson
import pytest

from auditor.dumps import DumpFile
from auditor.errors import InputError

from .history import persisted


def kcat_line(offset: int, event: dict, partition: int = 0, **extra) -> bytes:
    env = {"topic": "messages.persisted", "partition": partition, "offset": offset, "tstype": "create",
           "ts": 1769853600123, "broker": 1, "key": event.get("chat_id"),
           "payload": orjson.dumps(event).decode(), **extra}
    return orjson.dumps(env) + b"\n"


def read_all(path):
    dump = DumpFile(path)
    records, bad = [], []
    for batch in dump.batches():
        records += batch.records
        bad += batch.bad_lines
    return dump, records, bad


def test_kcat_plain_and_gzip_read_the_same(tmp_path):
    body = b"".join(kcat_line(i, persisted("c", i + 1)) for i in range(50))
    (tmp_path / "d.json").write_bytes(body)
    with gzip.open(tmp_path / "d.json.gz", "wb") as f:
        f.write(body)
    _, plain, _ = read_all(tmp_path / "d.json")
    dump, gz, _ = read_all(tmp_path / "d.json.gz")
    assert dump.kind == "kcat" and plain == gz and len(gz) == 50
    assert gz[3].coordinates == ("messages.persisted", 0, 3)


def test_headers_give_the_traceparent(tmp_path):
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    (tmp_path / "d").write_bytes(kcat_line(0, persisted("c", 1), headers=["a", "b", "traceparent", tp]))
    _, [record], _ = read_all(tmp_path / "d")
    assert record.traceparent == tp


def test_bad_envelopes_are_bad_lines_with_line_numbers(tmp_path):
    lines = [kcat_line(0, persisted("c", 1)), b"garbage\n", b"\n",
             b'{"topic": "t", "partition": "0", "offset": 1, "payload": "{}"}\n',
             b'{"topic": "t", "partition": 0, "offset": 2, "payload": {"not": "a string"}}\n',
             kcat_line(3, persisted("c", 2))]
    (tmp_path / "d").write_bytes(b"".join(lines))
    _, records, bad = read_all(tmp_path / "d")
    assert [r.offset for r in records] == [0, 3]
    assert [b.line for b in bad] == [2, 4, 5]
    assert bad[0].raw == b"garbage"


def test_plain_event_lines_are_one_partition_offset_is_line_number(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps(persisted("c", 1)) + b"\n\n" + orjson.dumps(persisted("c", 2)) + b"\n")
    dump, records, _ = read_all(path)
    assert dump.kind == "plain"
    assert [r.coordinates for r in records] == [(str(path), 0, 1), (str(path), 0, 3)]


def test_truncated_gzip_hands_over_what_was_read_then_names_the_file(tmp_path):
    body = b"".join(kcat_line(i, persisted("c", i + 1)) for i in range(2000))
    whole = gzip.compress(body)
    path = tmp_path / "cut.json.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    dump = DumpFile(path)
    got = []
    with pytest.raises(InputError) as exc:
        for batch in dump.batches():
            got += batch.records
    assert "cut.json.gz" in str(exc.value) and "truncated gzip" in str(exc.value)
    assert 0 < len(got) < 2000
    assert [r.offset for r in got] == list(range(len(got)))


def test_not_gzip_and_missing_files(tmp_path):
    (tmp_path / "fake.gz").write_bytes(b"plain text, not gzip\n")
    with pytest.raises(InputError, match="not a valid gzip file"):
        list(DumpFile(tmp_path / "fake.gz").batches())
    with pytest.raises(InputError, match="cannot read"):
        DumpFile(tmp_path / "absent.json")
