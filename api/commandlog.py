"""Commands the API sent and what became of them: sent → acked / failed / expired,
from the device's own ``ack`` (contract ``Ack``: the command id, ok, error).

Held in memory by the API process (bounded, oldest forgotten first): the console
shows the status of what an operator just sent.  The durable record of who sent
what is the audit log; a restart forgets pending statuses.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import msgspec

from deltasense.contract import MAX_PAYLOAD_BYTES, Ack, Channel, ContractError, parse_topic

CommandStatus = Literal["sent", "acked", "failed", "expired"]
MAX_KEPT: Final = 2000
_ACK: Final = msgspec.json.Decoder(Ack)


@dataclass(frozen=True)
class SentCommand:
    id: str
    device: str
    name: str
    args: dict[str, Any]
    sent: int  # ms
    expires: int  # ms
    by: str
    status: CommandStatus = "sent"
    answered: int | None = None  # ms the ack arrived
    error: str | None = None

    def at(self, now_ms: int) -> SentCommand:
        """As of ``now_ms``: unanswered past its expiry is expired."""
        if self.status == "sent" and now_ms > self.expires:
            return replace(self, status="expired")
        return self


class CommandLog:
    def __init__(self, max_kept: int = MAX_KEPT) -> None:
        self._max = max_kept
        self._by_id: OrderedDict[str, SentCommand] = OrderedDict()

    def sent(self, command: SentCommand) -> None:
        self._by_id[command.id] = command
        while len(self._by_id) > self._max:
            self._by_id.popitem(last=False)

    def forget(self, command_id: str) -> None:
        self._by_id.pop(command_id, None)

    def answer(self, topic: str, payload: bytes, now_ms: int) -> SentCommand | None:
        """Apply a device's ack; ``None`` when it answers nothing we sent (another
        sender's command, a forgotten one) or is malformed, which changes nothing."""
        try:
            parsed = parse_topic(topic)
        except ContractError:
            return None
        if parsed.channel != Channel.ACK or len(payload) > MAX_PAYLOAD_BYTES:
            return None
        try:
            ack = _ACK.decode(payload)
        except msgspec.DecodeError:
            return None
        known = self._by_id.get(ack.id)
        # Only the device the command went to may answer it, and only once.
        if known is None or known.device != parsed.device or known.status != "sent":
            return None
        error = ack.error if isinstance(ack.error, str) else None
        answered = replace(
            known,
            status="acked" if ack.ok else "failed",
            answered=now_ms,
            error=error[:200] if error else None,
        )
        self._by_id[ack.id] = answered
        return answered

    def of_device(self, device: str, now_ms: int, limit: int = 20) -> list[SentCommand]:
        """The device's commands, newest first, with expiry applied."""
        found = [c.at(now_ms) for c in reversed(self._by_id.values()) if c.device == device]
        return found[:limit]
