"""Store-and-forward on flash: a bounded ring of fixed-size records, and the
node's persistent counters.

Every reading is appended here before anything tries to send it; the publisher
takes the oldest with :meth:`Spool.peek`, and only after the broker confirmed
them calls :meth:`Spool.advance`. When the ring is full the oldest reading is
overwritten and counted in ``dropped``.

Layout: ``<path>.dat`` holds ``capacity`` slots of ``rec_size`` bytes, each a
2-byte big-endian length and the payload; ``<path>.idx`` holds the absolute
indices ``first`` (oldest kept) and ``next`` (next to write) and ``dropped``,
replaced atomically (temp + rename) after each change. Absolute indices only
grow, so slot = index % capacity, and an advance that races with a drop of the
same records cannot skip unsent ones.
"""

import json

from ds import hal

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_LEN_BYTES = 2


class Spool:
    """Bounded persistent FIFO of byte records.

    ``capacity`` records of at most ``rec_size - 2`` bytes each. Survives a
    reboot: a new ``Spool`` on the same ``path`` sees the same records.
    """

    def __init__(self, path: str, capacity: int = 1024, rec_size: int = 256) -> None:
        if capacity < 1 or rec_size < 8:
            raise ValueError("capacity >= 1 and rec_size >= 8 required")
        self.path = path
        self.capacity = capacity
        self.rec_size = rec_size
        self.first = 0
        self.next = 0
        self.dropped = 0
        self._peek_first = 0
        self._head = bytearray(_LEN_BYTES)
        self._idx = path + ".idx"
        self._load()
        self._open()

    # --- persistence ---------------------------------------------------------------
    def _load(self) -> None:
        raw = hal.read_bytes(self._idx)
        if raw is None:
            return
        try:
            st = json.loads(raw)
            first, nxt, dropped = int(st["first"]), int(st["next"]), int(st["dropped"])
            same_shape = st.get("capacity") == self.capacity and st.get("rec_size") == self.rec_size
        except (ValueError, KeyError, TypeError):
            return  # unreadable index: start empty rather than replay garbage
        if not same_shape or not 0 <= first <= nxt or nxt - first > self.capacity:
            return
        self.first, self.next, self.dropped = first, nxt, dropped
        self._peek_first = first

    def _save(self) -> None:
        # After every push and advance: the JSON by hand, no dict on the heap.
        state = '{"first":%d,"next":%d,"dropped":%d,"capacity":%d,"rec_size":%d}' % (
            self.first,
            self.next,
            self.dropped,
            self.capacity,
            self.rec_size,
        )
        hal.atomic_write(self._idx, state.encode())

    def _open(self) -> None:
        size = self.capacity * self.rec_size
        dat = self.path + ".dat"
        if not hal.exists(dat):
            with open(dat, "wb") as f:
                f.write(bytes(0))
        self._f = open(dat, "r+b")
        self._f.seek(0, 2)
        have = self._f.tell()
        if have < size:
            # Grow to full size once, so every slot write is in place (one zero
            # chunk written whole: no copy per write on the heap).
            chunk = bytes(min(self.rec_size * 4, size - have))
            while have < size:
                n = min(len(chunk), size - have)
                self._f.write(chunk if n == len(chunk) else chunk[:n])
                have += n
            self._f.flush()

    def close(self) -> None:
        self._f.close()

    # --- queue -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.next - self.first

    def push(self, data: bytes) -> None:
        """Append one record; when full, the oldest is dropped and counted."""
        if len(data) > self.rec_size - _LEN_BYTES:
            raise ValueError("record of %d bytes > %d" % (len(data), self.rec_size - _LEN_BYTES))
        if self.next - self.first >= self.capacity:
            self.first += 1
            self.dropped += 1
        slot = self.next % self.capacity
        self._f.seek(slot * self.rec_size)
        self._f.write(bytes((len(data) >> 8, len(data) & 0xFF)))
        self._f.write(data)
        self._f.flush()
        self.next += 1
        self._save()

    def peek(self, n: int) -> "list[bytes]":
        """Up to ``n`` oldest records, oldest first, without removing them."""
        self._peek_first = self.first
        out = []
        i = self.first
        end = min(self.next, self.first + n)
        while i < end:
            self._f.seek((i % self.capacity) * self.rec_size)
            head = self._f.read(_LEN_BYTES)
            length = (head[0] << 8) | head[1]
            out.append(self._f.read(length))
            i += 1
        return out

    # Reading without copies: the publisher copies records straight from the
    # file into its packet buffer (``ds.encode.batch_into``), so a backlog
    # replay makes no garbage on the heap.
    def start_peek(self) -> int:
        """Begin a peek by index (:meth:`rec_len`, :meth:`read_into`); returns
        how many records there are. :meth:`advance` counts from here."""
        self._peek_first = self.first
        return self.next - self.first

    def rec_len(self, k: int) -> int:
        """Length of the ``k``-th oldest record (0 = oldest)."""
        self._f.seek(((self.first + k) % self.capacity) * self.rec_size)
        self._f.readinto(self._head)
        return (self._head[0] << 8) | self._head[1]

    def read_into(self, k: int, buf: "Any", pos: int, skip: int = 0) -> int:
        """Copy the ``k``-th oldest record, from its byte ``skip`` on, into
        ``buf`` (a bytearray, or a memoryview of one: no new view made) at
        ``pos``; returns the number of bytes copied."""
        n = self.rec_len(k) - skip
        if skip:
            self._f.seek(((self.first + k) % self.capacity) * self.rec_size + _LEN_BYTES + skip)
        if not isinstance(buf, memoryview):
            buf = memoryview(buf)
        return self._f.readinto(buf[pos : pos + n])  # type: ignore[no-any-return]

    def advance(self, n: int) -> None:
        """Forget the ``n`` records returned by the last :meth:`peek` (or
        :meth:`start_peek`).

        Counted from where that peek started, so records dropped meanwhile
        (ring full during the send) are not counted twice.
        """
        target = self._peek_first + n
        if target > self.next:
            raise ValueError("advance past the newest record")
        if target > self.first:
            self.first = target
            self._save()


