"""The ward siren on one GPIO pin of the gateway (gpiozero).

A relay or a siren driver on ``siren_pin`` (BCM numbering), high while it sounds
unless ``siren_active_high`` is off.  gpiozero picks the Pi's pin library itself
(``GPIOZERO_PIN_FACTORY`` chooses one); tests hand in its ``MockFactory``, whose
simulated pin they read.  Without a pin the gateway has no siren and logs what it
would do.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from gpiozero import DigitalOutputDevice

_LOG = logging.getLogger("edge.siren")


class Siren:
    def __init__(
        self, pin: int | None, *, active_high: bool = True, pin_factory: Any = None
    ) -> None:
        self.pin = pin
        self.sounding = False
        self.changed_at: float | None = None  # monotonic time of the last change
        self._device: DigitalOutputDevice | None = None
        if pin is not None:
            self._device = DigitalOutputDevice(
                pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
            )

    def set(self, on: bool) -> bool:
        """Sound or silence it; True if that changed anything."""
        if on == self.sounding:
            return False
        self.sounding = on
        self.changed_at = time.monotonic()
        if self._device is not None:
            if on:
                self._device.on()
            else:
                self._device.off()
        _LOG.warning(
            "ward siren %s%s",
            "ON" if on else "off",
            "" if self.pin is not None else " (no siren_pin configured)",
        )
        return True

    def close(self) -> None:
        if self._device is not None:
            self._device.off()
            self._device.close()
            self._device = None
