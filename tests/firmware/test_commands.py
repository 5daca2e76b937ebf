# firmware-test: micropython
"""ds.commands: idempotent, expiring commands, always acknowledged."""

import json

from ds import commands

NOW = 1763510400000


class _Lamp:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def set_dim(self, args: "dict") -> None:
        self.calls.append(args["pct"])


def _handler(now: "int | None" = NOW) -> "tuple[commands.Commands, _Lamp]":
    lamp = _Lamp()

    def broken(args: "dict") -> None:
        raise OSError("bus error")

    handlers = {
        "set_dim": lamp.set_dim,
        "ping": lambda args: None,
        "reboot": lambda args: None,
        "sync_time": broken,
    }
    return commands.Commands(handlers, lambda: now, remember=4), lamp


def _cmd(cid: str, name: str, args: "dict | None" = None, expires: int = NOW + 60000) -> bytes:
    return json.dumps({"id": cid, "name": name, "args": args or {}, "expires": expires}).encode()


def test_set_dim_runs_once_per_id() -> None:
    h, lamp = _handler()
    first = json.loads(h.handle(_cmd("c1", "set_dim", {"pct": 40})))
    again = json.loads(h.handle(_cmd("c1", "set_dim", {"pct": 40})))
    assert first == {"id": "c1", "ok": True, "ts": NOW} == again
    assert lamp.calls == [40]


def test_expired_is_refused_and_not_run() -> None:
    h, lamp = _handler()
    ack = json.loads(h.handle(_cmd("c2", "set_dim", {"pct": 10}, expires=NOW - 1)))
    assert ack["ok"] is False and ack["error"] == "expired"
    assert lamp.calls == []


def test_malformed_commands_are_acked_with_errors() -> None:
    h, lamp = _handler()
    cases = [
        (b"{{{", ""),
        (b"[]", ""),
        (b'{"name": "ping", "expires": 1}', ""),
        (json.dumps({"id": "x" * 65, "name": "ping", "expires": NOW}).encode(), ""),
        (json.dumps({"id": "m1", "name": "ping"}).encode(), "m1"),
        (json.dumps({"id": "m2", "name": "ping", "args": [1], "expires": NOW}).encode(), "m2"),
        (_cmd("m3", "set_dim", {"pct": 101}), "m3"),
        (_cmd("m4", "set_dim", {"pct": "50"}), "m4"),
        (_cmd("m5", "self_destruct"), "m5"),
        (_cmd("m6", "set_interval", {"interval_s": 60}), "m6"),  # no handler here
    ]
    for payload, cid in cases:
        ack = json.loads(h.handle(payload))
        assert ack["ok"] is False and ack["error"], payload
        assert ack["id"] == cid
    assert lamp.calls == []


def test_failing_handler_is_refused_not_raised() -> None:
    h, _ = _handler()
    ack = json.loads(h.handle(_cmd("s1", "sync_time")))
    assert ack["ok"] is False and "bus error" in ack["error"]


def test_reboot_is_acked_then_pending() -> None:
    h, _ = _handler()
    assert not h.reboot_pending
    ack = json.loads(h.handle(_cmd("r1", "reboot")))
    assert ack["ok"] is True and h.reboot_pending


def test_unsynced_clock_runs_command_and_acks_without_ts() -> None:
    h, lamp = _handler(now=None)
    ack = json.loads(h.handle(_cmd("u1", "set_dim", {"pct": 0}, expires=1)))
    assert ack == {"id": "u1", "ok": True}
    assert lamp.calls == [0]


def test_memory_of_ids_is_bounded() -> None:
    h, lamp = _handler()
    for i in range(6):
        h.handle(_cmd(f"k{i}", "set_dim", {"pct": i}))
    h.handle(_cmd("k0", "set_dim", {"pct": 0}))  # forgotten after 4 newer ids: runs again
    h.handle(_cmd("k5", "set_dim", {"pct": 5}))  # remembered: does not
    assert lamp.calls == [0, 1, 2, 3, 4, 5, 0]


def test_check_args() -> None:
    assert commands.check_args("set_interval", {"interval_s": 300}) is None
    assert commands.check_args("set_interval", {"interval_s": 4}) is not None
    assert commands.check_args("set_dim", {"pct": 55.5}) is None
    assert commands.check_args("set_dim", {"pct": 100, "duration_s": 1800}) is None
    for bad in (0, -5, 86401, "1800", True):
        assert commands.check_args("set_dim", {"pct": 100, "duration_s": bad}) is not None
    assert commands.check_args("ping", {}) is None
