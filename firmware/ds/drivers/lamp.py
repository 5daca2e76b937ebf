"""Lamp output: a relay for mains and a PWM line to the LED driver's dimming input.

``dim_pct`` 0 switches the relay off. Above 0 the PWM duty never goes below
``min_pct``: LED drivers with 0-10 V / PWM dimming inputs have a minimum dim
level (commonly 10 %) below which output is undefined or flickers [design;
check the fitted driver's data sheet].
"""

# MicroPython has no typing module; mypy treats this name as True.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PWM_FREQ_HZ = 1000  # [design] within typical LED-driver PWM-dim inputs (100 Hz..3 kHz)
DUTY_FULL = 65535  # machine.PWM.duty_u16 full scale


def duty_for(dim_pct: float, min_pct: float = 10) -> int:
    """PWM ``duty_u16`` for a dim level (0 → 0; else at least ``min_pct``)."""
    if dim_pct <= 0:
        return 0
    pct = min(100.0, max(float(min_pct), float(dim_pct)))
    return int(pct * DUTY_FULL / 100 + 0.5)


class Lamp:
    """``relay`` a ``machine.Pin`` (1 = on), ``pwm`` a ``machine.PWM`` or None."""

    def __init__(self, relay: "Any", pwm: "Any" = None, min_pct: float = 10, invert: bool = False) -> None:
        self.relay = relay
        self.pwm = pwm
        self.min_pct = min_pct
        self.invert = invert
        self.dim_pct = 0.0
        self.set(0)

    @property
    def on(self) -> bool:
        return self.dim_pct > 0

    def set(self, dim_pct: float) -> None:
        """Output level 0..100 (clamped); 0 is off."""
        pct = min(100.0, max(0.0, float(dim_pct)))
        if self.pwm is not None:
            duty = duty_for(pct, self.min_pct)
            self.pwm.duty_u16(DUTY_FULL - duty if self.invert else duty)
        self.relay.value(1 if pct > 0 else 0)
        self.dim_pct = float(pct) if pct <= 0 or pct >= self.min_pct else float(self.min_pct)
