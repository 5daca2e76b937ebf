"""Command handling: ``cmd`` payload in, ``ack`` payload out.

Commands (docs/CONTRACT.md ``cmd``: ``{"id", "name", "args", "expires"}``):

- ``set_dim`` ``{"pct": 0..100, "duration_s": 1..86400 (optional)}``: lamp output
  level (0 = off), until the next order or for ``duration_s``, after which the
  photocell and dimming profile rule again (the platform's storm/flood leases);
- ``set_interval`` ``{"interval_s": 5..86400}``: reporting interval;
- ``sync_time`` ``{}``: NTP now;
- ``reboot`` ``{}``: acknowledged first, reboot after the ack is sent;
- ``ping`` ``{}``: acknowledged, nothing else.

Each is idempotent by ``id``: a repeated id (QoS 1 redelivery) gets the
stored ack again and its action does not run twice. An expired command
(``expires`` in ms before the node's clock) is refused. Every payload, even
unreadable, gets an ack with ``ok`` and, when refused, an ``error``.
"""

import json

from ds import encode

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

NAMES = ("set_dim", "set_interval", "sync_time", "reboot", "ping")
MAX_ID_LEN = 64  # deltasense.contract.Command.id


def _is_num(v: "Any") -> bool:
    return (isinstance(v, int) or isinstance(v, float)) and not isinstance(v, bool)


def check_args(name: str, args: "dict[str, Any]") -> "str | None":
    """Why ``args`` are wrong for ``name``, or None when they are fine."""
    if name == "set_dim":
        pct: "Any" = args.get("pct")
        if not _is_num(pct) or not 0 <= pct <= 100:
            return "set_dim needs pct 0..100"
        dur: "Any" = args.get("duration_s")
        if dur is not None and (not _is_num(dur) or not 1 <= dur <= 86400):
            return "set_dim duration_s must be 1..86400 s"
    elif name == "set_interval":
        iv = args.get("interval_s")
        if not isinstance(iv, int) or isinstance(iv, bool) or not 5 <= iv <= 86400:
            return "set_interval needs integer interval_s 5..86400"
    return None


class Commands:
    """Runs commands through ``handlers`` and builds their acks.

    ``handlers`` maps a command name to ``fn(args) -> None`` (raise
    ValueError with a message to refuse). A name without a handler is
    refused as unknown. ``now_ms()`` returns Unix ms, or None while the clock
    is unsynced: then expiry cannot be judged and the command runs (a node
    with a broken clock must still take ``sync_time`` and ``reboot``), and the
    ack carries no ``ts``.

    :meth:`handle` returns the ack payload. A ``reboot`` is not run there:
    it sets ``reboot_pending`` so the caller reboots after sending the ack.
    """

    def __init__(
        self,
        handlers: "dict[str, Callable[[dict[str, Any]], None]]",
        now_ms: "Callable[[], int | None]",
        remember: int = 32,
    ) -> None:
        self.handlers = handlers
        self.now_ms = now_ms
        self.remember = remember
        self._seen: "dict[str, tuple[bool, str | None]]" = {}
        self._order: "list[str]" = []
        self.reboot_pending = False

    def _remember(self, cmd_id: str, result: "tuple[bool, str | None]") -> None:
        self._seen[cmd_id] = result
        self._order.append(cmd_id)
        while len(self._order) > self.remember:
            del self._seen[self._order.pop(0)]

    def run(self, msg: "Any") -> "tuple[str, bool, str | None]":
        """Decide on one decoded command: ``(id, ok, error)``."""
        if not isinstance(msg, dict):
            return "", False, "command must be a JSON object"
        cmd_id = msg.get("id")
        if not isinstance(cmd_id, str) or not 1 <= len(cmd_id) <= MAX_ID_LEN:
            return "", False, "missing or bad id"
        if cmd_id in self._seen:
            ok, err = self._seen[cmd_id]
            return cmd_id, ok, err
        result = self._decide(msg)
        self._remember(cmd_id, result)
        return cmd_id, result[0], result[1]

    def _decide(self, msg: "dict[str, Any]") -> "tuple[bool, str | None]":
        name = msg.get("name")
        args = msg.get("args", {})
        expires = msg.get("expires")
        if not isinstance(name, str):
            return False, "missing name"
        if not isinstance(args, dict):
            return False, "args must be an object"
        if not isinstance(expires, int) or isinstance(expires, bool) or expires < 0:
            return False, "missing or bad expires"
        now = self.now_ms()
        if now is not None and expires < now:
            return False, "expired"
        if name not in self.handlers:
            return False, "unknown command"
        problem = check_args(name, args)
        if problem is not None:
            return False, problem
        if name == "reboot":
            self.reboot_pending = True
            return True, None
        try:
            self.handlers[name](args)
        except ValueError as exc:
            return False, str(exc) or "refused"
        except Exception as exc:  # a failing actuator must not kill the node
            return False, "failed: %s" % exc
        return True, None

    def handle(self, payload: bytes) -> bytes:
        """A ``cmd`` payload in, its ``ack`` payload out (always)."""
        cmd_id = ""
        ok = False
        err: "str | None" = "command is not JSON"
        try:
            msg = json.loads(payload)
        except ValueError:
            pass
        else:
            cmd_id, ok, err = self.run(msg)
        return encode.ack(cmd_id, ok, err, self.now_ms())
