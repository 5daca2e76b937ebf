# firmware-test: micropython
"""ds.spool: the flash ring buffer and the persistent counters."""

import json

from ds import spool
from fwtest import raises, tmpdir


def _rec(i: int) -> bytes:
    return json.dumps({"seq": i}).encode()


def _seqs(records: "list[bytes]") -> "list[int]":
    return [json.loads(r)["seq"] for r in records]


def test_fifo_order_and_advance() -> None:
    s = spool.Spool(tmpdir() + "/q", capacity=8, rec_size=32)
    for i in range(5):
        s.push(_rec(i))
    assert len(s) == 5
    assert _seqs(s.peek(3)) == [0, 1, 2]
    s.advance(3)
    assert _seqs(s.peek(10)) == [3, 4]
    s.advance(2)
    assert len(s) == 0 and s.peek(4) == []
    s.close()


def test_full_ring_drops_oldest_and_counts() -> None:
    s = spool.Spool(tmpdir() + "/q", capacity=4, rec_size=32)
    for i in range(11):
        s.push(_rec(i))
    assert len(s) == 4 and s.dropped == 7
    assert _seqs(s.peek(4)) == [7, 8, 9, 10]
    s.close()


def test_survives_reopen_like_a_reboot() -> None:
    path = tmpdir() + "/q"
    s = spool.Spool(path, capacity=5, rec_size=32)
    for i in range(7):
        s.push(_rec(i))
    s.peek(2)
    s.advance(2)
    s.close()
    again = spool.Spool(path, capacity=5, rec_size=32)
    assert _seqs(again.peek(10)) == [4, 5, 6]
    assert again.dropped == 2
    again.push(_rec(7))
    assert _seqs(again.peek(10)) == [4, 5, 6, 7]
    again.close()


def test_drop_while_sending_does_not_skip_unsent() -> None:
    s = spool.Spool(tmpdir() + "/q", capacity=3, rec_size=32)
    for i in range(3):
        s.push(_rec(i))
    assert _seqs(s.peek(2)) == [0, 1]  # in flight
    s.push(_rec(3))  # full: drops 0
    s.push(_rec(4))  # drops 1
    s.advance(2)  # the confirmation of 0 and 1 arrives
    assert _seqs(s.peek(5)) == [2, 3, 4]
    s.close()


def test_records_read_in_place_by_index() -> None:
    s = spool.Spool(tmpdir() + "/q", capacity=3, rec_size=32)
    for i in range(4):  # the ring wraps: 0 is dropped
        s.push(_rec(i))
    assert s.start_peek() == 3
    assert [s.rec_len(k) for k in range(3)] == [len(_rec(i)) for i in (1, 2, 3)]
    buf = bytearray(40)
    n = s.read_into(1, buf, 5)
    assert bytes(buf[5 : 5 + n]) == _rec(2) and buf[:5] == bytearray(5)
    n = s.read_into(2, memoryview(buf), 0, 1)  # from byte 1 on
    assert bytes(buf[:n]) == _rec(3)[1:]
    s.push(_rec(4))  # drops 1 while "in flight"
    s.advance(2)  # counted from start_peek: 1 and 2 are gone, 3 is next
    assert _seqs(s.peek(5)) == [3, 4]
    s.close()


def test_oversized_record_and_bad_advance_are_refused() -> None:
    s = spool.Spool(tmpdir() + "/q", capacity=3, rec_size=16)
    raises(ValueError, s.push, b"x" * 15)
    s.push(b"x" * 14)
    s.peek(1)
    raises(ValueError, s.advance, 2)
    raises(ValueError, spool.Spool, tmpdir() + "/r", 0, 16)
    s.close()


def test_corrupt_or_reshaped_index_starts_empty() -> None:
    path = tmpdir() + "/q"
    s = spool.Spool(path, capacity=4, rec_size=32)
    s.push(_rec(1))
    s.close()
    with open(path + ".idx", "wb") as f:
        f.write(b"{not json")
    assert len(spool.Spool(path, capacity=4, rec_size=32)) == 0
    s = spool.Spool(path, capacity=4, rec_size=32)
    s.push(_rec(2))
    s.close()
    assert len(spool.Spool(path, capacity=8, rec_size=32)) == 0


def test_counters_persist_and_boot_resets_seq() -> None:
    path = tmpdir() + "/counters.json"
    c = spool.Counters(path, {"rain_mm_total": 0.0})
    assert c.begin_boot() == 0
    assert [c.next_seq(), c.next_seq()] == [0, 1]
    c["rain_mm_total"] = 12.5
    c.save()
    c2 = spool.Counters(path, {"rain_mm_total": 0.0})
    assert c2["rain_mm_total"] == 12.5 and c2["seq"] == 2
    assert c2.begin_boot() == 1
    assert c2.next_seq() == 0
    assert spool.Counters(path)["boot"] == 1


def test_counters_survive_a_leftover_temp_file() -> None:
    # A cut after writing the temp file but before the rename.
    path = tmpdir() + "/counters.json"
    with open(path + ".tmp", "wb") as f:
        f.write(b'{"boot": 9, "seq": 0}')
    assert spool.Counters(path)["boot"] == 9