class Counters:
    """Small persistent counters (``boot``, ``seq``, rain and energy totals).

    A JSON object in one file, replaced atomically by :meth:`save`. Values
    change in RAM through item access; callers decide how often to save (flash
    wear versus what a power cut may lose).
    """

    def __init__(self, path: str, defaults: "dict[str, Any] | None" = None) -> None:
        self.path = path
        self.values: "dict[str, Any]" = dict(defaults or {})
        raw = hal.read_bytes(path)
        if raw is not None:
            try:
                stored = json.loads(raw)
                if isinstance(stored, dict):
                    self.values.update(stored)
            except ValueError:
                pass

    def __getitem__(self, key: str) -> "Any":
        return self.values[key]

    def __setitem__(self, key: str, value: "Any") -> None:
        self.values[key] = value

    def get(self, key: str, default: "Any" = None) -> "Any":
        return self.values.get(key, default)

    def save(self) -> None:
        hal.atomic_write(self.path, json.dumps(self.values).encode())

    def begin_boot(self) -> int:
        """Count a boot: ``boot`` + 1 and ``seq`` back to 0 (docs/CONTRACT.md:
        ``seq`` restarts at 0 on boot). Saved at once; returns the boot number."""
        self.values["boot"] = int(self.values.get("boot", -1)) + 1
        self.values["seq"] = 0
        self.save()
        return self.values["boot"]

    def next_seq(self) -> int:
        """The next reading's ``seq`` (kept in RAM; saved with the next save)."""
        seq = int(self.values.get("seq", 0))
        self.values["seq"] = seq + 1
        return seq
